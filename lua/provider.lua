-- Providers: load one by name (the user's copy first), apply user.lua patches, and
-- resolve its settings. Requests go through client.lua.
local core = require "core"

local provider = {}

-- user.lua in the user's Lua directory may return { providers = { NAME = { field = value } } };
-- tables are merged key by key, so a patch can change one header and keep the rest.
local user_patch
local function load_user_patch()
  if user_patch ~= nil then return user_patch end
  user_patch = {}
  local path = core.lua_dir and (core.lua_dir .. "/user.lua")
  if not path or not core.fs.stat(path) then return user_patch end
  local chunk, err = loadfile(path, "t")
  if not chunk then error("your user.lua does not load: " .. err, 0) end
  local ok, result = xpcall(chunk, debug.traceback)
  if not ok then error("your user.lua failed: " .. tostring(result), 0) end
  if type(result) == "table" then user_patch = result end
  return user_patch
end

local function merge(into, patch)
  for k, v in pairs(patch) do
    if type(v) == "table" and type(into[k]) == "table" then merge(into[k], v)
    else into[k] = v end
  end
  return into
end

local cache = {}

-- provider.load(name) -> provider | nil, message
function provider.load(name)
  if cache[name] then return cache[name] end
  if not name:match("^[%w_-]+$") then return nil, ("bad provider name '%s'"):format(name) end
  local ok, p = pcall(require, "providers." .. name)
  if not ok then
    if tostring(p):find("module 'providers." .. name .. "' not found", 1, true) then
      return nil, ("unknown provider '%s'"):format(name)
    end
    error(p, 0)
  end
  if type(p) ~= "table" then return nil, ("providers/%s.lua must return a table"):format(name) end
  p.name = p.name or name
  local patch = (load_user_patch().providers or {})[name]
  if patch then merge(p, patch) end
  cache[name] = p
  return p
end

-- The first environment variable of a list that is set and not empty.
local function from_env(names)
  for _, n in ipairs(names or {}) do
    local v = os.getenv(n)
    if v and v ~= "" then return v, n end
  end
end
provider.from_env = from_env

-- The base URL: the environment first, then the region's (if the profile chose one), then the default.
function provider.base_url(p, region)
  local r = region and p.regions and p.regions[region]
  return ((from_env(p.base_url_env) or (r and r.api) or p.base_url or ""):gsub("/+$", ""))
end

function provider.default_model(p)
  return from_env(p.model_env) or p.default_model
end

-- All headers of a request: the provider's, then the credentials, then the request's own.
-- A provider header may be a function(provider) -> value; false drops it.
function provider.headers(p, creds, extra)
  local h = {}
  for k, v in pairs(p.headers or {}) do
    if type(v) == "function" then v = v(p) end
    if v then h[k] = v end
  end
  if creds.authorization then h["Authorization"] = creds.authorization end
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

-- What an HTTP error answer means: "HTTP 401: message (type)" and a hint for the user.
function provider.explain(p, res)
  local detail = ""
  local doc = core.json.decode(res.body or "")
  local e = type(doc) == "table" and doc.error
  if type(e) == "table" then
    detail = tostring(e.message or "")
    local kind = e.type or e.code
    if kind and kind ~= core.json.null then detail = detail .. " (" .. tostring(kind) .. ")" end
  elseif type(e) == "string" then
    detail = e
  elseif res.body and #res.body > 0 then
    detail = res.body:sub(1, 200):gsub("%s+", " ")
  end
  local msg = ("%s answered HTTP %d%s"):format(p.name, res.status, detail ~= "" and (": " .. detail) or "")
  local hint = (p.hints or {})[res.status]
  if not hint and res.status >= 500 then hint = "The service had a problem; try again in a moment." end
  if type(p.explain) == "function" then
    local m2, h2 = p.explain(p, res, doc)
    msg, hint = m2 or msg, h2 or hint
  end
  return msg, hint
end

return provider
