-- kimictl doctor: check, in order, everything a request needs, and name the cause of a failure.
local auth = require "auth"
local cli = require "cli"
local client = require "client"
local core = require "core"
local errors = require "errors"
local paths = require "paths"
local provider = require "provider"
local store = require "auth.store"
local tokens = require "auth.tokens"
local ui = require "ui"

local spec = {
  summary = "Check configuration, login, clock, refresh, network and the API, and say what to fix.",
  usage = "kimictl doctor [--provider NAME] [--profile NAME] [--json]",
  options = {
    cli.opt.provider("kimi"),
    cli.opt.profile,
    cli.opt.json,
  },
  details = "Exit status: 0 when every check passes, 1 when one fails.",
}

-- What a failed request means: a cause code, the message, and the fix. The provider
-- explains its own answers (provider.explain); network failures are named by kind.
local function classify(p, res, err, kind, hint)
  if not res then
    return { cause = kind == "auth" and "auth_expired" or kind or "failed", detail = err, fix = hint or errors.hint(kind) }
  end
  local msg, fix, cause = provider.explain(p, res)
  return { cause = cause, detail = msg, fix = fix }
end

local function check_credentials(p, src, c)
  if src.kind == "missing" then
    local _, msg, _, hint = auth.credentials(p, src)
    return { status = "fail", cause = "no_credentials", detail = msg, fix = hint }
  end
  if src.kind ~= "oauth" then return { status = "ok", detail = src.kind .. " from " .. src.where } end
  local cred, err, code = store.read(src.store)
  if not cred then
    return { status = "fail", cause = code == "missing" and "not_logged_in" or "damaged_credentials", detail = err,
      fix = "Run 'kimictl login'." }
  end
  if cred.access_token == "" then
    return { status = "fail", cause = "revoked", detail = "the stored login was revoked", fix = "Run 'kimictl login'." }
  end
  c.cred = cred
  local f, ferr = core.fs.stat(src.store.path)
  if not f then return { status = "fail", cause = "damaged_credentials", detail = ferr, fix = "Run 'kimictl login'." } end
  local d = core.fs.stat(src.store.dir)
  if (f.mode & 0x3f) ~= 0 or (d and (d.mode & 0x3f) ~= 0) then
    return { status = "warn", cause = "unsafe_permissions",
      detail = ("%s is mode %o in a directory of mode %o"):format(paths.show(src.store.path), f.mode, d and d.mode or 0),
      fix = ("chmod 600 %s && chmod 700 %s"):format(src.store.path, src.store.dir) }
  end
  return { status = "ok", detail = src.where .. ", mode 0600" }
end

local function check_clock(c)
  if not c.cred then return { status = "skip", detail = "no OAuth login" } end
  local cred, now = c.cred, core.proc.now()
  if cred.expires_in > 0 and cred.expires_at - now > cred.expires_in + 600 then
    return { status = "warn", cause = "clock_behind", detail = "the token expires " .. ui.relative(cred.expires_at) ..
      ", later than its lifetime allows", fix = "Your clock seems behind: enable time synchronisation." }
  end
  return { status = "ok", detail = "access token expires " .. ui.relative(cred.expires_at) }
end

local function check_refresh(p, src, c)
  if not c.cred then return { status = "skip", detail = "no OAuth login" } end
  if not tokens.needs_refresh(c.cred) then return { status = "ok", detail = "not needed yet" } end
  local cred, err, kind, hint = tokens.get(p, src.store, src.region, { profile = src.profile })
  if not cred then
    return { status = "fail", cause = kind == "auth" and "refresh_rejected" or "refresh_failed", detail = err, fix = hint }
  end
  c.cred = cred
  return { status = "ok", detail = "refreshed; expires " .. ui.relative(cred.expires_at) }
end

local function check_reach(p, src)
  local url = provider.base_url(p, src.region) .. "/models"
  local res, err, kind = core.http.request { url = url, timeout_ms = 20000,
    headers = { ["User-Agent"] = "kimictl/" .. core.version } }
  if not res then
    local r = classify(p, nil, err, kind)
    r.status = "fail"
    return r
  end
  return { status = "ok", detail = ("%s answered (HTTP %d without credentials)"):format(url:match("^%a+://[^/]+"), res.status) }
end

local function check_api(p, src, req, ok_detail)
  local res, err, kind, hint = client.request(p, req, { profile = src.profile })
  if res and res.status == 200 then return { status = "ok", detail = ok_detail(res) } end
  local r = classify(p, res, err, kind, hint)
  r.status = "fail"
  return r
end

local function model_list(res)
  local doc = core.json.decode(res.body)
  local ids = {}
  for _, m in ipairs(type(doc) == "table" and type(doc.data) == "table" and doc.data or {}) do ids[#ids + 1] = tostring(m.id) end
  return #ids .. " models: " .. table.concat(ids, ", ")
end

local function run_checks(p, src)
  local c, out = {}, {}
  local function add(name, r) r.name = name; out[#out + 1] = r; return r.status ~= "fail" end
  local creds_ok = add("credentials", check_credentials(p, src, c))
  add("clock", check_clock(c))
  local refresh_ok = add("refresh", check_refresh(p, src, c))
  local reach_ok = add("network", check_reach(p, src))
  if creds_ok and refresh_ok and reach_ok then
    if add("models", check_api(p, src, { path = "/models", timeout_ms = 30000 }, model_list)) then
      local model = provider.default_model(p)
      add("chat", model and check_api(p, src, { path = "/chat/completions", timeout_ms = 60000, body = {
        model = model, messages = { { role = "user", content = "Reply with OK." } },
        max_tokens = 1, stream = false } }, function() return model .. " accepted a 1-token request" end)
        or { status = "skip", detail = ("no default model for %s, so no test request was sent"):format(p.name),
             fix = ("Set one of %s, or pass --model to chat."):format(table.concat(p.model_env or {}, ", ")) })
    end
  end
  return out
end

function spec.run(opts)
  local ok, p, err = pcall(provider.load, opts.provider or "kimi")
  local results
  if not ok or not p then
    results = { { name = "configuration", status = "fail", cause = "configuration", detail = tostring(ok and err or p),
      fix = "Fix the file named above (your Lua directory: " .. tostring(core.lua_dir) .. ")." } }
  else
    local src, serr = auth.source(p, opts.profile)
    results = { { name = "configuration", status = src and "ok" or "fail", cause = not src and "configuration" or nil,
      detail = src and ("provider %s, profile %s"):format(p.name, opts.profile or "default") or serr } }
    if src then
      for _, r in ipairs(run_checks(p, src)) do results[#results + 1] = r end
    end
  end
  local failed = 0
  for _, r in ipairs(results) do failed = failed + (r.status == "fail" and 1 or 0) end
  if opts.json then
    io.stdout:write(core.json.encode({ healthy = failed == 0, checks = results }) .. "\n")
  else
    local mark = { ok = cli.style("green", "ok  ", 1), fail = cli.style("red", "FAIL", 1), warn = cli.style("yellow", "warn", 1), skip = "skip" }
    for _, r in ipairs(results) do
      io.stdout:write(("%s %-13s %s\n"):format(mark[r.status], r.name, core.log.redact(tostring(r.detail or ""))))
      if r.fix and r.status ~= "ok" then io.stdout:write("     fix: " .. r.fix:gsub("\n", "\n          ") .. "\n") end
    end
    io.stdout:write(failed == 0 and "Everything kimictl needs works.\n" or (failed .. " check(s) failed.\n"))
  end
  return failed == 0 and cli.EXIT_OK or cli.EXIT_FAIL
end

return spec
