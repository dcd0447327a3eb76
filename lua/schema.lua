-- Checking a table read from the user's files (user.lua, config.lua) against what kimictl
-- reads of it, so that a mistake is named by its field instead of failing deep inside.
local schema = {}

-- schema.misfit(t, spec, kinds, where) -> "where.field must be X, got Y" for the first field
-- that does not fit, or nil. spec maps a field to a kind name or to a nested spec; kinds
-- maps a kind name to { test, what it must be, shows = true when its values are strings
-- (a wrong one is then quoted) }. Fields spec does not name are left alone.
function schema.misfit(t, spec, kinds, where)
  for k, want in pairs(spec) do
    local v = t[k]
    local field = where == "" and k or (where .. "." .. k)
    if v ~= nil and type(want) == "table" then
      if type(v) ~= "table" then return ("%s must be a table, got a %s"):format(field, type(v)) end
      local why = schema.misfit(v, want, kinds, field)
      if why then return why end
    elseif v ~= nil and not kinds[want][1](v) then
      local got = (kinds[want].shows and type(v) == "string") and ("'" .. v .. "'")
        or type(v) == "table" and "a table that does not fit" or ("a " .. type(v))
      return ("%s must be %s, got %s"):format(field, kinds[want][2], got)
    end
  end
end

return schema
