-- What `kimictl chat` prints, in three formats:
--   text         the answer on stdout as it arrives; thinking, tool calls, retries and a
--                spinner on stderr (dimmed, and only on a terminal where it says so)
--   json         one object at the end: the result line below
--   stream-json  JSON lines in the dialect of Claude Code's stream-json, which OpenClaw and
--                other programs parse: a system/init line, stream_event lines (Anthropic's
--                stream events: text and thinking deltas, tool_use blocks), an assistant
--                line per turn, a user line per tool result, and a final result line.
-- Every method that writes returns false when stdout cannot take it (the caller stops).
local anthropic = require "wire.anthropic"
local cli = require "cli"
local core = require "core"

local json = core.json
local null = json.null
local output = {}

output.FORMATS = { text = true, json = true, ["stream-json"] = true }

-- Write to stdout; false (and the error kept) when that fails.
local function writer(sink)
  return function(s)
    if sink.write_error then return false end
    local ok, err = io.stdout:write(s)
    if ok then ok, err = io.stdout:flush() end
    if not ok then sink.write_error = err; return false end
    return true
  end
end

local function array(t) return setmetatable(t, json.array_mt) end

-- The usage of every request of a run, added up, in Anthropic's words (as Claude Code).
local function add_usage(total, u)
  local a = anthropic.usage_of(u)
  for k, v in pairs(a) do total[k] = (total[k] or 0) + v end
end

