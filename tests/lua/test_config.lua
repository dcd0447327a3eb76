-- config.lua: reading the user's configuration and resolving model names (no network).
local config = require "config"
local core = require "core"

local function file(text)
  local path = os.tmpname()
  assert(core.fs.write_atomic(path, text, "0600"))
  return path
end

local function fails(text, want)
  local ok, err = pcall(config.read, file(text))
  assert(not ok and tostring(err):find(want, 1, true), tostring(err))
end

return {
  ["a missing file is an empty configuration"] = function()
    local cfg = config.read("/nonexistent/kimictl/config.lua")
    assert(type(cfg) == "table" and next(cfg) == nil)
  end,
  ["a good file is read as it is"] = function()
    local cfg = config.read(file([[return { provider = "kimi", aliases = { fast = "kimi/kimi-for-coding-highspeed" },
      serve = { listen = "127.0.0.1:9000", allow_origins = { "http://localhost:3000" }, max_body = 1048576 } }]]))
    assert(cfg.serve.listen == "127.0.0.1:9000" and cfg.aliases.fast:find("highspeed"))
  end,
  ["mistakes name the file and the line or field"] = function()
    fails("return {\n  provider = 'kimi'\n  model = 'x'\n}", ":3:")
    fails("local t = nil\nreturn t.x", ":2:")
    fails("return 7", "must return a table, got a number")
    fails("return { serve = 'x' }", "serve must be a table, got a string")
    fails("return { serve = { max_body = -1 } }", "serve.max_body must be a whole number of bytes > 0")
    fails("return { serve = { log_format = 'xml' } }", "serve.log_format must be \"text\" or \"json\", got 'xml'")
    fails("return { aliases = { fast = 5 } }", "aliases must be a table of")
    fails("return { provider = '../x' }", "provider must be a provider name, got '../x'")
    fails("return { serve = { allow_origins = 'http://x' } }", "serve.allow_origins must be a list of strings")
  end,
  ["models resolve through aliases and provider prefixes"] = function()
    local cfg = { aliases = { fast = "kimi/kimi-for-coding-highspeed", mine = "bare-model" } }
    local known = function(name) return name == "kimi" or name == "openai" end
    local p, m = config.resolve_model("fast", known, cfg)
    assert(p == "kimi" and m == "kimi-for-coding-highspeed")
    p, m = config.resolve_model("openai/gpt-4o-mini", known, cfg)
    assert(p == "openai" and m == "gpt-4o-mini")
    p, m = config.resolve_model("meta-llama/Llama-3", known, cfg)   -- not a provider: a model id with a slash
    assert(p == config.default_provider() and m == "meta-llama/Llama-3")
    p, m = config.resolve_model("openai/org/model", known, cfg)
    assert(p == "openai" and m == "org/model")
    p, m = config.resolve_model(nil, known, { model = "openai/x" })
    assert(p == "openai" and m == "x")
    p, m = config.resolve_model(nil, known, {})
    assert(m == nil)
  end,
}
