-- Fresh access tokens from a shared credential file: refresh when near expiry or after a
-- 401, single-flight across processes under the store's lock; adopt what another process
-- rotated; remember a refused refresh token; never damage or delete the file.
--
-- The refresh itself runs in a detached kimictl process (its own session) that takes the
-- lock, sends the refresh, writes the file and exits: the server rotates the refresh token
-- the moment it answers, so the answer must be saved even if the process that asked for it
-- is interrupted (Ctrl-C, a closed terminal, kill -9, the OOM killer).
local core = require "core"
local errors = require "errors"
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

-- The table of refused fingerprints; {} when there is none or it cannot be read (said once).
local function rejected_table()
  local text, err, code = core.fs.read(rejected_file())
  local t = text and core.json.decode(text)
  if text and type(t) ~= "table" then err = "it is damaged" end
  if (not text and code ~= "ENOENT") or (text and type(t) ~= "table") then
    core.log.warn(("cannot read %s (%s): a refused login may be sent again"):format(paths.show(rejected_file()), err))
  end
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
  local ok, err = core.fs.mkdir(paths.state_dir(), "0700")
  if ok then ok, err = core.fs.write_atomic(rejected_file(), core.json.encode(t), "0600") end
  if not ok then
    core.log.warn(("cannot remember the refused login (%s): the next run asks the login service again"):format(err))
  end
end

local function revoked(st)
  return nil, ("the login in %s was revoked"):format(paths.show(st.path)), "auth", LOGIN_AGAIN
end

-- Inside the lock: adopt a token that is now good, or refresh and save.
-- opts.rejected_fp: fingerprint of an access token the API refused; opts.force: refresh anyway.
local function refresh_locked(p, st, region, opts)
  local cur, err = store.read(st)
  if not cur then return nil, err, "auth", LOGIN_AGAIN end
  if cur.access_token == "" then return revoked(st) end
  if not opts.force and not tokens.needs_refresh(cur) and core.hash.sha256(cur.access_token) ~= opts.rejected_fp then
    core.log.debug("using the token another process refreshed in " .. paths.show(st.path))
    return cur
  end
  if tokens.is_rejected(cur.refresh_token) then
    return nil, ("your %s login was refused by the login service earlier and has not changed since"):format(p.name),
      "auth", LOGIN_AGAIN
  end
  local fresh, rerr, class, kind = oauth.refresh(p, region, cur.refresh_token)
  if not fresh and class == "rejected" then
    -- Another client may have rotated the token without our lock: look once more.
    core.proc.sleep(p.oauth.reread_ms or 1000)
    local again = store.read(st)
    if again and again.access_token ~= "" and again.refresh_token ~= cur.refresh_token then return again end
    tokens.remember_rejected(cur.refresh_token, p.oauth.rejected_ttl_s or 300)
    return nil, ("your %s login has expired or was revoked: %s"):format(p.name, rerr), "auth", LOGIN_AGAIN
  elseif not fresh then
    return nil, ("could not refresh the %s login: %s"):format(p.name, rerr), "refresh",
      (errors.hint(kind) or "Try again.") .. " 'kimictl doctor' checks each step."
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

-- tokens.refresh_here(p, st, region, opts) -> cred | nil, message, kind, hint
-- The whole refresh in this process, under the lock: what the detached worker runs.
function tokens.refresh_here(p, st, region, opts)
  local lock <close>, lerr = take_lock(p, st)
  if not lock then
    return nil, "could not take the login's lock: " .. lerr, "auth",
      "Another program (Kimi CLI?) is refreshing the same login; try again."
  end
  return refresh_locked(p, st, region, opts)
end

-- How long a refresh may take: the lock wait, every try and the pauses between them.
local function refresh_budget_ms(p)
  local o, ms = p.oauth, 5000
  for _, d in ipairs(o.retry_delays_ms or { 1000, 2000 }) do ms = ms + d + (o.timeout_ms or 30000) end
  return ms + (o.timeout_ms or 30000) + (o.lock_timeout_ms or 60000) + (o.reread_ms or 1000)
end

-- Run the refresh in a detached `kimictl auth refresh --worker` and adopt its result.
-- Without a way to start it (no executable path), refresh here instead.
local function refresh_detached(p, st, region, opts, profile)
  local exe = core.proc.exe()
  if not exe then
    core.log.info("cannot find kimictl's own executable: refreshing in this process")
    return tokens.refresh_here(p, st, region, opts)
  end
  local argv = { exe, "auth", "refresh", "--worker", "--provider", p.name, "--profile", profile }
  if opts.rejected_fp then argv[#argv + 1] = "--rejected=" .. opts.rejected_fp end
  if opts.force then argv[#argv + 1] = "--force" end
  -- the worker's warnings reach our stderr; it ignores SIGPIPE should that reader go away
  local res, err = core.proc.spawn_detached { argv = argv, timeout_ms = refresh_budget_ms(p), stderr = "inherit" }
  if not res then
    return nil, ("the refresh of the %s login did not finish: %s"):format(p.name, err), "refresh",
      "It goes on in the background; try again in a minute."
  end
  local out = core.json.decode(res.output:match("[^\n]*") or "")
  if type(out) ~= "table" then
    return nil, ("the refresh of the %s login failed (%s)"):format(p.name,
      res.signal and ("killed by signal " .. res.signal) or ("exit status " .. tostring(res.status))), "refresh"
  end
  if not out.ok then return nil, out.message, out.kind, out.hint end
  local cred, rerr = store.read(st)
  if not cred then return nil, rerr, "auth", LOGIN_AGAIN end
  return cred
end

-- One refresh per login in this process: the first task to need one runs it, the others
-- wait for its result (the file lock then serialises processes; flock would see two
-- descriptors of this process as rivals). Keyed by the store's path.
local flights = {}

local function refresh_once(p, st, region, opts, profile)
  local flight = flights[st.path]
  if flight then
    if not flight.done:wait(refresh_budget_ms(p)) then
      return nil, ("the refresh of the %s login did not finish"):format(p.name), "refresh"
    end
    return table.unpack(flight.result, 1, 4)
  end
  flight = { done = core.loop.event(), result = { nil, "the refresh was interrupted", "refresh" } }
  flights[st.path] = flight
  -- however this ends (an error, or the task cancelled), the waiters go on
  local _ <close> = setmetatable({}, { __close = function()
    if flights[st.path] == flight then flights[st.path] = nil end
    flight.done:set()
  end })
  flight.result = table.pack(refresh_detached(p, st, region, opts, profile))
  return table.unpack(flight.result, 1, 4)
end

-- tokens.get(p, st, region[, opts]) -> cred | nil, message, kind, hint
-- opts.rejected_access: an access token the API just refused with 401; refresh unless the
-- file already holds another, good one. opts.force: refresh in any case. opts.profile: the
-- profile st belongs to (for the worker).
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
  if not opts.force and not opts.rejected_access and not tokens.needs_refresh(cred) then return cred end
  return refresh_once(p, st, region, {
    force = opts.force, rejected_fp = opts.rejected_access and core.hash.sha256(opts.rejected_access),
  }, opts.profile or "default")
end

return tokens
