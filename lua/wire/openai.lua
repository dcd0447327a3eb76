-- The OpenAI chat-completions wire format: the request body, and the answer read as a stream.
local core = require "core"
local anthropic = require "wire.anthropic"
local client = require "client"
local provider = require "provider"

local openai = {}

-- openai.chat_body(params) -> request body; params: model, messages, tools, max_tokens, extra
-- (fields added as they are: thinking, temperature, prompt_cache_key, ...)
function openai.chat_body(params)
  local body = {
    model = params.model,
    messages = params.messages,
    stream = true,
    stream_options = { include_usage = true },
    max_completion_tokens = params.max_tokens,
  }
  if params.tools and #params.tools > 0 then body.tools = params.tools end
  for k, v in pairs(params.extra or {}) do body[k] = v end
  return body
end

-- openai.prepare(p, body) -> body: the provider's own mapping of a chat request
-- (p.chat_request), for every request that goes out, from chat or from serve.
function openai.prepare(p, body)
  if p.chat_request then p.chat_request(p, body) end
  return body
end

-- One fragment of a streamed tool call: the first names the call (index, id, name), the
-- rest carry pieces of its arguments; calls may interleave. A fragment without an index
-- continues the call its id names, or the last call.
local function take_call(c, result)
  if type(c) ~= "table" then return end
  local fn = type(c["function"]) == "table" and c["function"] or {}
  local i = math.tointeger(c.index)
  local call = i and result.by_index[i]
  if not call and not i and type(c.id) == "string" then
    for _, x in ipairs(result.calls) do if x.id == c.id then call = x end end
  end
  if not call and not i and type(c.id) ~= "string" then call = result.calls[#result.calls] end
  if not call then
    call = { id = nil, type = c.type or "function", name = "", arguments = {} }
    result.calls[#result.calls + 1] = call
    if i then result.by_index[i] = call end
  end
  if type(c.id) == "string" and c.id ~= "" then call.id = c.id end
  if type(fn.name) == "string" then call.name = call.name .. fn.name end   -- as OpenAI's SDKs gather it
  if type(fn.arguments) == "string" then call.arguments[#call.arguments + 1] = fn.arguments
  elseif type(fn.arguments) == "table" then call.arguments[#call.arguments + 1] = core.json.encode(fn.arguments) end
end

-- Fold one chunk of the stream into the result and tell the handlers; false when a
-- handler returned false (stop the stream).
local function take_chunk(chunk, result, on)
  if on.chunk and on.chunk(chunk) == false then return false end
  if type(chunk.usage) == "table" then result.usage = chunk.usage end
  if type(chunk.model) == "string" then result.model = chunk.model end
  local choice = type(chunk.choices) == "table" and chunk.choices[1]
  if type(choice) ~= "table" then return end
  local delta = type(choice.delta) == "table" and choice.delta or choice.message or {}
  if type(delta.reasoning_content) == "string" and delta.reasoning_content ~= "" then
    result.reasoning[#result.reasoning + 1] = delta.reasoning_content
    if on.reasoning and on.reasoning(delta.reasoning_content) == false then return false end
  end
  if type(delta.content) == "string" and delta.content ~= "" then
    result.text[#result.text + 1] = delta.content
    if on.text and on.text(delta.content) == false then return false end
  end
  if type(delta.tool_calls) == "table" then
    for _, c in ipairs(delta.tool_calls) do take_call(c, result) end
  end
  if type(choice.finish_reason) == "string" then result.finish_reason = choice.finish_reason end
  if type(choice.usage) == "table" then result.usage = choice.usage end
end

-- The calls as OpenAI writes them in an assistant message, in the order they began; a call
-- the stream gave no id gets one, so that its result can name it.
local function finished_calls(result)
  local calls = {}
  for n, c in ipairs(result.calls) do
    calls[n] = { id = c.id or ("call_" .. n), type = "function",
                 ["function"] = { name = c.name, arguments = table.concat(c.arguments) } }
  end
  return calls
end

-- openai.stream(p, params, on[, ctx]) -> result | nil, message, kind, hint, status, res
-- on.text(s) and on.reasoning(s) are called as pieces arrive, on.chunk(chunk) with each
-- chunk (after the provider's repairs); any may return false to stop (then
-- result.cancelled is true). result: text, reasoning, calls (OpenAI's tool_calls, assembled
-- from their fragments), finish_reason, usage, model. kind: "http" for an error answer
-- (status is its HTTP status, res the answer, with its headers), "stream" for a broken
-- stream, or core.http's kind (dns, connect, tls, timeout, reset, ...).
function openai.stream(p, params, on, ctx)
  local result = { text = {}, reasoning = {}, calls = {}, by_index = {}, done = false }
  local broken
  local filter = p.chat_chunks and p.chat_chunks(p)   -- the provider's repairs of its answers
  local function take(chunk)   -- -> false to stop
    if take_chunk(filter and filter(chunk) or chunk, result, on) == false then
      result.cancelled = true
      return false
    end
  end
  local function finish()
    result.done = true
    local last = filter and filter(nil)
    if last then return take(last) end
  end
  local body, path = openai.prepare(p, openai.chat_body(params)), "/chat/completions"
  local translator   -- a provider that speaks only Messages: its events become chunks
  if p.api == "anthropic" then
    local why
    body, why = anthropic.from_chat(body, p.max_tokens)
    if not body then return nil, why, "request" end
    path, translator = p.messages_path, anthropic.chat_stream(take, true)
  end
  local res, err, kind, hint = client.request(p, {
    path = path, body = body,
    headers = { Accept = "text/event-stream", ["anthropic-version"] = translator and anthropic.VERSION or nil },
    on_event = function(ev)
      if ev.data == "[DONE]" then return finish() end
      local chunk, jerr = core.json.decode(ev.data)
      if type(chunk) ~= "table" then
        broken = "the stream carried something that is not a JSON object: " .. (jerr or ev.data:sub(1, 80))
        return false
      end
      if translator then
        if translator:event(ev.event, chunk) == false then
          if translator.error then broken = "the service reported an error mid-stream: " .. translator.error end
          return false
        end
        if translator.done then return finish() end
        return
      end
      if type(chunk.error) == "table" then
        broken = "the service reported an error mid-stream: " .. tostring(chunk.error.message or "?")
        return false
      end
      return take(chunk)
    end,
  }, ctx)
  if not res and result.finish_reason and not broken and (kind == "timeout" or kind == "reset") then
    -- the answer is complete (it has its finish_reason); only the stream's end never came
    core.log.info(err .. ": the answer was complete, its end of stream is not needed")
  elseif not res then
    return nil, err, kind, hint
  elseif res.status < 200 or res.status > 299 then
    local msg, h = provider.explain(p, res)
    return nil, msg, "http", h, res.status, res
  end
  if broken then return nil, broken, "stream" end
  if res and res.body ~= "" then   -- the service answered with one JSON document instead of a stream
    local doc, jerr = core.json.decode(res.body)
    if type(doc) ~= "table" then
      return nil, ("%s answered %d with a body that is neither an event stream nor a JSON object (%s)"):format(
        p.name, res.status, jerr or "not an object"), "stream"
    end
    take(translator and anthropic.to_chat(doc) or doc)
    finish()
  end
  if not result.done and not result.finish_reason and not result.cancelled then
    return nil, "the stream ended before the answer was complete (no [DONE]); try again", "reset"
  end
  result.text = table.concat(result.text)
  result.reasoning = table.concat(result.reasoning)
  result.calls, result.by_index = finished_calls(result), nil
  return result
end

return openai
