-- OAuth for providers that have a p.oauth table: the device login (RFC 8628) and the
-- refresh grant, with retries for passing failures. Token files are auth/tokens.lua's.
local core = require "core"
local provider = require "provider"

local oauth = {}

local function urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

local function form(t)
  local keys, out = {}, {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do out[#out + 1] = urlencode(k) .. "=" .. urlencode(t[k]) end
  return table.concat(out, "&")
end

-- The OAuth host: the environment first, then the profile's region, then the provider's default.
function oauth.host(p, region)
  return provider.region_url(p, region, "oauth", p.oauth.host_env, p.oauth.host)
end

-- POST a form to the OAuth host -> status, document | nil, message, kind
local function post(p, region, path, fields)
  local headers = provider.expand_headers(p, p.oauth.headers,
    { ["Content-Type"] = "application/x-www-form-urlencoded", Accept = "application/json" })
  local res, err, kind = core.http.request {
    method = "POST", url = oauth.host(p, region) .. path, headers = headers, body = form(fields),
    timeout_ms = p.oauth.timeout_ms or 30000, connect_timeout_ms = 15000,
  }
  if not res then return nil, err, kind end
  local doc = core.json.decode(res.body)
  return res.status, type(doc) == "table" and doc or {}
end

-- oauth.device_start(p, region) -> { user_code, device_code, verification_uri_complete,
--   interval_ms, expires_in } | nil, message
function oauth.device_start(p, region)
  local status, doc, kind = post(p, region, p.oauth.device_path, { client_id = p.oauth.client_id })
  if not status then return nil, doc, kind end
  if status ~= 200 or type(doc.device_code) ~= "string" or type(doc.user_code) ~= "string" then
    return nil, ("the login service answered HTTP %d to the device request%s"):format(status,
      doc.error_description and (": " .. tostring(doc.error_description)) or "")
  end
  return {
    user_code = doc.user_code, device_code = doc.device_code,
    url = doc.verification_uri_complete or doc.verification_uri,
    interval_ms = math.floor((tonumber(doc.interval) or 5) * 1000),
    expires_in = tonumber(doc.expires_in) or 600,
  }
end

-- A token answer -> the six fields every store keeps.
function oauth.credential(doc)
  local expires_in = tonumber(doc.expires_in) or 900
  return {
    access_token = doc.access_token, refresh_token = doc.refresh_token or "",
    expires_at = core.proc.now() + expires_in, expires_in = expires_in + 0.0,
    scope = type(doc.scope) == "string" and doc.scope or "",
    token_type = type(doc.token_type) == "string" and doc.token_type or "Bearer",
  }
end

-- oauth.device_poll(p, region, device) -> credential | nil, state, message
-- state: "pending", "slow_down", "expired", "denied", or "failed".
function oauth.device_poll(p, region, device)
  local status, doc, kind = post(p, region, p.oauth.token_path, {
    client_id = p.oauth.client_id, device_code = device.device_code,
    grant_type = "urn:ietf:params:oauth:grant-type:device_code",
  })
  if not status then return nil, "failed", doc, kind end
  if status == 200 and type(doc.access_token) == "string" then return oauth.credential(doc) end
  local e = doc.error
  if e == "authorization_pending" then return nil, "pending" end
  if e == "slow_down" then return nil, "slow_down" end
  if e == "expired_token" then return nil, "expired" end
  if e == "access_denied" then return nil, "denied", "the sign-in was refused in the browser" end
  return nil, "failed", ("the login service answered HTTP %d%s"):format(status,
    e and (": " .. tostring(doc.error_description or e)) or "")
end

local RETRY_STATUS = { [429] = true, [500] = true, [502] = true, [503] = true, [504] = true }
local RETRY_KIND = { connect = true, timeout = true, reset = true, dns = true }

-- oauth.refresh(p, region, refresh_token) -> credential | nil, message, class, kind
-- class: "rejected" (the grant is dead: log in again) or "failed" (after retries); kind:
-- core.http's kind of the last network failure (tls, dns, ...), or "http".
function oauth.refresh(p, region, refresh_token)
  local delays = p.oauth.retry_delays_ms or { 1000, 2000 }
  local last, last_kind
  for attempt = 1, #delays + 1 do
    local status, doc, kind = post(p, region, p.oauth.token_path, {
      client_id = p.oauth.client_id, grant_type = "refresh_token", refresh_token = refresh_token,
    })
    if status == 200 and type(doc.access_token) == "string" then return oauth.credential(doc) end
    if status == 401 or status == 403 or (status and doc.error == "invalid_grant") then
      return nil, ("the login service refused the refresh (HTTP %d%s)"):format(status,
        doc.error_description and (": " .. tostring(doc.error_description)) or ""), "rejected"
    end
    if status then
      last, last_kind = ("the login service answered HTTP %d to the refresh"):format(status), "http"
      if not RETRY_STATUS[status] then return nil, last, "failed", last_kind end
    else
      last, last_kind = doc, kind
      if not RETRY_KIND[kind] then return nil, last, "failed", last_kind end
    end
    if attempt <= #delays then
      core.log.info(("refresh failed (%s); trying again in %d ms"):format(last, delays[attempt]))
      core.proc.sleep(delays[attempt])
    end
  end
  return nil, last .. " (tried " .. (#delays + 1) .. " times)", "failed", last_kind
end

return oauth
