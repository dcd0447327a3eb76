-- The interactive chat: line editing with history (core.edit, on libedit), slash commands,
-- Ctrl-C stops the answer in progress (or clears the line), Ctrl-D leaves. Every turn goes
-- through agent.turn, as one-shot chat does, into the same session.
local agent = require "chat.agent"
local cli = require "cli"
local config = require "config"
local core = require "core"
local paths = require "paths"
local provider = require "provider"

local repl = {}

local HELP = [[
  /model [ID]        show the model, or switch (an id, provider/model or an alias)
  /thinking [on|off] show or switch thinking
  /session           the session's id, file and size
  /clear             start the conversation again (the session keeps what was said)
  /usage             tokens used since kimictl started
  /help              this list
  /exit              leave (Ctrl-D does too)
A line ending in \ continues on the next line; a pasted block is sent as one message.
Ctrl-C stops an answer, or clears the line being typed.]]

local function say(text) io.stdout:write(text, "\n"); io.stdout:flush() end
local function note(text) say(cli.style("dim", text, 1)) end

local commands = {}

function commands.help() say(HELP) end

function commands.model(conv, arg)
  if arg == "" then return note(("model: %s/%s"):format(conv.p.name, conv.model)) end
  local name, model = config.resolve_model(arg, provider.exists)
  local p, err = provider.load(name)
  if not p then return cli.fail(err) end
  model = model or provider.default_model(p)
  if not model then return cli.fail(("no model chosen for provider '%s'"):format(name)) end
  conv.p, conv.model, conv.out.model = p, model, model
  conv.session:set_model(p.name, model)   -- a failure is the session's to tell
  note(("model: %s/%s"):format(p.name, model))
end

function commands.thinking(conv, arg)
  if arg == "on" or arg == "off" then
    conv.params.thinking = arg == "on"
    conv.out.show_thinking = arg == "on"
  elseif arg ~= "" then
    return cli.fail("use /thinking on or /thinking off")
  end
  local t = conv.params.thinking
  note("thinking: " .. (t == nil and "the model's default" or t and "on" or "off"))
end

function commands.session(conv)
  local s = conv.session
  note(("session %s: %d messages, %s"):format(s.id, #s.messages, paths.show(s.path)))
end

function commands.clear(conv)
  conv.session:clear()
  note("The conversation starts again (the session file keeps what was said).")
end

function commands.usage(conv)
  local u = conv.out.usage
  note(("tokens: %d in, %d out, %d read from the cache"):format(u.input_tokens or 0, u.output_tokens or 0,
    u.cache_read_input_tokens or 0))
end

-- One line read, with \ continuing it; nil at the end of input, false after Ctrl-C.
local function read_message(ed)
  local text = ed:read("> ", ". ")
  while type(text) == "string" and text:sub(-1) == "\\" do
    local more = ed:read(". ")
    if type(more) ~= "string" then return more end
    text = text:sub(1, -2) .. "\n" .. more
  end
  return text
end

-- repl.run(conv) -> exit code
function repl.run(conv)
  local dir = paths.state_dir()
  local ok, err = core.fs.mkdir(dir, "0700")
  if not ok then core.log.warn("history will not be kept: " .. err) end
  local ed, eerr = core.edit.open({ history = ok and (dir .. "/history") or nil })
  if not ed then return cli.fail(eerr) end
  note(("kimictl chat with %s/%s, session %s. /help lists commands; Ctrl-D leaves."):format(conv.p.name,
    conv.model, conv.session.id))
  while true do
    local text = read_message(ed)
    if text == nil then break end
    if text and text:match("%S") then
      local saved, serr = ed:add(text)
      if not saved then core.log.warn("history not saved: " .. tostring(serr)) end
      local cmd, arg = text:match("^/(%a+)%s*(.-)%s*$")
      if cmd == "exit" or cmd == "quit" then break end
      if cmd then
        if commands[cmd] then commands[cmd](conv, arg) else cli.fail(("unknown command /%s"):format(cmd), "/help lists them.") end
      else
        local done, answer, failure = pcall(agent.turn, conv, text)
        conv.out:result()   -- the spinner stops, a partial line is ended
        if not done then
          local signal = core.loop.catch_interrupt(answer)
          if signal ~= "SIGINT" then ed:close(); error(answer, 0) end
          note("(stopped)")
        elseif failure then
          cli.fail(failure.message, failure.hint)
        end
      end
    end
  end
  ed:close()
  return cli.EXIT_OK
end

return repl
