-- Runs Lua unit test files inside the kimictl binary: kimictl lua tests/lua/harness.lua FILE...
-- Each file returns { ["what it checks"] = function() ... end }; one "ok"/"not ok" line each.
local failed = 0
for _, file in ipairs({ ... }) do
  local cases = assert(loadfile(file, "t"))()
  local names = {}
  for name in pairs(cases) do names[#names + 1] = name end
  table.sort(names)
  local short = file:match("([^/]+)%.lua$")
  for _, name in ipairs(names) do
    local ok, err = xpcall(cases[name], debug.traceback)
    if ok then
      print(("ok - %s: %s"):format(short, name))
    else
      failed = failed + 1
      print(("not ok - %s: %s"):format(short, name))
      print("#   " .. tostring(err):gsub("\n", "\n#   "))
    end
  end
end
return failed == 0 and 0 or 1
