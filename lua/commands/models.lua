-- kimictl models: the models of the providers you configured, live from each one's /models.
local cli = require "cli"
local config = require "config"
local core = require "core"
local models = require "models"
local paths = require "paths"
local provider = require "provider"

local spec = {
  summary = "List the models of the providers you configured (a login or a key), live from each one's /models.",
  usage = "kimictl models [--provider NAME] [--refresh] [--json]",
  options = {
    { nil, "--provider", value = "NAME", check = function(v) return paths.check_name("provider", v) end,
      help = "only this provider's models" },
    { nil, "--refresh", help = "ask the providers again instead of using the list fetched in the last 5 minutes" },
    cli.opt.json,
  },
  details = [[* marks the default model (config.lua's, else the default provider's own); use a
model as PROVIDER/MODEL anywhere a model is asked for, or through an alias from config.lua.

Exit status: 0 when every provider answered, 1 when one could not be asked (the message says why).]],
}

local CACHE_S = 300

-- A provider's models, from the cache file when it is fresh (5 minutes), else asked again.
local function fetch(p, refresh)
  local path = paths.cache_dir() .. "/models-" .. p.name .. ".json"
  local base = provider.base_url(p)
  if not refresh then
    local doc = core.json.decode(core.fs.read(path) or "")
    if type(doc) == "table" and doc.base_url == base and type(doc.models) == "table"
      and math.tointeger(doc.fetched) and core.proc.now() - doc.fetched < CACHE_S then
      return doc.models
    end
  end
  local list, why = models.of(p)
  if list and core.fs.mkdir(paths.cache_dir(), "0700") then
    local ok, err = core.fs.write_atomic(path, core.json.encode({ base_url = base, fetched = math.floor(core.proc.now()),
                                                                  models = core.json.array(list) }), "0600")
    if not ok then core.log.debug("model cache not written: " .. tostring(err)) end
  end
  return list, why
end

local function size(n)
  if not n then return "" end
  if n >= 1000000 and n % 1048576 == 0 then return (n // 1048576) .. "M" end
  if n >= 1000 then return ("%dk"):format((n + 512) // 1024) end
  return tostring(n)
end

function spec.run(opts)
  local names = opts.provider and { opts.provider } or models.configured(true)
  local cfg = config.load()
  local default_name, default_model = config.resolve_model(nil, provider.exists)
  if not default_model and provider.exists(default_name) then default_model = provider.default_model(provider.load(default_name)) end
  local out, failed = {}, false
  for _, name in ipairs(names) do
    local p, err = provider.load(name)
    local entry = { name = name }
    if not p then entry.error = err
    else
      local list, why = fetch(p, opts.refresh)
      entry.error = why
      entry.models = list and core.json.array({}) or nil
      local dflt = name == default_name and default_model
      for _, m in ipairs(list or {}) do
        m.ref = name .. "/" .. m.id
        m.default = m.id == dflt or nil
        table.insert(entry.models, m)
      end
    end
    failed = failed or entry.error ~= nil
    out[#out + 1] = entry
  end
  local aliases = {}
  for k, v in pairs(cfg.aliases or {}) do aliases[#aliases + 1] = { alias = k, model = v } end
  table.sort(aliases, function(a, b) return a.alias < b.alias end)

  if opts.json then
    io.stdout:write(core.json.encode({ providers = core.json.array(out), aliases = core.json.array(aliases),
      default = default_name .. "/" .. tostring(default_model or "") }) .. "\n")
    return failed and cli.EXIT_FAIL or cli.EXIT_OK
  end
  if #out == 0 then
    return cli.fail("no provider is configured yet", "Log in with 'kimictl login', or set a key (README: Providers).")
  end
  for _, e in ipairs(out) do
    io.stdout:write(cli.style("bold", e.name, 1) .. "\n")
    if e.error then io.stdout:write("  " .. cli.style("red", "cannot list: ", 1) .. e.error .. "\n") end
    for _, m in ipairs(e.models or {}) do
      local caps = {}
      if m.context_length then caps[#caps + 1] = size(m.context_length) .. " context" end
      if m.thinking then caps[#caps + 1] = "thinking" end
      if m.image_input then caps[#caps + 1] = "images" end
      io.stdout:write(("  %s %-34s %s\n"):format(m.default and "*" or " ", m.ref, table.concat(caps, ", ")))
    end
  end
  if #aliases > 0 then
    io.stdout:write(cli.style("bold", "aliases (config.lua)", 1) .. "\n")
    for _, a in ipairs(aliases) do io.stdout:write(("    %-34s -> %s\n"):format(a.alias, a.model)) end
  end
  return failed and cli.EXIT_FAIL or cli.EXIT_OK
end

return spec
