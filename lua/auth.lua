-- Which secret authenticates a provider's requests, where it lives, and a fresh token.
-- Order: the provider's environment variable, then the profile's API key or key_cmd,
-- then (for OAuth providers) the profile's credential file.
local core = require "core"
local paths = require "paths"
local profiles = require "auth.profiles"
local provider = require "provider"
local store = require "auth.store"
local tokens = require "auth.tokens"

local auth = {}

-- The store of an OAuth profile: "default" is the login shared with the official client
-- (Kimi CLI's, or kimi-code's when only that one exists); other profiles are kimictl's own.
function auth.oauth_store(p, profile)
  local o = p.oauth
  if profile ~= "default" or not o.share_dir then return store.kimictl(p.name, profile) end
  local share_env = provider.from_env(o.share_dir_env)
  local cli = store.kimi_cli(share_env or (paths.home() .. "/" .. o.share_dir))
  if share_env or core.fs.stat(cli.path) or not o.successor_dir then return cli end
  local succ = store.kimi_code(provider.from_env(o.successor_dir_env) or (paths.home() .. "/" .. o.successor_dir))
  return core.fs.stat(succ.path) and succ or cli
end

-- auth.source(p, profile) -> { kind, where, key?, cmd?, store?, region? } | nil, message
-- kind: "none", "env", "api_key", "key_cmd", "oauth" or "missing"
function auth.source(p, profile)
  profile = profile or "default"
  local doc, err = profiles.load()
  if not doc then return nil, err end
  local entry = (doc.providers[p.name] or {})[profile]
  if entry == nil and profile ~= "default" then
    return nil, ("there is no profile '%s' for %s"):format(profile, p.name)
  end
  entry = entry or {}
  local src = { profile = profile, region = entry.region }
  if p.auth == "none" then src.kind = "none"; return src end
  local key, var = provider.from_env(p.api_key_env)
  if key then
    src.kind, src.where, src.key = "env", "$" .. var, key
  elseif entry.api_key then
    src.kind, src.where, src.key = "api_key", paths.show(profiles.path()), entry.api_key
  elseif entry.key_cmd then
    src.kind, src.where, src.cmd = "key_cmd", "key_cmd: " .. entry.key_cmd, entry.key_cmd
  elseif p.auth == "oauth" then
    src.kind, src.store = "oauth", auth.oauth_store(p, profile)
    src.where = paths.show(src.store.path) ..
      (src.store.shared_with and (" (shared with " .. src.store.shared_with .. ")") or "")
  else
    src.kind = "missing"
  end
  return src
end

local function run_key_cmd(cmd)
  local f = io.popen(cmd, "r")
  local out = f and f:read("l")
  local ok = f and f:close()
  if not ok or not out or not out:match("%S") then
    return nil, ("the key_cmd '%s' failed or printed nothing"):format(cmd)
  end
  return (out:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- auth.credentials(p, src[, opts]) -> { authorization?, token?, refreshable? } | nil, message, kind, hint
-- opts.rejected_access: see auth/tokens.lua.
function auth.credentials(p, src, opts)
  if src.kind == "none" then return {} end
  local key, err = src.key, nil
  if src.kind == "key_cmd" then key, err = run_key_cmd(src.cmd) end
  if src.kind == "oauth" then
    local cred, msg, kind, hint = tokens.get(p, src.store, src.region, opts)
    if not cred then return nil, msg, kind, hint end
    return { authorization = "Bearer " .. cred.access_token, token = cred.access_token, refreshable = true }
  end
  if src.kind == "missing" then
    local names = table.concat(p.api_key_env or {}, " or ")
    return nil, ("no API key for %s (profile '%s')"):format(p.name, src.profile), "auth",
      (names ~= "" and ("Set " .. names .. ", or run ") or "Run ") ..
      ("'kimictl login --provider %s --api-key-stdin'."):format(p.name)
  end
  if not key then return nil, err, "auth" end
  return { authorization = "Bearer " .. key, token = key }
end

return auth
