-- One turn of a conversation: the user's message, then requests until the model answers
-- without calling a tool (or the step limit), every message saved to the session as it
-- comes. Kimi's rules for a tool loop hold (KIMI-API.md §6): tool call ids kept, each
-- assistant turn's reasoning_content sent back with its calls, no empty content beside
-- calls. Failed requests are retried as Kimi CLI does (429, 5xx, broken connections, empty
-- answers; backoff with jitter, Retry-After honoured) while nothing of the answer has been
-- shown.
local core = require "core"
local openai = require "wire.openai"
local output = require "chat.output"
local tools_mod = require "chat.tools"

local agent = {}

agent.EXIT_TEMPFAIL = 75   -- retries exhausted (as Kimi CLI, and sysexits' EX_TEMPFAIL)

local RETRY_STATUS = { [429] = true, [500] = true, [502] = true, [503] = true, [504] = true }
local RETRY_KIND = { connect = true, timeout = true, reset = true, empty = true }

-- Seconds a Retry-After header asks for, or nil (the HTTP-date form is not used by these APIs).
local function retry_after(res)
  local s = tonumber(res and res.headers and res.headers["retry-after"] or "")
  return s and s >= 0 and s or nil
end

-- The wait before retry n (1-based): exponential from first_ms to max_ms, plus up to half
-- again at random, so that many clients refused at once do not come back at once.
local function backoff(policy, n)
  local base = math.min(policy.max_ms, policy.first_ms * 2 ^ (n - 1))
  return math.floor(base + math.random() * base / 2)
end

-- One request, retried. -> result | nil, failure { message, hint, kind, status, exit }
local function ask_once(conv, params)
  local policy, sink = conv.retry, conv.out
  for attempt = 1, policy.retries + 1 do
    local shown = false
    sink:begin_request()
    local result, msg, kind, hint, status, res = openai.stream(conv.p, params, {
      chunk = function(c) return sink:chunk(c) end,
      text = function(s) shown = true; return sink:text(s) end,
      reasoning = function(s) shown = true; return sink:reasoning(s) end,
    }, { profile = conv.profile })
    sink:end_request(result)
    if result and result.cancelled then
      return nil, { message = "cannot write the answer: " .. tostring(sink.write_error or "stopped"), kind = "output" }
    end
    if result and (result.text ~= "" or #result.calls > 0 or result.finish_reason == "length") then
      output.add_usage(sink.usage, result.usage)
      return result
    end
    if result then msg, kind, hint = "the model's answer was empty", "empty", nil end
    local wait_s = kind == "http" and retry_after(res)
    if not ((kind == "http" and RETRY_STATUS[status]) or RETRY_KIND[kind]) then
      return nil, { message = msg, hint = hint, kind = kind, status = status }
    end
    local why
    if shown then why = "the answer broke off after it had begun"
    elseif attempt > policy.retries then why = policy.retries > 0 and ("gave up after %d retries"):format(policy.retries) or nil
    elseif wait_s and wait_s * 1000 > policy.max_wait_ms then why = ("the service asks to wait %d s"):format(math.ceil(wait_s)) end
    if why or attempt > policy.retries then
      return nil, { message = msg .. (why and (" (" .. why .. ")") or ""), kind = kind, status = status,
                    hint = hint or "This is usually passing: try again in a little while.", exit = agent.EXIT_TEMPFAIL }
    end
    local delay = wait_s and math.floor(wait_s * 1000) or backoff(policy, attempt)
    sink:retry({ message = msg, delay_ms = delay, attempt = attempt, retries = policy.retries })
    core.loop.sleep(delay)
  end
end

-- The messages as they go out: the system prompt first; reasoning_content only to a
-- provider that wants it back (Kimi, Moonshot), since others may refuse a field they do not
-- know; and a call left without its result (a turn cut short by Ctrl-C or a crash) answered
-- as such, since every API refuses calls without results.
local function outgoing(conv)
  local list, open = {}, {}
  local function close_open()
    for _, id in ipairs(open) do
      list[#list + 1] = { role = "tool", tool_call_id = id, content = "error: the call was interrupted and did not run" }
    end
    open = {}
  end
  if conv.session.system then list[1] = { role = "system", content = conv.session.system } end
  for _, m in ipairs(conv.session.messages) do
    if m.role == "tool" then
      for i, id in ipairs(open) do if id == m.tool_call_id then table.remove(open, i) break end end
    else
      close_open()
    end
    if m.reasoning_content ~= nil and not conv.p.replay_reasoning then
      local copy = {}
      for k, v in pairs(m) do copy[k] = v end
      copy.reasoning_content = nil
      m = copy
    end
    list[#list + 1] = m
    for _, c in ipairs(m.role == "assistant" and type(m.tool_calls) == "table" and m.tool_calls or {}) do
      open[#open + 1] = c.id
    end
  end
  close_open()
  return list
end

-- agent.turn(conv, content) -> final text | nil, failure
-- conv: p, model, profile, session, tools (loaded), params { thinking, max_tokens,
-- temperature }, retry { retries, first_ms, max_ms, max_wait_ms }, max_steps, out (a sink),
-- allow(kind, what) -> boolean (asks before a shell command).
function agent.turn(conv, content)
  conv.session:add({ role = "user", content = content })   -- a failure is the session's to tell
  local specs = tools_mod.specs(conv.tools)
  for _ = 1, conv.max_steps do
    local extra = { prompt_cache_key = conv.session.id, temperature = conv.params.temperature }
    if conv.params.thinking ~= nil then extra.thinking = { type = conv.params.thinking and "enabled" or "disabled" } end
    local result, failure = ask_once(conv, { model = conv.model, messages = outgoing(conv), tools = specs,
                                             max_tokens = conv.params.max_tokens, extra = extra })
    if not result then return nil, failure end
    local msg = { role = "assistant", content = result.text }
    if result.reasoning ~= "" or #result.calls > 0 then msg.reasoning_content = result.reasoning end
    if #result.calls > 0 then
      msg.tool_calls = result.calls
      if result.text == "" then msg.content = nil end   -- Kimi refuses empty text beside calls
    end
    conv.session:add(msg)
    if conv.out:assistant(msg, result) == false then
      return nil, { message = "cannot write the answer: " .. tostring(conv.out.write_error), kind = "output" }
    end
    if #result.calls == 0 then return result.text end
    for _, call in ipairs(result.calls) do
      local text, failed = tools_mod.run(conv.tools, call, { allow = conv.allow })
      conv.out:tool_result(call, text, failed)
      conv.session:add({ role = "tool", tool_call_id = call.id, content = text })
    end
  end
  return nil, { message = ("the model was still calling tools after %d steps: stopped there"):format(conv.max_steps),
                hint = "Raise chat.max_steps in config.lua, or ask for less at once.", kind = "max_steps" }
end

return agent
