-- The one path every request to a provider takes (chat, doctor, usage, and later serve):
-- the provider's headers, fresh credentials, and one retry after a forced refresh on 401.
local auth = require "auth"
local core = require "core"
local provider = require "provider"

local client = {}

local function send(p, src, creds, req)
  local body = req.body
  local extra = {}
  for k, v in pairs(req.headers or {}) do extra[k] = v end
  if type(body) == "table" then
    body = core.json.encode(body)
    extra["Content-Type"] = extra["Content-Type"] or "application/json"
  end
  local t = p.timeouts or {}
  local url = provider.base_url(p, src.region) .. req.path
  if core.log.level() == "debug" then core.log.debug(("%s %s"):format(req.method or (body and "POST" or "GET"), url)) end
  return core.http.request {
    method = req.method, url = url, headers = provider.headers(p, creds, extra), body = body,
    on_event = req.on_event, timeout_ms = req.timeout_ms or t.total_ms,
    connect_timeout_ms = t.connect_ms, idle_timeout_ms = req.idle_timeout_ms or t.idle_ms,
  }
end

-- client.request(p, req[, ctx]) -> res | nil, message, kind, hint
-- req: { method=, path=, body= (string, or table sent as JSON), headers=, on_event=, timeout_ms= }
-- ctx: { profile = name }. An HTTP error answer is a res with its status, not an error;
-- res.source = { kind, where } says which credentials were sent (for provider.explain).
function client.request(p, req, ctx)
  local src, serr = auth.source(p, ctx and ctx.profile)
  if not src then return nil, serr, "auth" end
  local creds, err, kind, hint = auth.credentials(p, src)
  if not creds then return nil, err, kind, hint end
  local res, rerr, rkind = send(p, src, creds, req)
  if res and res.status == 401 and creds.refreshable then
    core.log.info("the API refused the access token (401): refreshing the login once and retrying")
    creds, err, kind, hint = auth.credentials(p, src, { rejected_access = creds.token })
    if not creds then return nil, err, kind, hint end
    res, rerr, rkind = send(p, src, creds, req)
  end
  if res then res.source = { kind = src.kind, where = src.where } end
  return res, rerr, rkind
end

return client
