-- kimictl logout: forget a login (an OAuth credential file or a saved API key).
local auth = require "auth"
local cli = require "cli"
local provider = require "provider"
local ui = require "ui"

local spec = {
  summary = "Forget a login: its credential file, or its saved API key.",
  usage = "kimictl logout [--provider NAME] [--profile NAME] [--key-only]",
  options = {
    cli.opt.provider("kimi"),
    cli.opt.profile,
    { nil, "--key-only", help = "forget only the saved API key or key command; keep the OAuth login" },
  },
  details = [[Logging out of the default Kimi login also logs out Kimi CLI, which shares it.
Exit status: 0 when something was removed, 1 when there was nothing to remove or it failed.]],
}

function spec.run(opts)
  local p, err = provider.load(opts.provider or "kimi")
  if not p then return cli.fail(err) end
  local profile = opts.profile or "default"
  local removed, rerr = auth.logout(p, profile, opts.key_only)
  if not removed then return cli.fail(rerr) end
  for _, what in ipairs(removed) do ui.say("Removed " .. what .. ".") end
  local _, var = provider.from_env(p.api_key_env)
  if var then ui.say(("Note: $%s is still set in your environment and is used first."):format(var)) end
  if #removed == 0 then
    return cli.fail(("there was no %s %s '%s' to remove"):format(p.name, opts.key_only and "key for profile" or "login",
      profile), "'kimictl auth status' lists your logins.")
  end
  return cli.EXIT_OK
end

return spec
