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

-- The program of a command line, for showing: "pass ..." for "pass show moonshot".
local function program(cmd)
  return (cmd:match("^%s*(%S+)") or "?") .. (cmd:match("^%s*%S+%s+%S") and " ..." or "")
end

-- auth.source's answers while profiles.json is unchanged (profiles.load gives the same doc):
-- doc -> provider -> profile -> source. An OAuth source is worked out each time, since its
-- store depends on which credential file exists.
local known_sources = setmetatable({}, { __mode = "k" })

local function known_source(doc, p, profile)
  local by_p = known_sources[doc]
  local by_profile = by_p and by_p[p]
  return by_profile and by_profile[profile]
end

local function keep_source(doc, p, profile, src)
  local by_p = known_sources[doc] or setmetatable({}, { __mode = "k" })
  known_sources[doc] = by_p
  by_p[p] = by_p[p] or {}
  by_p[p][profile] = src
  return src
end

-- auth.source(p, profile) -> { kind, where, key?, cmd?, store?, region? } | nil, message
-- kind: "none", "env", "api_key", "key_cmd", "oauth" or "missing". The answer is shared:
-- read it, do not change it.
function auth.source(p, profile)
  profile = profile or "default"
  local loaded = profiles.load()
  local hit = loaded and known_source(loaded, p, profile)
  if hit then return hit end
  local okname, why = paths.check_name("profile", profile)
  if not okname then return nil, why end
  local doc, err = profiles.load()
  if not doc then return nil, err end
  local entry = (doc.providers[p.name] or {})[profile]
  if entry == nil and profile ~= "default" then
    return nil, ("there is no profile '%s' for %s"):format(profile, p.name)
  end
  entry = entry or {}
  local src = { profile = profile, region = entry.region }
  if p.auth == "none" then src.kind = "none"; return keep_source(doc, p, profile, src) end
  local key, var = provider.from_env(p.api_key_env)
  if key then
    src.kind, src.where, src.key = "env", "$" .. var, key
  elseif entry.api_key then
    src.kind, src.where, src.key = "api_key", paths.show(profiles.path()), entry.api_key
  elseif entry.key_cmd then
    -- where names the program only: the rest of a command line may hold a secret
    src.kind, src.where, src.cmd = "key_cmd", "key_cmd: " .. program(entry.key_cmd), entry.key_cmd
  elseif p.auth == "oauth" then
    src.kind, src.store = "oauth", auth.oauth_store(p, profile)
    src.where = paths.show(src.store.path) ..
      (src.store.shared_with and (" (shared with " .. src.store.shared_with .. ")") or "")
  else
    src.kind = "missing"
  end
  return src.kind == "oauth" and src or keep_source(doc, p, profile, src)
end

-- A key_cmd's key, kept for the life of the process (forgotten after a 401).
local key_cache = {}

local function run_key_cmd(cmd, again)
  if key_cache[cmd] and not again then return key_cache[cmd] end
  local f = io.popen(cmd, "r")
  local out = f and f:read("l")
  local ok = f and f:close()
  if not ok or not out or not out:match("%S") then
    return nil, ("the key_cmd (%s) failed or printed nothing"):format(program(cmd))
  end
  key_cache[cmd] = out:gsub("^%s+", ""):gsub("%s+$", "")
  return key_cache[cmd]
end

-- auth.credentials(p, src[, opts]) -> { authorization?, token?, refreshable? } | nil, message, kind, hint
-- opts.rejected_access: see auth/tokens.lua (a key_cmd is run again). refreshable: a 401
-- is worth one more try with what this returns then.
function auth.credentials(p, src, opts)
  if src.kind == "none" then return {} end
  local key, err = src.key, nil
  if src.kind == "key_cmd" then key, err = run_key_cmd(src.cmd, opts and opts.rejected_access) end
  if src.kind == "oauth" then
    local cred, msg, kind, hint = tokens.get(p, src.store, src.region,
      { rejected_access = opts and opts.rejected_access, profile = src.profile })
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
  return { authorization = "Bearer " .. key, token = key, refreshable = src.kind == "key_cmd" }
end

-- auth.save_key(p, profile, { api_key = | key_cmd =, region = }) -> note | nil, message
-- Saves the key in the profile; note says what it now shadows, if anything.
function auth.save_key(p, profile, key)
  local entry, err = profiles.get(p.name, profile)
  if err then return nil, err end
  entry = entry or {}
  entry.api_key, entry.key_cmd = key.api_key, key.key_cmd
  entry.region = key.region or entry.region
  local ok, serr = profiles.set(p.name, profile, entry)
  if not ok then return nil, "could not save the key: " .. serr end
  if p.auth == "oauth" then
    local st = auth.oauth_store(p, profile)
    if core.fs.stat(st.path) then
      return ("kimictl now uses this key instead of your %s login in %s (the login is kept). " ..
        "To use the login again: kimictl logout --provider %s%s --key-only"):format(p.name, paths.show(st.path),
        p.name, profile ~= "default" and (" --profile " .. profile) or "")
    end
  end
  return ""
end

-- auth.save_login(p, profile, cred, region) -> store | nil, message
-- An OAuth login replaces a key saved in the profile (a key would shadow it).
function auth.save_login(p, profile, cred, region)
  local entry, err = profiles.get(p.name, profile)
  if err then return nil, err end
  if entry and (entry.api_key or entry.key_cmd) or region or profile ~= "default" then
    entry = entry or {}
    entry.region, entry.api_key, entry.key_cmd = region or entry.region, nil, nil
    local ok, perr = profiles.set(p.name, profile, entry)
    if not ok then return nil, "could not save the profile: " .. perr end
  end
  local st = auth.oauth_store(p, profile)
  local lock <close>, lerr = store.lock(st, p.oauth.lock_timeout_ms or 60000)
  if not lock then return nil, "could not take the login's lock: " .. lerr end
  local ok, werr = store.write(st, cred)
  if not ok then return nil, werr end
  return st
end

-- auth.logout(p, profile, key_only) -> list of what was removed (may be empty) | nil, message
function auth.logout(p, profile, key_only)
  local entry, err = profiles.get(p.name, profile)
  if err then return nil, err end
  local removed = {}
  if p.auth == "oauth" and not key_only then
    local st = auth.oauth_store(p, profile)
    local existed = core.fs.stat(st.path)
    local ok, rerr = store.remove(st, p.oauth.lock_timeout_ms or 60000)
    if not ok then return nil, ("could not remove %s: %s"):format(paths.show(st.path), rerr) end
    if existed then
      removed[#removed + 1] = paths.show(st.path) ..
        (st.shared_with and (" (" .. st.shared_with .. " shared it, so it is logged out too)") or "")
    end
  end
  if entry and key_only then
    if entry.api_key or entry.key_cmd then
      entry.api_key, entry.key_cmd = nil, nil
      local ok, perr = profiles.set(p.name, profile, next(entry) and entry or nil)
      if not ok then return nil, ("could not update %s: %s"):format(paths.show(profiles.path()), perr) end
      removed[#removed + 1] = ("the key saved for %s/%s"):format(p.name, profile)
    end
  elseif entry then
    local ok, perr = profiles.set(p.name, profile, nil)
    if not ok then return nil, ("could not update %s: %s"):format(paths.show(profiles.path()), perr) end
    removed[#removed + 1] = ("the profile %s/%s from %s"):format(p.name, profile, paths.show(profiles.path()))
  end
  return removed
end

return auth
