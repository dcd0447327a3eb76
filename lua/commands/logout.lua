-- kimictl logout: forget a login (an OAuth credential file or a saved API key).
local auth = require "auth"
local cli = require "cli"
local core = require "core"
local paths = require "paths"
local profiles = require "auth.profiles"
local provider = require "provider"
local store = require "auth.store"
local ui = require "ui"

local spec = {
  summary = "Forget a login: its credential file, or its saved API key.",
  usage = "kimictl logout [--provider NAME] [--profile NAME]",
  options = {
    cli.opt.provider("kimi"),
    cli.opt.profile,
  },
  details = "Logging out of the default Kimi login also logs out Kimi CLI, which shares it.",
}

function spec.run(opts)
  local p, err = provider.load(opts.provider or "kimi")
  if not p then return cli.fail(err) end
  local profile = opts.profile or "default"
  local src, serr = auth.source(p, profile)
  if not src then return cli.fail(serr) end
  local did = false
  if p.auth == "oauth" then
    local st = auth.oauth_store(p, profile)
    local existed = core.fs.stat(st.path)
    local ok, rerr = store.remove(st, p.oauth.lock_timeout_ms or 60000)
    if not ok then return cli.fail("could not remove " .. paths.show(st.path) .. ": " .. rerr) end
    if existed then
      did = true
      ui.say(("Removed %s%s."):format(paths.show(st.path),
        st.shared_with and (" (" .. st.shared_with .. " shared it, so it is logged out too)") or ""))
    end
  end
  if profiles.get(p.name, profile) then
    local ok, perr = profiles.set(p.name, profile, nil)
    if not ok then return cli.fail("could not update " .. paths.show(profiles.path()) .. ": " .. perr) end
    did = true
    ui.say(("Removed the profile %s/%s from %s."):format(p.name, profile, paths.show(profiles.path())))
  end
  if not did then ui.say(("There was no %s login '%s' to remove."):format(p.name, profile)) end
  if src.kind == "env" then ui.say(("Note: %s is still set in your environment."):format(src.where)) end
  return cli.EXIT_OK
end

return spec
