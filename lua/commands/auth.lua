-- kimictl auth status | token: what logins exist (never their secrets), or a fresh token.
local auth = require "auth"
local cli = require "cli"
local core = require "core"
local profiles = require "auth.profiles"
local provider = require "provider"
local store = require "auth.store"
local tokens = require "auth.tokens"
local paths = require "paths"
local ui = require "ui"

local spec = {
  summary = "Show your logins, print a fresh access token for scripts, or refresh a login now.",
  usage = "kimictl auth status [--json] | kimictl auth token|refresh [--provider NAME] [--profile NAME]",
  verbs = { "status", "token", "refresh" },
  max_args = 1,
  options = {
    cli.opt.json,
    cli.opt.provider("kimi"),
    cli.opt.profile,
    { nil, "--worker", hidden = true },            -- the detached refresh (auth/tokens.lua)
    { nil, "--force", hidden = true },
    { nil, "--rejected", value = "SHA256", hidden = true },
  },
  details = [[status lists every login: provider, profile, where its secret lives, and when the
access token expires. It never prints a secret. token refreshes the login if needed and
prints the access token (or the API key) alone on stdout. refresh refreshes an OAuth
login now, even if its token is still fresh.
Exit status of status: 0 when every login shown is usable, 1 otherwise.]],
}

-- The options each subcommand takes; any other is a usage error.
local TAKES = { status = { json = true }, token = { provider = true, profile = true },
                refresh = { provider = true, profile = true, worker = true, force = true, rejected = true } }

local BUILT_IN = { "kimi", "moonshot", "openai" }

-- One row per login that exists: OAuth files present, saved keys, keys in the environment.
local function rows()
  local doc, err = profiles.load()
  if not doc then return nil, err end
  local names, seen = {}, {}
  for _, n in ipairs(BUILT_IN) do names[#names + 1], seen[n] = n, true end
  for n in pairs(doc.providers) do
    if not seen[n] then names[#names + 1], seen[n] = n, true end
  end
  local out = {}
  for _, name in ipairs(names) do
    local p = provider.load(name)
    local list = { "default" }
    for prof in pairs(p and doc.providers[name] or {}) do
      if prof ~= "default" then list[#list + 1] = prof end
    end
    table.sort(list, function(a, b) return a == "default" or (b ~= "default" and a < b) end)
    for _, prof in ipairs(p and list or {}) do
      local src = auth.source(p, prof)
      local row = src and { provider = name, profile = prof, kind = src.kind, where = src.where, ok = true }
      if row and src.kind == "oauth" then
        local cred, rerr, code = store.read(src.store)
        if code == "missing" then row = nil
        elseif not cred then row.ok, row.state = false, rerr
        elseif cred.access_token == "" then row.ok, row.state = false, "revoked: run 'kimictl login'"
        else
          row.expires_at = math.floor(cred.expires_at)
          row.state = cred.expires_at > core.proc.now() and ("access token expires " .. ui.relative(cred.expires_at))
            or ("access token expired " .. ui.relative(cred.expires_at) .. "; refreshed on next use")
          if tokens.is_rejected(cred.refresh_token) then row.ok, row.state = false, "refused by the login service: run 'kimictl login'" end
        end
      elseif row and src.kind == "missing" then
        row = nil
      elseif row then
        row.state = src.kind == "key_cmd" and "API key from a command" or "API key"
      end
      out[#out + 1] = row
    end
  end
  return out
end

local function status(opts)
  local list, err = rows()
  if not list then return cli.fail(err) end
  local all_ok = true
  for _, r in ipairs(list) do all_ok = all_ok and r.ok end
  if opts.json then
    io.stdout:write(core.json.encode({ logins = core.json.array(list) }) .. "\n")
  elseif #list == 0 then
    io.stdout:write("No logins yet. Run 'kimictl login' (Kimi Code) or " ..
      "'kimictl login --provider moonshot --api-key-stdin'.\n")
  else
    for _, r in ipairs(list) do
      io.stdout:write(("%s/%s: %s\n  %s: %s\n"):format(r.provider, r.profile,
        r.ok and r.state or cli.style("red", r.state, 1), r.kind == "oauth" and "login" or "key", r.where))
    end
  end
  return all_ok and cli.EXIT_OK or cli.EXIT_FAIL
end

local function token(opts)
  local p, err = provider.load(opts.provider or "kimi")
  if not p then return cli.fail(err) end
  local src, serr = auth.source(p, opts.profile)
  if not src then return cli.fail(serr) end
  local creds, cerr, _, hint = auth.credentials(p, src)
  if not creds then return cli.fail(cerr, hint) end
  io.stdout:write((creds.token or "") .. "\n")
  return cli.EXIT_OK
end

-- kimictl auth refresh: refresh now, in the detached worker; --worker is that worker.
local function refresh(opts)
  local p, err = provider.load(opts.provider or "kimi")
  if not p then return cli.fail(err) end
  local src, serr = auth.source(p, opts.profile)
  if not src then return cli.fail(serr) end
  if src.kind ~= "oauth" then
    return cli.fail(("the %s login (profile '%s') is a key from %s: there is nothing to refresh"):format(
      p.name, src.profile, src.where or "nowhere"))
  end
  if opts.worker then
    core.proc.detach()   -- out of the terminal's reach: Ctrl-C, hang-ups and closed pipes stop only the parent
    local cred, msg, kind, hint = tokens.refresh_here(p, src.store, src.region,
      { force = opts.force, rejected_fp = opts.rejected })
    io.stdout:write(core.json.encode(cred and { ok = true } or { ok = false, message = msg, kind = kind, hint = hint }) .. "\n")
    return cred and cli.EXIT_OK or cli.EXIT_FAIL
  end
  local cred, msg, _, hint = tokens.get(p, src.store, src.region, { force = true, profile = src.profile })
  if not cred then return cli.fail(msg, hint) end
  ui.say(("Refreshed the %s login in %s; the access token expires %s."):format(p.name,
    paths.show(src.store.path), ui.relative(cred.expires_at)))
  return cli.EXIT_OK
end

local RUN = { status = status, token = token, refresh = refresh }

function spec.run(opts, args)
  local sub = args[1]
  if not RUN[sub] then
    return cli.usage_error(spec, sub and ("unknown auth command '" .. sub .. "'") or "say status, token or refresh")
  end
  for k in pairs(opts) do
    if not TAKES[sub][k] then
      return cli.usage_error(spec, ("'kimictl auth %s' takes no --%s"):format(sub, k:gsub("_", "-")))
    end
  end
  return RUN[sub](opts)
end

return spec
