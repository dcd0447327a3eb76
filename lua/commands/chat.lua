-- kimictl chat: a prompt answered as it streams, in a session that is saved as it goes, with
-- tools written in Lua; text for people, json and stream-json for programs.
local agent = require "chat.agent"
local cli = require "cli"
local config = require "config"
local core = require "core"
local output = require "chat.output"
local provider = require "provider"
local session = require "chat.session"
local tools = require "chat.tools"

local function number_in(lo, hi, integer)
  return function(v)
    local n = tonumber(v)
    if not n or (integer and not math.tointeger(n)) or n < lo or n > hi then
      return nil, ("must be %s from %s to %s"):format(integer and "a whole number" or "a number", lo, hi)
    end
    return v
  end
end
local function one_of(set, names)
  return function(v) if set[v] then return v end return nil, "must be " .. names end
end

local spec = {
  summary = "Send a prompt to a model and stream the answer as it arrives; conversations are saved as sessions.",
  usage = "kimictl chat [PROMPT...] [-p PROMPT] [-m MODEL] [--session ID | --continue] [--tools LIST] [options]\n" ..
          "       kimictl chat [options]     (on a terminal: an interactive chat)",
  max_args = math.maxinteger,
  options = {
    { "-p", "--prompt", value = "PROMPT", help = "the prompt (else the arguments, else stdin when it is not a terminal)" },
    { "-m", "--model", value = "ID", help = "model id, provider/model, or an alias from config.lua" },
    cli.opt.provider("$KIMICTL_PROVIDER, config.lua's, or kimi"),
    cli.opt.profile,
    { "-s", "--system", value = "TEXT", help = "a system prompt (kept by the session)" },
    { nil, "--thinking", help = "ask the model to think first (shown dimmed on stderr)" },
    { nil, "--no-thinking", help = "ask the model not to think, and show no thinking" },
    { nil, "--max-tokens", value = "N", check = number_in(1, 10000000, true), help = "the most tokens an answer may have" },
    { nil, "--temperature", value = "X", check = number_in(0, 2), help = "sampling temperature, 0 to 2" },
    { nil, "--session", value = "ID", check = session.check_id, help = "resume the session ID, or start it" },
    { "-c", "--continue", help = "resume the latest session" },
    { nil, "--tools", value = "LIST", help = "tools the model may call, e.g. read_file,list_dir,search,shell" },
    { nil, "--allow-shell", help = "let the shell tool run commands without asking" },
    { nil, "--output-format", value = "FORMAT", check = one_of(output.FORMATS, "text, json or stream-json"),
      choices = { "text", "json", "stream-json" },
      help = "text (default), json (one object at the end) or stream-json (JSON lines)" },
    { nil, "--input-format", value = "FORMAT", check = one_of({ text = true, ["stream-json"] = true }, "text or stream-json"),
      choices = { "text", "stream-json" },
      help = "text (default) or stream-json (user messages as JSON lines on stdin)" },
  },
  details = [[With no prompt on a terminal, chat is interactive: line editing and history (kept in
$XDG_STATE_HOME/kimictl/history), /help for its commands, Ctrl-C stops an answer, Ctrl-D leaves.

Examples:
  tail -50 build.log | kimictl chat                     (stdin: read when no prompt is given)
  kimictl chat -m fast -p "Say hello"                       (an alias from config.lua)
  kimictl chat --tools read_file,search -p "Where is the main loop defined?"
  kimictl chat --continue -p "And how is it stopped?"
  kimictl chat --output-format stream-json -p "hi"          (for programs: JSON lines)

Built-in tools: read_file, list_dir, search, shell (asks first on a terminal, or
--allow-shell). Yours: a Lua file in ]] .. tostring(core.lua_dir) .. [[/tools/NAME.lua (README).
Names starting with $ are the provider's own tools, e.g. --tools '$web_search' on Kimi.
Sessions: kimictl sessions lists them; each is saved in $XDG_DATA_HOME/kimictl/sessions/.

Exit status: 0 on success, 1 when the request fails (the message says why), 2 on bad usage,
75 when a passing failure (429, 5xx, a broken connection) outlasted the retries, 130 on Ctrl-C.]],
}

-- The prompt: -p, the arguments, or stdin when it is not a terminal (final line ends dropped).
local function read_prompt(opts, args)
  if opts.prompt then return opts.prompt end
  if #args > 0 then return table.concat(args, " ") end
  if core.proc.isatty(0) then return nil end
  local text = io.stdin:read("a")
  if text and text:match("%S") then return (text:gsub("[\r\n]+$", "")) end
end

-- The provider and model: --provider with --model as given, --model through config.lua
-- (aliases, provider/model), the session's own, then the defaults.
local function pick(opts, s)
  local name, model = opts.provider, opts.model
  if not name then
    if not opts.model and s.provider then name, model = s.provider, s.model
    else name, model = config.resolve_model(opts.model, provider.exists) end
  end
  local p, err = provider.load(name)
  if not p then return nil, nil, err end
  return p, model or provider.default_model(p)
end

-- The session: --session ID (resumed or created), --continue (the latest), or a new one.
local function open_session(opts)
  if opts.session and opts.continue then return nil, "use --session ID or --continue, not both" end
  if opts.session then return session.open(opts.session) end
  if opts.continue then
    local id = session.latest()
    if not id then return nil, "there is no session to continue yet", "Start one: kimictl chat -p PROMPT" end
    return session.load(id)
  end
  return session.create()
