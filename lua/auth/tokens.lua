-- Fresh access tokens from a shared credential file: refresh when near expiry or after a
-- 401, single-flight across processes under the store's lock; adopt what another process
-- rotated; remember a refused refresh token; never damage or delete the file.
local core = require "core"
local oauth = require "auth.oauth"
local paths = require "paths"
local store = require "auth.store"

local tokens = {}
local LOGIN_AGAIN = "Run 'kimictl login' to sign in again."

-- Kimi CLI's rule: refresh when closer than max(300 s, half the lifetime) to expiry.
function tokens.needs_refresh(cred, now)
  if not cred.expires_at or cred.expires_at <= 0 then return true end
  return (now or core.proc.now()) >= cred.expires_at - math.max(300, (cred.expires_in or 0) * 0.5)
end

-- Refused refresh tokens, kept as fingerprints (never the token) with an expiry time.
local function rejected_file() return paths.state_dir() .. "/rejected-refresh.json" end

local function rejected_table()
  local t = core.json.decode(core.fs.read(rejected_file()) or "{}")
  return type(t) == "table" and t or {}
end

function tokens.is_rejected(refresh_token)
  local until_ = rejected_table()[core.hash.sha256(refresh_token)]
  return type(until_) == "number" and until_ > core.proc.now()
end

function tokens.remember_rejected(refresh_token, ttl_s)
  local t, now = rejected_table(), core.proc.now()
  for k, v in pairs(t) do
    if type(v) ~= "number" or v <= now then t[k] = nil end
  end
  t[core.hash.sha256(refresh_token)] = now + ttl_s
  if core.fs.mkdir(paths.state_dir(), "0700") then
    core.fs.write_atomic(rejected_file(), core.json.encode(t), "0600")
  end
end

local function revoked(st)
  return nil, ("the login in %s was revoked"):format(paths.show(st.path)), "auth", LOGIN_AGAIN
end

-- Inside the lock: adopt a token that is now good, or refresh and save.
local function refresh_locked(p, st, region, opts)
  local cur, err = store.read(st)
  if not cur then return nil, err, "auth", LOGIN_AGAIN end
  if cur.access_token == "" then return revoked(st) end
  if not tokens.needs_refresh(cur) and cur.access_token ~= opts.rejected_access then
    core.log.debug("using the token another process refreshed in " .. paths.show(st.path))
    return cur
  end
  if tokens.is_rejected(cur.refresh_token) then
    return nil, ("your %s login was refused by the login service earlier and has not changed since"):format(p.name),
      "auth", LOGIN_AGAIN
  end
  local fresh, rerr, class = oauth.refresh(p, region, cur.refresh_token)
  if not fresh and class == "rejected" then
    -- Another client may have rotated the token without our lock: look once more.
    core.proc.sleep(p.oauth.reread_ms or 1000)
    local again = store.read(st)
    if again and again.access_token ~= "" and again.refresh_token ~= cur.refresh_token then return again end
    tokens.remember_rejected(cur.refresh_token, p.oauth.rejected_ttl_s or 300)
    return nil, ("your %s login has expired or was revoked: %s"):format(p.name, rerr), "auth", LOGIN_AGAIN
  elseif not fresh then
    return nil, ("could not refresh the %s login: %s"):format(p.name, rerr), "refresh",
      "This is usually passing: try again in a minute. 'kimictl doctor' checks the connection."
  end
  if fresh.refresh_token == "" then fresh.refresh_token = cur.refresh_token end
  local ok, werr = store.write(st, fresh)
  if not ok then
    return nil, werr .. "; the refreshed login could not be kept", "auth",
      "Fix the directory's permissions, then run 'kimictl login'."
  end
  return fresh
end

-- The store's lock, saying so on a terminal when another process holds it for long.
local function take_lock(p, st)
  local lock, err, code = store.lock(st, 1000)
  if lock or code ~= "ETIMEDOUT" then return lock, err end
  if core.proc.isatty(2) then io.stderr:write("kimictl: waiting for another program to finish refreshing the login...\n") end
  return store.lock(st, math.max(0, (p.oauth.lock_timeout_ms or 60000) - 1000))
end

-- tokens.get(p, st, region[, opts]) -> cred | nil, message, kind, hint
-- opts.rejected_access: an access token the API just refused with 401; refresh unless the
-- file already holds another, good one.
function tokens.get(p, st, region, opts)
  opts = opts or {}
  local cred, err, code = store.read(st)
  if not cred then
    if code == "missing" then
      return nil, ("you are not logged in to %s (%s)"):format(p.name, err), "auth", "Run 'kimictl login'."
    end
    return nil, err, "auth"
  end
  if cred.access_token == "" then return revoked(st) end
  if not opts.rejected_access and not tokens.needs_refresh(cred) then return cred end
  local lock <close>, lerr = take_lock(p, st)
  if not lock then
    return nil, "could not take the login's lock: " .. lerr, "auth",
      "Another program (Kimi CLI?) is refreshing the same login; try again."
  end
  return refresh_locked(p, st, region, opts)
end

return tokens
