-- Tools the model may call in `kimictl chat --tools a,b`. A tool is a Lua module tools/<name>
-- (yours in the Lua directory shadows a built-in one) returning
--   { name =, description =, parameters = <JSON schema as a table>, run = function(args, ctx) }
-- run returns the result (a string, or a table sent as JSON), or nil and a message; an error
-- it raises is a failed call too. The model sees failures as results, and carries on.
-- A name starting with '$' is one of the provider's own tools ($web_search on Kimi): sent as
-- a builtin_function, and its call answered with its own arguments, as Kimi asks.
local core = require "core"
local paths = require "paths"

local tools = {}

tools.MAX_RESULT = 64 * 1024   -- bytes of a result the model gets; the rest is cut with a note

local function bad(name, why) return nil, ("tool '%s': %s"):format(name, why) end

-- tools.load(name) -> tool | nil, message
function tools.load(name)
  if name:sub(1, 1) == "$" and name:match("^%$[%w_]+$") then
    return { name = name, builtin = true }
  end
  local ok, why = paths.check_name("tool", name)
  if not ok then return nil, why end
  local loaded, t = pcall(require, "tools." .. name)
  if not loaded then
    if tostring(t):find("module 'tools." .. name .. "' not found", 1, true) then
      return nil, ("unknown tool '%s' (yours go in %s/tools/%s.lua)"):format(name, tostring(core.lua_dir), name)
    end
    return bad(name, tostring(t))
  end
  if type(t) ~= "table" then return bad(name, "the file must return a table, got a " .. type(t)) end
  if type(t.run) ~= "function" then return bad(name, "run must be a function") end
  if t.description ~= nil and type(t.description) ~= "string" then return bad(name, "description must be a string") end
  if t.parameters ~= nil and type(t.parameters) ~= "table" then return bad(name, "parameters must be a JSON schema table") end
  t.name = t.name or name
  if type(t.name) ~= "string" or not t.name:match("^[%w_-]+$") then return bad(name, "name must be letters, digits, '-' or '_'") end
  return t
end

-- tools.load_list("a,b") -> { tool, ... } | nil, message
function tools.load_list(list)
  local out, seen = {}, {}
  for name in (list or ""):gmatch("[^,%s]+") do
    if not seen[name] then
      seen[name] = true
      local t, err = tools.load(name)
      if not t then return nil, err end
      out[#out + 1] = t
    end
  end
  return out
end

-- The tools as a chat request lists them.
function tools.specs(list)
  local specs = {}
  for i, t in ipairs(list) do
    specs[i] = t.builtin and { type = "builtin_function", ["function"] = { name = t.name } }
      or { type = "function", ["function"] = { name = t.name, description = t.description or "",
                                               parameters = t.parameters or { type = "object", properties = {} } } }
  end
  return specs
end

local function cut(text)
  if #text <= tools.MAX_RESULT then return text end
  return text:sub(1, tools.MAX_RESULT) .. ("\n[... %d more bytes not shown]"):format(#text - tools.MAX_RESULT)
end

-- tools.run(list, call, ctx) -> content (a string for the tool message), failed (boolean)
-- call is OpenAI's { id, function = { name, arguments } }.
function tools.run(list, call, ctx)
  local fn = call["function"] or {}
  local name, arguments = fn.name, fn.arguments or ""
  local tool
  for _, t in ipairs(list) do if t.name == name then tool = t end end
  if not tool then return ("error: there is no tool named '%s'"):format(tostring(name)), true end
  if tool.builtin then return arguments, false end   -- the provider runs it: its arguments go back
  local args = arguments:match("^%s*$") and {} or core.json.decode(arguments)
  if type(args) ~= "table" then
    return "error: the arguments are not a JSON object: " .. arguments:sub(1, 200), true
  end
  local ok, result, err = xpcall(tool.run, function(e)
    if type(e) == "table" then return e end   -- an interrupt goes on up
    return tostring(e)
  end, args, ctx)
  if not ok then
    if type(result) == "table" then error(result, 0) end
    return "error: " .. result, true
  end
  if result == nil then return "error: " .. tostring(err or "the tool failed"), true end
  if type(result) == "table" then result = core.json.encode(result) end
  return cut(tostring(result)), false
end

return tools
