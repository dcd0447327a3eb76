-- Command-line parsing and the conventions every command shares: usage, exit codes, messages.
local core = require "core"
local paths = require "paths"

local cli = {}

cli.EXIT_OK, cli.EXIT_FAIL, cli.EXIT_USAGE = 0, 1, 2

-- Options several commands share; every command also takes -h/--help.
local HELP = { "-h", "--help", help = "show this help" }
local function name_of(what) return function(v) return paths.check_name(what, v) end end
cli.opt = {
  provider = function(default)
    return { nil, "--provider", value = "NAME", check = name_of("provider"),
             help = "provider to use (default: " .. default .. ")" }
  end,
  profile = { "-P", "--profile", value = "NAME", check = name_of("profile"),
              help = "which login of the provider (default: default)" },
  json = { nil, "--json", help = "print JSON instead of text" },
}

-- An option spec: { "-p", "--prompt", value = "PROMPT", help = "...", check = fn }; short
-- may be nil; check(value) -> value | nil, message refuses a bad value as a usage error;
-- many = true collects every value given into a list.
local function find_option(spec, flag)
  for _, o in ipairs(spec.options or {}) do
    if o[1] == flag or o[2] == flag then return o end
  end
  if flag == HELP[1] or flag == HELP[2] then return HELP end
end

local function key_of(o)
  return (o[2] or o[1]):gsub("^%-+", ""):gsub("%-", "_")
end

-- cli.parse(spec, argv, first) -> opts, positional | nil, message
-- Accepts --name value, --name=value, -n value, flags, and -- to end the options.
-- spec.max_args (default 0) bounds the positional arguments.
function cli.parse(spec, argv, first)
  local opts, rest, i = {}, {}, first or 1
  while i <= #argv do
    local a = argv[i]
    if a == "--" then
      table.move(argv, i + 1, #argv, #rest + 1, rest)
      break
    elseif a:sub(1, 1) == "-" and #a > 1 then
      local flag, inline = a:match("^(%-%-[^=]+)=(.*)$")
      flag = flag or a
      local o = find_option(spec, flag)
      if not o then return nil, ("unknown option '%s' for 'kimictl %s'"):format(flag, spec.name) end
      if o.value then
        local v = inline
        if v == nil then
          i = i + 1
          v = argv[i]
        end
        if v == nil then return nil, ("option '%s' needs a value (%s)"):format(flag, o.value) end
        if o.check then
          local ok, why = o.check(v)
          if not ok then return nil, ("%s: %s"):format(flag, why) end
        end
        if o.many then   -- given again: one more value in the list
          opts[key_of(o)] = opts[key_of(o)] or {}
          table.insert(opts[key_of(o)], v)
        else
          opts[key_of(o)] = v
        end
      elseif inline then
        return nil, ("option '%s' takes no value"):format(flag)
      else
        opts[key_of(o)] = true
      end
    else
      rest[#rest + 1] = a
    end
    i = i + 1
  end
  if #rest > (spec.max_args or 0) then
    return nil, ("unexpected argument '%s' for 'kimictl %s'"):format(rest[(spec.max_args or 0) + 1], spec.name)
  end
  return opts, rest
end

-- The help text of one command, from its spec.
function cli.help(spec)
  local lines = { spec.summary, "", "Usage: " .. spec.usage, "", "Options:" }
  local options = { table.unpack(spec.options or {}) }
  options[#options + 1] = HELP
  for _, o in ipairs(options) do
    local names = (o[1] and (o[1] .. ", ") or "    ") .. o[2] .. (o.value and (" " .. o.value) or "")
    if not o.hidden then lines[#lines + 1] = ("  %-28s %s"):format(names, o.help or "") end
  end
  if spec.details then
    lines[#lines + 1] = ""
    lines[#lines + 1] = spec.details
  end
  return table.concat(lines, "\n") .. "\n"
end

local function use_color(fd)
  local nc = os.getenv("NO_COLOR")
  return (nc == nil or nc == "") and os.getenv("TERM") ~= "dumb" and core.proc.isatty(fd)
end

-- cli.style("red", text): ANSI colour on a terminal, plain text otherwise (NO_COLOR honoured).
local codes = { red = "31", green = "32", yellow = "33", dim = "2", bold = "1" }
function cli.style(name, text, fd)
  if not use_color(fd or 2) then return text end
  return ("\27[%sm%s\27[0m"):format(codes[name], text)
end

-- cli.fail(message[, hint]) -> EXIT_FAIL, after telling the user what went wrong and what to do.
function cli.fail(message, hint, code)
  io.stdout:flush()   -- what was printed so far comes first, never glued to the message
  io.stderr:write(cli.style("red", "kimictl: ") .. core.log.redact(message) .. "\n")
  if hint then io.stderr:write(core.log.redact(hint) .. "\n") end
  return code or cli.EXIT_FAIL
end

-- cli.usage_error(spec, message) -> EXIT_USAGE
function cli.usage_error(spec, message)
  io.stderr:write("kimictl: " .. message .. "\n")
  io.stderr:write("Usage: " .. spec.usage .. "\nRun 'kimictl " ..
    (spec.name == "kimictl" and "" or (spec.name .. " ")) .. "--help' for more.\n")
  return cli.EXIT_USAGE
end

return cli
