-- The one Lua entry C calls: require("kimictl")(argv) -> exit code.
local core = require "core"
local cli = require "cli"
local errors = require "errors"

-- The environment does not change while kimictl runs, and getenv reads it line by line: a
-- gateway asks for the same few variables on every request, so each is looked up once.
do
  local getenv, seen = os.getenv, {}
  os.getenv = function(name)
    local v = seen[name]
    if v == nil then v = getenv(name) or false; seen[name] = v end
    return v or nil
  end
end

-- Each command lives in lua/commands/<name>.lua and returns a spec with a run function.
local commands = {
  { "chat", "Send a prompt and stream the answer; tools, sessions, JSON output" },
  { "sessions", "List, show or remove saved chat sessions" },
  { "serve", "Run a local OpenAI-compatible gateway with fresh credentials" },
  { "models", "List the models of the providers you configured" },
  { "providers", "List the providers: built in or yours, and whether configured" },
  { "login", "Sign in to Kimi Code, or save an API key" },
  { "logout", "Forget a login" },
  { "auth", "Show logins (auth status) or print a fresh token (auth token)" },
  { "doctor", "Check configuration, login and connection, and name what is wrong" },
  { "usage", "Show the plan's quota and when it resets" },
  { "completion", "Print shell completions (bash, zsh, fish) or the man page" },
  { "help", "Show help for kimictl or one command" },
  { "version", "Print the version" },
  { "lua", "Run a Lua script with kimictl's modules (for tests and tinkering)" },
}

local function top_help()
  local lines = {
    "kimictl: use your Kimi subscription, or any OpenAI-compatible API, from any tool.",
    "",
    "Usage: kimictl <command> [options]",
    "",
    "Commands:",
  }
  for _, c in ipairs(commands) do lines[#lines + 1] = ("  %-10s %s"):format(c[1], c[2]) end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "Options: -h, --help    show help;  --version    print the version"
  lines[#lines + 1] = "Run 'kimictl help <command>' or 'kimictl <command> --help' for details."
  lines[#lines + 1] = "Your Lua overrides: " .. (core.lua_dir or "(no HOME: set KIMICTL_LUA_DIR)")
  return table.concat(lines, "\n") .. "\n"
end

local top_spec = { name = "kimictl", usage = "kimictl <command> [options]" }

local function is_command(name)
  for _, c in ipairs(commands) do
    if c[1] == name then return true end
  end
end

local function load_command(name)
  local spec = require("commands." .. name)
  spec.name = spec.name or name
  return spec
end

local function run_command(name, argv)
  local spec = load_command(name)
  local opts, rest = cli.parse(spec, argv, 2)
  if not opts then return cli.usage_error(spec, rest) end
  if opts.help then
    io.stdout:write(cli.help(spec))
    return cli.EXIT_OK
  end
  return spec.run(opts, rest, { commands = commands, top_help = top_help, load = load_command }) or 0
end

-- A mistake in the user's files is printed as it is; anything else is a bug, raised on
-- with its traceback when debugging.
local function run_caught(name, argv)
  local ok, code = xpcall(run_command, function(e)
    if type(e) ~= "string" or core.log.level() ~= "debug" then return e end   -- mistakes, interrupts
    return debug.traceback(tostring(e), 2)
  end, name, argv)
  if ok then return code end
  if errors.is_mistake(code) then return cli.fail(code.message) end
  error(code, 0)
end

return function(argv)
  local first = argv[1]
  if first == nil or first == "-h" or first == "--help" then
    io.stdout:write(top_help())
    return cli.EXIT_OK
  elseif first == "--version" or first == "-V" then
    first = "version"
  elseif first:sub(1, 1) == "-" then
    return cli.usage_error(top_spec, ("unknown option '%s'"):format(first))
  elseif not is_command(first) then
    return cli.usage_error(top_spec, ("unknown command '%s'"):format(first))
  end
  return run_caught(first, argv)
end
