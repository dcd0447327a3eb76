-- kimictl providers: what each provider is, where its file comes from, and whether you have
-- set it up.
local cli = require "cli"
local config = require "config"
local core = require "core"
local models = require "models"
local paths = require "paths"
local provider = require "provider"

local spec = {
  summary = "List the providers: built in or yours (with the file), how they sign in, and whether they are configured.",
  usage = "kimictl providers [--json]",
  options = { cli.opt.json },
  details = [[A file in ]] .. tostring(core.lua_dir) .. [[/providers/NAME.lua replaces the built-in
provider NAME or adds a new one; user.lua there can change a few fields of one (README).

Exit status: 0, or 1 when a provider's file does not load (it is listed with the reason).]],
}

function spec.run(opts)
  local list, bad = {}, false
  local default = config.default_provider()
  for _, name in ipairs(provider.names()) do
    local o = provider.origin(name)
    local ok, p, err = pcall(provider.load, name)
    if not ok then p, err = nil, tostring(type(p) == "table" and p.message or p) end
    local e = { name = name, builtin = o.builtin, file = o.file, patched = o.patched, default = name == default or nil }
    if p then
      e.description, e.auth, e.api, e.base_url = p.description, p.auth, p.api, provider.base_url(p)
      e.configured = models.has_credentials(p)
    else
      e.error, bad = err, true
    end
    list[#list + 1] = e
  end
  if opts.json then
    io.stdout:write(core.json.encode(core.json.array(list)) .. "\n")
    return bad and cli.EXIT_FAIL or cli.EXIT_OK
  end
  for _, e in ipairs(list) do
    local from = e.file and ("yours: " .. paths.show(e.file) .. (e.builtin and " (replaces the built-in one)" or ""))
      or "built in"
    if e.patched then from = from .. ", patched by user.lua" end
    io.stdout:write(("%s%s  %s\n"):format(cli.style("bold", e.name, 1), e.default and " (default)" or "", from))
    if e.error then
      io.stdout:write("    " .. cli.style("red", "does not load: ", 1) .. e.error .. "\n")
    else
      io.stdout:write(("    %s\n    auth: %s, api: %s, %s\n    %s\n"):format(e.description or "", e.auth or "?", e.api,
        e.base_url, e.configured and cli.style("green", "configured", 1) or "not configured (no login or key)"))
    end
  end
  return bad and cli.EXIT_FAIL or cli.EXIT_OK
end

return spec
