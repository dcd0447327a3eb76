-- The OpenAI chat-completions wire format: the request body, and the answer read as a stream.
local core = require "core"
local anthropic = require "wire.anthropic"
local client = require "client"
local provider = require "provider"

local openai = {}

-- openai.chat_body(params) -> request body; params: model, messages, tools, max_tokens, extra
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

-- Fold one chunk of the stream into the result and tell the handlers; false when a
-- handler returned false (stop the stream).
local function take_chunk(chunk, result, on)
  if type(chunk.usage) == "table" then result.usage = chunk.usage end
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
  if type(choice.finish_reason) == "string" then result.finish_reason = choice.finish_reason end
  if type(choice.usage) == "table" then result.usage = choice.usage end
end

-- openai.stream(p, params, on[, ctx]) -> result | nil, message, kind, hint, status
-- on.text(s) and on.reasoning(s) are called as pieces arrive; either may return false to
-- stop (then result.cancelled is true). result: text, reasoning, finish_reason, usage.
-- kind: "http" for an error answer (status is its HTTP status), "stream" for a broken
-- stream, or core.http's kind (dns, connect, tls, timeout, reset, ...).
function openai.stream(p, params, on, ctx)
  local result = { text = {}, reasoning = {}, done = false }
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
  if not res then return nil, err, kind, hint end
  if res.status < 200 or res.status > 299 then
    local msg, h = provider.explain(p, res)
    return nil, msg, "http", h, res.status
  end
  if broken then return nil, broken, "stream" end
  if res.body ~= "" then   -- the service answered with one JSON document instead of a stream
    local doc = core.json.decode(res.body)
    if type(doc) ~= "table" then return nil, "the answer is neither an event stream nor JSON", "stream" end
    take(translator and anthropic.to_chat(doc) or doc)
    finish()
  end
  if not result.done and not result.finish_reason and not result.cancelled then
    return nil, "the stream ended before the answer was complete (no [DONE]); try again", "reset"
  end
  result.text = table.concat(result.text)
  result.reasoning = table.concat(result.reasoning)
  return result
end

return openai
