-- kimictl login: sign in to Kimi Code with the device flow, or store an API key.
local auth = require "auth"
local cli = require "cli"
local client = require "client"
local core = require "core"
local oauth = require "auth.oauth"
local paths = require "paths"
local profiles = require "auth.profiles"
local provider = require "provider"
local store = require "auth.store"
local ui = require "ui"

local spec = {
  summary = "Sign in to Kimi Code (device login), or save an API key for a provider.",
  usage = "kimictl login [--provider NAME] [--profile NAME] [--region REGION] [--no-browser] [--api-key-stdin | --key-cmd CMD]",
  options = {
    cli.opt.provider("kimi"),
    cli.opt.profile,
    { nil, "--region", value = "REGION", help = "kimi: mainland-cn (kimi.com) or global (kimi.ai); moonshot: global or cn" },
    { nil, "--no-browser", help = "only print the sign-in address; do not open a browser" },
    { nil, "--api-key-stdin", help = "read an API key from stdin (asked for, unechoed, on a terminal)" },
    { nil, "--key-cmd", value = "CMD", help = "save a command that prints the API key (e.g. 'pass show moonshot')" },
  },
  details = [[The default Kimi login is the one Kimi CLI uses (~/.kimi/credentials/kimi-code.json):
signing in here signs Kimi CLI in too, and both refresh it safely. Other profiles are
kimictl's own, under ~/.config/kimictl/.

Examples:
  kimictl login
  kimictl login --region global --profile work
  printf '%s\n' "$KEY" | kimictl login --provider moonshot --api-key-stdin]],
}

-- Save an API key read from stdin, or the command that prints one, in the profile.
local function save_api_key(p, profile, region, key_cmd)
  local key
  if not key_cmd then
    key = core.proc.read_secret(("API key for %s: "):format(p.name))
    key = key and key:gsub("^%s+", ""):gsub("%s+$", "")
    if not key or key == "" then
      return cli.fail("no API key on stdin",
        "Pipe it in: printf '%s\\n' \"$KEY\" | kimictl login --provider " .. p.name .. " --api-key-stdin")
    end
  end
  local note, err = auth.save_key(p, profile, { api_key = key, key_cmd = key_cmd, region = region })
  if not note then return cli.fail(err) end
  ui.say(("Saved the %s for %s (profile '%s') in %s."):format(key_cmd and "key command" or "API key",
    p.name, profile, paths.show(profiles.path())))
  if note ~= "" then ui.say(note) end
  return cli.EXIT_OK
end

local function open_browser(url)
  local u = core.proc.uname()
  local opener = u.sysname == "Darwin" and "open" or ((os.getenv("DISPLAY") or os.getenv("WAYLAND_DISPLAY")) and "xdg-open")
  if opener then os.execute(opener .. " '" .. url:gsub("'", "") .. "' >/dev/null 2>&1 &") end
end

-- The device flow: show the code, poll at the server's pace, restart when the code expires.
local function device_login(p, region, no_browser)
  for _ = 1, 3 do
    local dev, err = oauth.device_start(p, region)
    if not dev then return nil, err end
    ui.say("To sign in, open this address and confirm the code:")
    ui.say("  " .. dev.url)
    ui.say("  code: " .. dev.user_code)
    if not no_browser then open_browser(dev.url) end
    ui.progress("Waiting for you to confirm (Ctrl-C to stop)")
    local interval, deadline = dev.interval_ms, core.proc.now() + dev.expires_in
    local state, msg
    repeat
      core.proc.sleep(interval)
      ui.progress(".")
      local cred
      cred, state, msg = oauth.device_poll(p, region, dev)
      if cred then ui.progress("\n"); return cred end
      if state == "slow_down" then interval = interval + (p.oauth.slow_down_ms or 5000) end
    until state == "expired" or state == "denied" or state == "failed" or core.proc.now() > deadline
    ui.progress("\n")
    if state == "denied" or state == "failed" then return nil, msg end
    ui.say("The code expired before it was confirmed; here is a new one.")
  end
  return nil, "the sign-in codes kept expiring; run 'kimictl login' again when you are ready"
end

-- The models the new login may use; a refusal (Kimi's allow-list above all) is explained.
local function list_models(p, profile)
  local res, err, _, hint = client.request(p, { path = "/models", timeout_ms = 30000 }, { profile = profile })
  if res and res.status ~= 200 then
    local msg, why = provider.explain(p, res)
    return cli.fail("the login works, but " .. msg, why)
  end
  local doc = res and core.json.decode(res.body)
  if type(doc) ~= "table" or type(doc.data) ~= "table" then
    ui.say("(Could not list the models now" .. (err and (": " .. err) or "") .. "; 'kimictl doctor' checks the connection.)")
    if hint then ui.say(hint) end
    return cli.EXIT_OK
  end
  io.stdout:write("Models this account can use:\n")
  for _, m in ipairs(doc.data) do
    local ctx = math.type(m.context_length) and (" (" .. m.context_length .. " tokens of context)") or ""
    io.stdout:write(("  %s%s\n"):format(tostring(m.id), ctx))
  end
  return cli.EXIT_OK
end

function spec.run(opts)
  local p, err = provider.load(opts.provider or "kimi")
  if not p then return cli.fail(err) end
  local profile = opts.profile or "default"
  if opts.api_key_stdin and opts.key_cmd then
    return cli.usage_error(spec, "--api-key-stdin and --key-cmd are two ways to give a key: choose one")
  end
  if opts.region and not (p.regions and p.regions[opts.region]) then
    local names = {}
    for k in pairs(p.regions or {}) do names[#names + 1] = k end
    table.sort(names)
    return cli.usage_error(spec, ("%s has no region '%s' (%s)"):format(p.name, opts.region,
      #names > 0 and ("choose " .. table.concat(names, " or ")) or "it has no regions"))
  end
  if opts.api_key_stdin or opts.key_cmd then return save_api_key(p, profile, opts.region, opts.key_cmd) end
  if p.auth ~= "oauth" then
    return cli.fail(p.name .. " signs in with an API key, not a browser",
      ("Run: printf '%%s\\n' \"$KEY\" | kimictl login --provider %s --api-key-stdin"):format(p.name), cli.EXIT_USAGE)
  end
  local entry, perr = profiles.get(p.name, profile)
  if perr then return cli.fail(perr) end
  local ok, werr = store.check_writable(auth.oauth_store(p, profile))
  if not ok then return cli.fail(werr, "Fix the directory (or HOME), then run 'kimictl login' again.") end
  local region = opts.region or (entry and entry.region)
  local cred, lerr = device_login(p, region, opts.no_browser)
  if not cred then return cli.fail("sign-in failed: " .. lerr, "Run 'kimictl login' to try again.") end
  local st, serr = auth.save_login(p, profile, cred, region)
  if not st then return cli.fail(serr) end
  ui.say(("Signed in to %s. The login is saved in %s%s."):format(p.name, paths.show(st.path),
    st.shared_with and (", shared with " .. st.shared_with) or ""))
  return list_models(p, profile)
end

return spec
