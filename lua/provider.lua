-- Providers: load one by name (the user's copy first), check it, apply user.lua patches,
-- and resolve its settings. Requests go through client.lua.
local core = require "core"
local errors = require "errors"
local paths = require "paths"
local schema = require "schema"

local provider = {}

-- The fields kimictl reads, and what each must be. Other fields are the provider's own.
local MS = "ms"
local SCHEMA = {
  name = "string", description = "string", api = "string", auth = "string",
  base_url = "string", default_model = "string", messages_path = "string", key_header = "string",
  max_tokens = MS, replay_reasoning = "boolean",
  base_url_env = "names", api_key_env = "names", model_env = "names",
  headers = "headers", hints = "table", explain = "function", chat_request = "function",
  chat_chunks = "function", messages_request = "function", repair = "table",
  regions = "regions",
  timeouts = { connect_ms = MS, idle_ms = MS, total_ms = MS },
  oauth = {
    host = "string", host_env = "names", client_id = "string", device_path = "string",
    token_path = "string", headers = "headers", share_dir = "string", share_dir_env = "names",
    successor_dir = "string", successor_dir_env = "names", slow_down_ms = MS, reread_ms = MS,
    retry_delays_ms = "ms_list", rejected_ttl_s = MS, lock_timeout_ms = MS, timeout_ms = MS,
  },
}

local function is_ms(v) return math.tointeger(v) ~= nil and v >= 0 end
local function list_of(ok) return function(v)
  if type(v) ~= "table" then return false end
  for i, x in pairs(v) do
    if math.type(i) ~= "integer" or not ok(x) then return false end
  end
  return true
end end

-- Each kind: a test, and how to name what it wants.
local KINDS = {
  string = { function(v) return type(v) == "string" end, "a string", shows = true },
  table = { function(v) return type(v) == "table" end, "a table" },
  boolean = { function(v) return type(v) == "boolean" end, "true or false" },
  ["function"] = { function(v) return type(v) == "function" end, "a function" },
  ms = { is_ms, "a whole number >= 0" },
  ms_list = { list_of(is_ms), "a list of whole numbers >= 0" },
  names = { list_of(function(x) return type(x) == "string" end), "a list of strings" },
  headers = { function(v)
    if type(v) ~= "table" then return false end
    for k, x in pairs(v) do
      if type(k) ~= "string" or not (type(x) == "string" or type(x) == "function" or x == false) then return false end
    end
    return true
  end, 'a table of { ["Name"] = "value" | function | false }' },
  regions = { function(v)
    if type(v) ~= "table" then return false end
    for _, r in pairs(v) do
      if type(r) ~= "table" then return false end
    end
    return true
  end, "a table of region tables" },
}

-- The first field of t that does not fit the schema, as "where.field must be X, got a Y".
-- user.lua in the user's Lua directory may return { providers = { NAME = { field = value } } };
-- tables are merged key by key, so a patch can change one header and keep the rest.
local user_patch
local function load_user_patch()
  if user_patch ~= nil then return user_patch end
  user_patch = {}
  local path = core.lua_dir and (core.lua_dir .. "/user.lua")
  if not path or not core.fs.stat(path) then return user_patch end
  local shown, result = paths.show(path), paths.run_file(path, "user.lua")
  local why = type(result) ~= "table" and ("must return a table, got a " .. type(result))
    or (result.providers ~= nil and type(result.providers) ~= "table" and "providers must be a table of provider patches")
  for name, patch in pairs(not why and result.providers or {}) do
    why = type(patch) ~= "table" and ("providers.%s must be a table, got a %s"):format(tostring(name), type(patch))
      or schema.misfit(patch, SCHEMA, KINDS, "providers." .. tostring(name))
    if why then break end
  end
  if why then errors.mistake(shown .. ": " .. why) end
  user_patch = result
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
  local ok, why = paths.check_name("provider", name)
  if not ok then return nil, why end
  local loaded, p = pcall(require, "providers." .. name)
  if not loaded then
    if tostring(p):find("module 'providers." .. name .. "' not found", 1, true) then
      return nil, ("unknown provider '%s'"):format(name)
    end
    error(p, 0)
  end
  local file = "providers/" .. name .. ".lua"
  if type(p) ~= "table" then return nil, ("%s must return a table, got a %s"):format(file, type(p)) end
  why = schema.misfit(p, SCHEMA, KINDS, "provider")
  if why then return nil, file .. ": " .. why end
  p.name = p.name or name
  local patch = (load_user_patch().providers or {})[name]
  if patch then merge(p, patch); file = file .. " (patched by user.lua)" end
  p.api = p.api or "openai"
  if p.api ~= "openai" and p.api ~= "anthropic" then
    return nil, ('%s: api must be "openai" or "anthropic", got "%s"'):format(file, p.api)
  elseif p.api == "anthropic" and not p.messages_path then
    return nil, file .. ': api "anthropic" needs messages_path (the Messages endpoint under base_url, e.g. "/messages")'
  end
  cache[name] = p
  return p
end

-- provider.names() -> every provider's name, built in or the user's, sorted
function provider.names()
  local seen, names = {}, {}
  local function add(n)
    if n and not seen[n] and paths.check_name("provider", n) then seen[n] = true; names[#names + 1] = n end
  end
  for _, f in ipairs(core.embedded()) do add(f:match("^providers/(.+)%.lua$")) end
  for _, f in ipairs(core.lua_dir and core.fs.list(core.lua_dir .. "/providers") or {}) do add(f:match("^(.+)%.lua$")) end
  table.sort(names)
  return names
end

-- provider.origin(name) -> { file = path of the user's copy or nil, builtin = boolean,
-- patched = true when user.lua changes its fields }
function provider.origin(name)
  local mine = core.lua_dir and (core.lua_dir .. "/providers/" .. name .. ".lua")
  local builtin = false
  for _, f in ipairs(core.embedded()) do if f == "providers/" .. name .. ".lua" then builtin = true end end
  return { file = mine and core.fs.stat(mine) and mine or nil, builtin = builtin,
           patched = (load_user_patch().providers or {})[name] ~= nil }
end

-- provider.exists(name) -> true when name loads as a provider (for "provider/model" ids)
function provider.exists(name)
  local ok, p = pcall(provider.load, name)
  return ok and p ~= nil
end

-- The first environment variable of a list that is set and not empty -> value, name. The
-- environment does not change while kimictl runs: each list is looked up once.
local found_in_env = setmetatable({}, { __mode = "k" })
local function from_env(names)
  if not names then return nil end
  local hit = found_in_env[names]
  if not hit then
    hit = {}
    for _, n in ipairs(names) do
      local v = os.getenv(n)
      if v and v ~= "" then hit = { v, n }; break end
    end
    found_in_env[names] = hit
  end
  return hit[1], hit[2]
end
provider.from_env = from_env

-- A URL of the provider: the environment first, then the profile's region (its `field`,
-- "api" or "oauth"), then the default; no final slash.
function provider.region_url(p, region, field, env_names, default)
  local r = region and p.regions and p.regions[region]
  local url = from_env(env_names) or (r and r[field]) or default or ""
  if url:byte(-1) ~= 47 then return url end   -- most have no final "/": no pattern to run
  return (url:gsub("/+$", ""))
end

function provider.base_url(p, region)
  return provider.region_url(p, region, "api", p.base_url_env, p.base_url)
end

function provider.default_model(p)
  return from_env(p.model_env) or p.default_model
end

-- Header values as sent: a function(provider) is called, false drops the header.
function provider.expand_headers(p, list, into)
  into = into or {}
  for k, v in pairs(list or {}) do
    if type(v) == "function" then v = v(p) end
    if v then into[k] = v end
  end
  return into
end

-- All headers of a request: the provider's, then the credentials, then the request's own.
function provider.headers(p, creds, extra)
  local h = provider.expand_headers(p, p.headers)
  if p.key_header and creds.token then h[p.key_header] = creds.token   -- e.g. x-api-key
  elseif creds.authorization then h["Authorization"] = creds.authorization end
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

local CAUSE = { [401] = "auth_expired", [402] = "payment_required", [403] = "forbidden",
                [404] = "not_found", [429] = "rate_limited" }

-- What an HTTP error answer means -> message ("kimi answered HTTP 401: ..."), hint, cause.
-- The provider's own explain(p, res, doc) may refine all three; res.source (set by
-- client.request) says where the credentials came from.
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
    -- a proxy's error page (nginx: "<html><head><title>502 Bad Gateway</title>...") by its title
    local title = res.body:sub(1, 4096):match("^%s*<.-<[Tt][Ii][Tt][Ll][Ee]>([^<]*)</[Tt][Ii][Tt][Ll][Ee]>")
    detail = (title or res.body:sub(1, 200)):gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
  end
  local msg = ("%s answered HTTP %d%s"):format(p.name, res.status, detail ~= "" and (": " .. detail) or "")
  local hint = (p.hints or {})[res.status]
  local cause = CAUSE[res.status] or (res.status >= 500 and "server_error") or ("http_" .. res.status)
  if res.status >= 500 then hint = hint or "The service had a problem; try again in a moment." end
  local src = res.source
  if res.status == 401 and src and src.kind == "env" then
    hint = ("The key in %s was refused: correct it, or unset it%s."):format(src.where,
      p.auth == "oauth" and (" to use your " .. p.name .. " login") or "")
  end
  if type(p.explain) == "function" then
    local m2, h2, c2 = p.explain(p, res, doc)
    msg, hint, cause = m2 or msg, h2 or hint, c2 or cause
  end
  return msg, hint, cause
end

return provider
