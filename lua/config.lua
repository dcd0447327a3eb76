-- The user's configuration: $XDG_CONFIG_HOME/kimictl/config.lua (else ~/.config/kimictl/),
-- a Lua file returning defaults, model aliases and `serve` settings. Read once, checked at
-- the edge: a mistake is reported with the file and the line, or the field.
local core = require "core"
local errors = require "errors"
local paths = require "paths"
local schema = require "schema"

local config = {}

-- What each field must be: a kind name, or a table of the fields inside it.
local SCHEMA = {
  provider = "name", model = "string", aliases = "aliases",
  serve = { listen = "string", api_key = "string", api_key_file = "string", allow_origins = "strings",
            log_format = "log_format", max_body = "bytes", drain_ms = "ms",
            header_timeout_ms = "ms", idle_timeout_ms = "ms" },
  chat = { retries = "count", retry_first_ms = "ms", retry_max_ms = "ms", retry_max_wait_ms = "ms",
           max_steps = "positive", tools = "string", thinking = "boolean", max_tokens = "positive" },
}

local CHECK = {
  name = { function(v) return paths.check_name("provider", v) ~= nil end, "a provider name", shows = true },
  string = { function(v) return type(v) == "string" end, "a string", shows = true },
  bytes = { function(v) return math.tointeger(v) ~= nil and v > 0 end, "a whole number of bytes > 0" },
  ms = { function(v) return math.tointeger(v) ~= nil and v >= 0 end, "a whole number of milliseconds >= 0" },
  count = { function(v) return math.tointeger(v) ~= nil and v >= 0 end, "a whole number >= 0" },
  positive = { function(v) return math.tointeger(v) ~= nil and v > 0 end, "a whole number > 0" },
  boolean = { function(v) return type(v) == "boolean" end, "true or false" },
  log_format = { function(v) return v == "text" or v == "json" end, '"text" or "json"', shows = true },
  strings = { function(v)
    if type(v) ~= "table" then return false end
    for k, x in pairs(v) do if math.type(k) ~= "integer" or type(x) ~= "string" then return false end end
    return true
  end, "a list of strings" },
  aliases = { function(v)
    if type(v) ~= "table" then return false end
    for k, x in pairs(v) do if type(k) ~= "string" or type(x) ~= "string" then return false end end
    return true
  end, 'a table of { alias = "provider/model" }' },
}

function config.path()
  return paths.config_dir() .. "/config.lua"
end

-- config.read(path) -> the configuration in path ({} when there is no such file); raises a
-- message naming the file and the line or field on a mistake.
function config.read(path)
  if not core.fs.stat(path) then return {} end
  local result = paths.run_file(path, "config.lua")
  local why = type(result) ~= "table" and ("must return a table, got a " .. type(result))
    or schema.misfit(result, SCHEMA, CHECK, "")
  if why then errors.mistake(paths.show(path) .. ": " .. why) end
  return result
end

local loaded
-- config.load() -> the user's configuration, read once per process.
function config.load()
  loaded = loaded or config.read(config.path())
  return loaded
end

-- The default provider: $KIMICTL_PROVIDER, then config.lua's, then kimi.
function config.default_provider()
  local env = os.getenv("KIMICTL_PROVIDER")
  if env and env ~= "" then return env end
  return config.load().provider or "kimi"
end

-- config.resolve_model(id, known[, cfg]) -> provider name, model id (nil: the provider's default)
-- id (else config's model) may be an alias, "provider/model" (when known(provider) says the
-- provider exists), or a bare model of the default provider. Model ids may contain "/".
function config.resolve_model(id, known, cfg)
  cfg = cfg or config.load()
  id = id or cfg.model
  if id == nil then return config.default_provider(), nil end
  id = (cfg.aliases or {})[id] or id
  local prefix, rest = id:match("^([%w_-]+)/(.+)$")
  if prefix and known(prefix) then return prefix, rest end
  return config.default_provider(), id
end

return config
