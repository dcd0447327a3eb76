-- Built-in tool: the entries of a directory, directories marked with a final '/'.
local core = require "core"

local MAX_ENTRIES = 1000

return {
  name = "list_dir",
  description = "List the entries of a directory (directories end with '/').",
  parameters = {
    type = "object",
    properties = {
      path = { type = "string", description = "the directory (default: the working directory)" },
    },
  },
  run = function(args)
    local dir = type(args.path) == "string" and args.path ~= "" and args.path or "."
    local names, err = core.fs.list(dir)
    if not names then return nil, err end
    local out = {}
    for i, name in ipairs(names) do
      if i > MAX_ENTRIES then
        out[#out + 1] = ("(%d more entries not shown)"):format(#names - MAX_ENTRIES)
        break
      end
      local st = core.fs.stat(dir .. "/" .. name)
      out[#out + 1] = name .. (st and st.type == "dir" and "/" or "")
    end
    if #out == 0 then return "(empty directory)" end
    return table.concat(out, "\n")
  end,
}
