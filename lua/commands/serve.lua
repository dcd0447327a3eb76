-- kimictl serve: a local OpenAI-compatible gateway that keeps every client authenticated.
local cli = require "cli"
local config = require "config"
local core = require "core"
local gateway = require "serve.gateway"
local paths = require "paths"

local spec = {
  summary = "Run a local OpenAI-compatible gateway that injects fresh credentials.",
  usage = "kimictl serve [--listen HOST:PORT] [--api-key KEY | --api-key-file FILE] [--allow-origin ORIGIN]...",
  options = {
    { "-l", "--listen", value = "HOST:PORT", help = "address to listen on (default 127.0.0.1:8787)" },
    { nil, "--api-key", value = "KEY", help = "require this key from clients (Bearer or x-api-key)" },
    { nil, "--api-key-file", value = "FILE", help = "the same, read from the first line of FILE" },
    { nil, "--allow-origin", value = "ORIGIN", many = true, help = "let web pages from ORIGIN call (CORS); repeatable" },
    { nil, "--log-format", value = "FORMAT", help = "request log on stderr: text (default) or json",
      check = function(v) return (v == "text" or v == "json") and v or nil, 'use "text" or "json"' end },
    { nil, "--max-body", value = "BYTES", help = "largest request body (default 8 MiB)",
      check = function(v) return math.tointeger(tonumber(v)) and tonumber(v) > 0 and v or nil, "a number of bytes > 0" end },
    cli.opt.profile,
  },
  details = [[Point any OpenAI-compatible client at http://127.0.0.1:8787/v1 with any API key (or the one
you set). The model picks the provider: "provider/model", an alias from config.lua, or a model
of the default provider. Settings may also come from config.lua's serve table.

Routes: POST /v1/chat/completions, GET /v1/models, GET /healthz.
Security: loopback only unless an API key is set; Host must be a loopback name; browser
Origins are refused unless allowed.
Runs until SIGINT or SIGTERM, then lets answers in flight finish (up to 10 s) and exits 0.
Exit status: 1 when it cannot listen, 2 on bad usage.]],
}

-- "HOST:PORT", "[::1]:PORT" or ":PORT" -> host, port | nil, message
local function parse_listen(s)
  local host, port = s:match("^%[([%x:]+)%]:(%d+)$")
  if not host then host, port = s:match("^([^:]*):(%d+)$") end
  port = tonumber(port)
  if not port or port > 65535 then return nil, ("--listen wants HOST:PORT, got '%s'"):format(s) end
  if host == "" or host == "localhost" then host = "127.0.0.1" end
  return host, port
end

local function is_loopback(host) return host:match("^127%.") ~= nil or host == "::1" end

local function read_key(opts, s)
  if opts.api_key then return opts.api_key end
  local file = opts.api_key_file or s.api_key_file
  if file then
    local text, err = core.fs.read(file)
    if not text then return nil, "cannot read the API key file: " .. err end
    local key = text:match("^%s*(%S+)")
    if not key then return nil, ("the API key file %s is empty"):format(paths.show(file)) end
    return key
  end
  return s.api_key
end

local function set_of(list)
  local set = {}
  for _, v in ipairs(list or {}) do set[v] = true end
  return set
end

-- What a user pastes into openclaw.json to use the gateway (KIMI-API.md §7).
local function openclaw_entry(url, keyed)
  return core.json.encode({ models = { providers = { kimictl = {
    baseUrl = url, apiKey = keyed and "YOUR-API-KEY" or "local", api = "openai-completions",
    models = { { id = "kimi-for-coding", name = "Kimi for coding" } },
  } } } })
end

function spec.run(opts)
  local s = config.load().serve or {}
  local host, port = parse_listen(opts.listen or s.listen or "127.0.0.1:8787")
  if not host then return cli.usage_error(spec, port) end
  local key, kerr = read_key(opts, s)
  if kerr then return cli.fail(kerr) end
  if not is_loopback(host) and not key then
    return cli.usage_error(spec, ("listening on %s would let other machines use your login: "):format(host) ..
      "set an API key (--api-key-file FILE) or listen on 127.0.0.1")
  end
  local limit = core.proc.raise_nofile()
  if limit and limit < 4096 then
    core.log.warn(("only %d open files allowed (ulimit -n): about %d streams at once"):format(limit, limit // 2 - 16))
  end
  local srv, err = core.server.listen {
    host = host, port = port, max_body = tonumber(opts.max_body) or s.max_body,
    header_timeout_ms = s.header_timeout_ms and math.max(s.header_timeout_ms, 1),
    idle_timeout_ms = s.idle_timeout_ms and math.max(s.idle_timeout_ms, 1),
    handler = gateway.handler({
      key_hash = key and core.hash.sha256(key), allow_origins = set_of(opts.allow_origin or s.allow_origins),
      allow_hosts = {}, log_format = opts.log_format or s.log_format or "text", profile = opts.profile,
    }),
  }
  if not srv then
    return cli.fail(err, err:find("in use") and "Is another kimictl serve running? Pick another port with --listen."
      or "Listen on an address of this machine, such as 127.0.0.1.")
  end
  local shown = host:find(":") and ("[" .. host .. "]") or host
  local url = ("http://%s:%d/v1"):format(shown, srv:port())
  io.stdout:write(("kimictl serve: listening on %s (default provider %s)\n\n"):format(url, config.default_provider()),
    openclaw_entry(url, key ~= nil), "\n",
    "(the line above is an OpenClaw provider for openclaw.json; any OpenAI client takes the URL)\n")
  local shown_ok, werr = io.stdout:flush()
  if not shown_ok then
    srv:close()
    return cli.fail("cannot write where the gateway listens: " .. tostring(werr))
  end
  local signal = core.loop.wait_signal()
  core.log.info(("%s: finishing %d answer(s) in flight"):format(signal, srv:active()))
  srv:stop()
  local deadline = core.proc.clock_ms() + (s.drain_ms or 10000)
  while srv:active() > 0 and core.proc.clock_ms() < deadline do core.loop.sleep(20) end
  gateway.shutting_down = true
  srv:close()
  return cli.EXIT_OK
end

return spec