end

-- May the shell tool run this command? --allow-shell, else a yes typed at the terminal.
local function allower(opts, format)
  return function(kind, what)
    if opts.allow_shell then return true end
    if format ~= "text" or not (core.proc.isatty(0) and core.proc.isatty(2)) then return false end
    io.stderr:write(cli.style("yellow", ("Allow %s to run: %s\n[y/N] "):format(kind, what), 2))
    io.stderr:flush()
    local answer = io.stdin:read("l")
    return answer ~= nil and answer:match("^%s*[yY]") ~= nil
  end
end

-- User messages from stdin as JSON lines (--input-format stream-json), as Claude Code reads
-- them: {"type":"user","message":{"role":"user","content":"..." or [blocks]}}.
local function json_inputs()
  return function()
    for line in io.stdin:lines() do
      if line:match("%S") then
        local doc, err = core.json.decode(line)
        if type(doc) ~= "table" then return nil, "an input line is not JSON: " .. tostring(err) end
        local m = type(doc.message) == "table" and doc.message or doc
        local content = m.content
        if type(content) == "table" then   -- blocks: the text ones
          local parts = {}
          for _, b in ipairs(content) do
            if type(b) == "table" and b.type == "text" and type(b.text) == "string" then parts[#parts + 1] = b.text end
          end
          content = table.concat(parts, "\n")
        end
        if doc.type ~= "user" and m.role ~= "user" then return nil, 'an input line is not a user message ({"type":"user",...})' end
        if type(content) ~= "string" or content == "" then return nil, "an input line has no text content" end
        return content
      end
    end
  end
end

function spec.run(opts, args)
  local format = opts.output_format or "text"
  local machine = format ~= "text"
  local sink
  local function fail(message, hint, code, kind)
    if not machine then return cli.fail(message, hint, code) end
    sink = sink or output.new(format, {})
    sink:result(nil, { message = message, hint = hint, kind = kind or "usage" })
    return code or cli.EXIT_FAIL
  end
  if opts.thinking and opts.no_thinking then return cli.usage_error(spec, "use --thinking or --no-thinking, not both") end
  if opts.prompt and #args > 0 then
    return cli.usage_error(spec, ("unexpected argument '%s': the prompt is -p or the arguments, not both"):format(args[1]))
  end

  local cfg = config.load().chat or {}
  local s, serr, shint = open_session(opts)
  if not s then return fail(serr, shint) end
  local p, model, err = pick(opts, s)
  if not p then return fail(err, "Providers are the files in lua/providers/; yours go in " .. tostring(core.lua_dir) .. "/providers/.") end
  if not model then return fail(("no model chosen for provider '%s'"):format(p.name), "Pass --model ID.") end
  local list, terr = tools.load_list(opts.tools or cfg.tools)
  if not list then return fail(terr) end

  local prompts, interactive
  if opts.input_format == "stream-json" then
    prompts = json_inputs()
  else
    local prompt = read_prompt(opts, args)
    interactive = not prompt and not machine and core.proc.isatty(0) and core.proc.isatty(1)
    if not prompt and not interactive then
      if machine then return fail("no prompt: pass -p PROMPT, arguments, or pipe one on stdin", nil, cli.EXIT_USAGE) end
      return cli.usage_error(spec, "no prompt: pass -p PROMPT or a PROMPT argument, or pipe one on stdin")
    end
    prompts = coroutine.wrap(function() coroutine.yield(prompt) end)
  end

  local thinking = cfg.thinking
  if opts.thinking then thinking = true elseif opts.no_thinking then thinking = false end
  sink = output.new(format, { session_id = s.id, model = model, show_thinking = not opts.no_thinking })
  local conv = {
    p = p, model = model, profile = opts.profile, session = s, tools = list, out = sink,
    params = { thinking = thinking, max_tokens = math.tointeger(tonumber(opts.max_tokens)) or cfg.max_tokens,
               temperature = tonumber(opts.temperature) },
    retry = { retries = cfg.retries or 3, first_ms = cfg.retry_first_ms or 300, max_ms = cfg.retry_max_ms or 5000,
              max_wait_ms = cfg.retry_max_wait_ms or 60000 },
    max_steps = cfg.max_steps or 20,
    allow = allower(opts, format),
  }
  local names = {}
  for i, t in ipairs(list) do names[i] = t.name end
  sink:init({ tools = names, provider = p.name })
  if opts.system then s:set_system(opts.system) end   -- a failure to save is the session's to tell
  s:set_model(p.name, model)

  if interactive then return require("chat.repl").run(conv) end
  local text, failure
  while true do
    local prompt, perr = prompts()
    if perr then failure = { message = perr, kind = "input" } break end
    if not prompt then break end
    text, failure = agent.turn(conv, prompt)
    if failure then break end
  end
  if machine then
    sink:result(text, failure)
    if sink.write_error then return cli.fail("cannot write the output: " .. sink.write_error) end
    return failure and (failure.exit or cli.EXIT_FAIL) or cli.EXIT_OK
  end
  sink:result(text, failure)
  if failure then return cli.fail(failure.message, failure.hint, failure.exit) end
  return cli.EXIT_OK
end

return spec