-- An assistant message as an Anthropic message (the stream-json assistant line).
local function as_message(msg, model, usage, finish, id)
  local content = {}
  if type(msg.reasoning_content) == "string" and msg.reasoning_content ~= "" then
    content[#content + 1] = { type = "thinking", thinking = msg.reasoning_content, signature = "" }
  end
  if type(msg.content) == "string" and msg.content ~= "" then content[#content + 1] = { type = "text", text = msg.content } end
  for _, c in ipairs(msg.tool_calls or {}) do
    local input = json.decode(c["function"].arguments or "")
    if type(input) ~= "table" then input = {} end
    content[#content + 1] = { type = "tool_use", id = c.id, name = c["function"].name, input = input }
  end
  return { id = id or ("msg_" .. core.proc.random_hex(12)), type = "message", role = "assistant", model = model,
           content = array(content), stop_reason = anthropic.stop_reason(finish, msg.tool_calls ~= nil),
           stop_sequence = null, usage = anthropic.usage_of(usage) }
end

-- --- text ----------------------------------------------------------------------------------

local Text = {}
Text.__index = Text

-- A spinner on stderr until the first piece of the answer, when stderr is a terminal.
local FRAMES = { "|", "/", "-", "\\" }
function Text:spin()
  if not self.tty or self.spinning then return end
  local state = { on = true }
  self.spinning = state
  core.loop.spawn(function()
    local i = 0
    while state.on do
      i = i % #FRAMES + 1
      io.stderr:write("\r" .. cli.style("dim", FRAMES[i] .. " waiting for " .. self.model, 2) .. "\27[K")
      io.stderr:flush()
      core.loop.sleep(100)
    end
  end)
end

function Text:unspin()
  if not self.spinning then return end
  self.spinning.on = false
  self.spinning = nil
  io.stderr:write("\r\27[K")
  io.stderr:flush()
end

function Text:init() end
function Text:begin_request() self:spin() end
function Text:chunk() return true end

function Text:reasoning(s)
  self:unspin()
  if not self.show_thinking then return true end
  io.stderr:write(cli.style("dim", s, 2))
  io.stderr:flush()
  self.err_last = s:sub(-1)
  return true
end

function Text:text(s)
  self:unspin()
  if self.err_last and self.err_last ~= "\n" then io.stderr:write("\n") end
  self.err_last = nil
  if not self.out(s) then return false end
  self.last = s:sub(-1)
  return true
end

function Text:end_request() self:unspin() end

function Text:assistant(msg)
  if self.err_last and self.err_last ~= "\n" then io.stderr:write("\n") end
  self.err_last = nil
  if self.last and self.last ~= "\n" then self.out("\n") end
  self.last = nil
  for _, c in ipairs(msg.tool_calls or {}) do
    local args = c["function"].arguments or ""
    if #args > 200 then args = args:sub(1, 200) .. "..." end
    io.stderr:write(cli.style("dim", ("-> %s %s"):format(c["function"].name, args), 2) .. "\n")
  end
  return not self.write_error
end

function Text:tool_result(_, content, failed)
  local first = content:match("^[^\n]*")
  local lines = select(2, content:gsub("\n", "")) + 1
  local summary = failed and first or ("%s%s"):format(first:sub(1, 100), lines > 1 and (" (+%d lines)"):format(lines - 1) or "")
  io.stderr:write(cli.style(failed and "red" or "dim", "<- " .. summary, 2) .. "\n")
  return true
end

local function retry_line(info)
  return ("kimictl: %s; retrying in %.1f s (%d of %d)"):format(info.message, info.delay_ms / 1000, info.attempt,
    info.retries)
end

function Text:retry(info)
  self:unspin()
  io.stderr:write(cli.style("yellow", retry_line(info), 2) .. "\n")
end

-- The end of the run: a partial answer is ended with a line end, so that a message after it
-- starts on its own line.
function Text:result()
  self:unspin()
  if self.last and self.last ~= "\n" then self.out("\n") end
  self.last = nil
  return not self.write_error
end

-- --- json and stream-json ---------------------------------------------------------------

local Lines = {}
Lines.__index = Lines

function Lines:line(doc)
  if not self.streaming then return true end
  return self.out(json.encode(doc) .. "\n")
end

function Lines:init(info)
  self.started_ms = core.proc.clock_ms()
  return self:line({ type = "system", subtype = "init", session_id = self.session_id, model = self.model,
                     cwd = os.getenv("PWD"), tools = array(info.tools or {}), provider = info.provider,
                     kimictl_version = core.version })
end

function Lines:begin_request()
  if not self.streaming then return end
  self.tr = anthropic.stream(self.model, function(name, doc)
    if name == "ping" then return true end
    return self:line({ type = "stream_event", event = doc, session_id = self.session_id, parent_tool_use_id = null })
  end)
end

function Lines:chunk(c)
  if not self.tr then return true end
  if not self.show_thinking then   -- hidden thinking stays out of the stream too
    local d = type(c.choices) == "table" and type(c.choices[1]) == "table" and c.choices[1].delta
    if type(d) == "table" then d.reasoning_content = nil end
  end
  return self.tr:chunk(c) ~= false and not self.write_error
end

function Lines:text() return not self.write_error end
function Lines:reasoning() return not self.write_error end

function Lines:end_request(result)
  if self.tr and result then self.tr:finish() end
  self.message_id = self.tr and self.tr.id
  self.tr = nil
end

function Lines:assistant(msg, result)
  self.turns = self.turns + 1
  return self:line({ type = "assistant", message = as_message(msg, self.model, result.usage, result.finish_reason, self.message_id),
                     session_id = self.session_id, parent_tool_use_id = null })
end

function Lines:tool_result(call, content, failed)
  return self:line({ type = "user", message = { role = "user", content = array({
    { type = "tool_result", tool_use_id = call.id, content = content, is_error = failed } }) },
    session_id = self.session_id, parent_tool_use_id = null })
end

function Lines:retry(info)
  io.stderr:write(retry_line(info) .. "\n")
end

-- The last line: what the run came to. failure = { message, hint, kind, status } or nil.
function Lines:result(text, failure)
  local doc = {
    type = "result", subtype = failure and (failure.kind == "max_steps" and "error_max_turns" or "error_during_execution")
      or "success",
    is_error = failure ~= nil, result = failure and failure.message or text or "",
    session_id = self.session_id, model = self.model, num_turns = self.turns,
    duration_ms = core.proc.clock_ms() - (self.started_ms or core.proc.clock_ms()),
    usage = self.usage,
  }
  if failure then
    doc.error = { message = failure.message, hint = failure.hint, kind = failure.kind, status = failure.status }
  end
  self.streaming = true   -- json prints this one line
  return self:line(doc)
end

-- output.new(format, opts) -> sink. opts: session_id, model, show_thinking.
function output.new(format, opts)
  local sink = { model = opts.model, session_id = opts.session_id, show_thinking = opts.show_thinking ~= false,
                 usage = {}, turns = 0 }
  sink.out = writer(sink)
  if format == "text" then
    sink.tty = core.proc.isatty(2)
    return setmetatable(sink, Text)
  end
  sink.streaming = format == "stream-json"
  return setmetatable(sink, Lines)
end

output.add_usage = add_usage
return output
