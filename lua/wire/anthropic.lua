-- Anthropic's Messages API in OpenAI's chat completions and back: the request one way, the
-- answer and the stream the other. Pure functions of decoded JSON, so both directions are
-- tested without a server (tests/lua/test_anthropic.lua).
local core = require "core"

local json = core.json
local null = json.null
local anthropic = {}

local function array(t) return setmetatable(t, json.array_mt) end
local function is_list(v) return type(v) == "table" and (getmetatable(v) == json.array_mt or v[1] ~= nil) end
local function str(v) return type(v) == "string" and v or nil end

-- The error type Anthropic names for an HTTP status.
local ERROR_TYPES = {
  [400] = "invalid_request_error", [401] = "authentication_error", [402] = "billing_error",
  [403] = "permission_error", [404] = "not_found_error", [405] = "invalid_request_error",
  [408] = "timeout_error", [413] = "request_too_large", [429] = "rate_limit_error",
  [529] = "overloaded_error",
}
function anthropic.error_type(status)
  return ERROR_TYPES[status] or (status >= 500 and "api_error") or "invalid_request_error"
end

-- anthropic.error_doc(status, message) -> { type = "error", error = { type, message } }
function anthropic.error_doc(status, message)
  return { type = "error", error = { type = anthropic.error_type(status), message = message } }
end

-- --- the request: Anthropic -> OpenAI ----------------------------------------------------

-- The text of a string or of a list of blocks (text blocks only).
local function text_of(content)
  if type(content) == "string" then return content end
  local out = {}
  for _, b in ipairs(is_list(content) and content or {}) do
    if type(b) == "table" and b.type == "text" and str(b.text) then out[#out + 1] = b.text end
  end
  return table.concat(out, "\n\n")
end

local function image_part(b)
  local s = type(b.source) == "table" and b.source or {}
  local url = s.type == "base64" and str(s.media_type) and str(s.data) and ("data:%s;base64,%s"):format(s.media_type, s.data)
    or s.type == "url" and str(s.url)
  return url and { type = "image_url", image_url = { url = url } }
end

-- A user turn: tool results become "tool" messages (first: OpenAI wants them right after
-- the assistant's calls), text and images one user message.
local function add_user(msg, out)
  if type(msg.content) == "string" then
    out[#out + 1] = { role = "user", content = msg.content }
    return
  end
  local parts = {}
  for _, b in ipairs(msg.content) do
    if b.type == "tool_result" then
      local text = text_of(b.content)
      if b.is_error == true then text = "Error: " .. text end
      out[#out + 1] = { role = "tool", tool_call_id = str(b.tool_use_id) or "", content = text }
    elseif b.type == "text" and str(b.text) then
      parts[#parts + 1] = { type = "text", text = b.text }
    elseif b.type == "image" then
      parts[#parts + 1] = image_part(b)
    end
  end
  if #parts > 0 then out[#out + 1] = { role = "user", content = array(parts) } end
end

-- An assistant turn: text, thinking (as reasoning_content) and tool_use blocks (as tool_calls,
-- their ids kept). No content at all beside tool calls: some servers refuse an empty text.
local function add_assistant(msg, out)
  if type(msg.content) == "string" then
    out[#out + 1] = { role = "assistant", content = msg.content }
    return
  end
  local text, reasoning, calls = {}, {}, {}
  for _, b in ipairs(msg.content) do
    if b.type == "text" and str(b.text) then text[#text + 1] = b.text
    elseif b.type == "thinking" and str(b.thinking) then reasoning[#reasoning + 1] = b.thinking
    elseif b.type == "tool_use" then
      local input = type(b.input) == "table" and b.input or {}
      calls[#calls + 1] = { id = str(b.id) or "", type = "function",
                            ["function"] = { name = str(b.name) or "", arguments = json.encode(input) } }
    end
  end
  local m = { role = "assistant" }
  if #text > 0 or #calls == 0 then m.content = table.concat(text) end
  if #reasoning > 0 then m.reasoning_content = table.concat(reasoning) end
  if #calls > 0 then m.tool_calls = array(calls) end
  out[#out + 1] = m
end

local function tool_choice(tc)
  if type(tc) ~= "table" then return nil end
  if tc.type == "auto" then return "auto"
  elseif tc.type == "any" then return "required"
  elseif tc.type == "none" then return "none"
  elseif tc.type == "tool" and str(tc.name) then return { type = "function", ["function"] = { name = tc.name } } end
end

-- What is wrong with a Messages request, naming the field; nil when it can be translated.
local function misfit(body)
  if type(body) ~= "table" or is_list(body) then return "the request body must be a JSON object" end
  if type(body.model) ~= "string" or body.model == "" then return "model is required" end
  if not is_list(body.messages) then return "messages must be an array" end
  for i, m in ipairs(body.messages) do
    if type(m) ~= "table" or (m.role ~= "user" and m.role ~= "assistant") then
      return ("messages.%d.role must be \"user\" or \"assistant\""):format(i - 1)
    end
    if type(m.content) ~= "string" and not is_list(m.content) then
      return ("messages.%d.content must be a string or an array of blocks"):format(i - 1)
    end
    for j, b in ipairs(type(m.content) == "table" and m.content or {}) do
      if type(b) ~= "table" or type(b.type) ~= "string" then
        return ("messages.%d.content.%d must be a block with a type"):format(i - 1, j - 1)
      end
    end
  end
  if body.tools ~= nil and not is_list(body.tools) then return "tools must be an array" end
end

-- anthropic.to_openai(body) -> OpenAI chat body | nil, message (a 400's)
-- body is a Messages request. Translated: system, text, images, tool_use/tool_result,
-- tools, tool_choice, stop_sequences, max_tokens, temperature, top_p, thinking,
-- metadata.user_id, stream. Not carried: top_k, cache_control (OpenAI has no place for it).
function anthropic.to_openai(body)
  local why = misfit(body)
  if why then return nil, why end
  local messages = {}
  local system = text_of(body.system)
  if system ~= "" then messages[1] = { role = "system", content = system } end
  for _, m in ipairs(body.messages) do
    if m.role == "user" then add_user(m, messages) else add_assistant(m, messages) end
  end
  local out = {
    model = body.model, messages = array(messages),
    max_completion_tokens = math.tointeger(body.max_tokens),
    temperature = tonumber(body.temperature), top_p = tonumber(body.top_p),
    stop = is_list(body.stop_sequences) and body.stop_sequences or nil,
    tool_choice = tool_choice(body.tool_choice),
    user = type(body.metadata) == "table" and str(body.metadata.user_id) or nil,
  }
  if type(body.tool_choice) == "table" and body.tool_choice.disable_parallel_tool_use == true then
    out.parallel_tool_calls = false
  end
  if type(body.thinking) == "table" then
    out.thinking = { type = body.thinking.type == "enabled" and "enabled" or "disabled" }
  end
  local tools = {}
  for _, t in ipairs(body.tools or {}) do
    if type(t) == "table" and str(t.name) and (t.type == nil or t.type == "custom") then
      tools[#tools + 1] = { type = "function", ["function"] = {
        name = t.name, description = str(t.description),
        parameters = type(t.input_schema) == "table" and t.input_schema or { type = "object" } } }
    end
  end
  if #tools > 0 then out.tools = array(tools) end
  if body.stream == true then
    out.stream, out.stream_options = true, { include_usage = true }
  end
  return out
end

-- --- the answer: OpenAI -> Anthropic -----------------------------------------------------

local STOP = { stop = "end_turn", length = "max_tokens", tool_calls = "tool_use", function_call = "tool_use",
               content_filter = "refusal" }
-- The stop reason of an answer: tool_use exactly when tool_use blocks were sent, whatever
-- finish_reason says (some servers say "stop" after calls, or "tool_calls" after none).
local function stop_reason(finish, with_tools)
  if with_tools then return "tool_use" end
  local r = STOP[finish] or "end_turn"
  return r == "tool_use" and "end_turn" or r
end
anthropic.stop_reason = stop_reason

-- OpenAI's usage in Anthropic's words: input_tokens do not count the cached ones.
local function usage_of(u)
  u = type(u) == "table" and u or {}
  local details = type(u.prompt_tokens_details) == "table" and u.prompt_tokens_details or {}
  local cached = math.tointeger(u.cached_tokens) or math.tointeger(details.cached_tokens) or 0
  return { input_tokens = (math.tointeger(u.prompt_tokens) or 0) - cached,
           output_tokens = math.tointeger(u.completion_tokens) or 0,
           cache_read_input_tokens = cached }
end
anthropic.usage_of = usage_of

local function decode_input(arguments)
  local input = json.decode(arguments or "")
  if type(input) ~= "table" or is_list(input) then input = {} end
  return input
end

-- The first choice of a chat completion (or chunk) as a table, {} when there is none.
local function first_choice(doc)
  local choice = type(doc) == "table" and is_list(doc.choices) and doc.choices[1]
  return type(choice) == "table" and choice or {}
end

local function message_id(id)
  id = (str(id) or ""):gsub("[^%w_-]", "")
  return "msg_" .. (id ~= "" and id or core.proc.random_hex(12))
end

-- anthropic.from_openai(doc, model) -> a Messages answer, from a chat completion
function anthropic.from_openai(doc, model)
  local choice = first_choice(doc)
  local m = type(choice.message) == "table" and choice.message or {}
  local content = {}
  if str(m.reasoning_content) and m.reasoning_content ~= "" then
    content[#content + 1] = { type = "thinking", thinking = m.reasoning_content, signature = "" }
  end
  if str(m.content) and m.content ~= "" then content[#content + 1] = { type = "text", text = m.content } end
  local calls = 0
  for _, c in ipairs(is_list(m.tool_calls) and m.tool_calls or {}) do
    local f = type(c) == "table" and type(c["function"]) == "table" and c["function"] or {}
    if str(f.name) and f.name ~= "" then
      calls = calls + 1
      content[#content + 1] = { type = "tool_use", id = str(c.id) or "", name = f.name,
                                input = decode_input(f.arguments) }
    end
  end
  return { id = message_id(doc.id), type = "message", role = "assistant", model = model,
           content = array(content), stop_reason = stop_reason(choice.finish_reason, calls > 0), stop_sequence = null,
           usage = usage_of(doc.usage) }
end

-- anthropic.as_chunk(doc) -> a chat completion as one stream chunk (its message as the delta)
function anthropic.as_chunk(doc)
  local choice = first_choice(doc)
  local m = type(choice.message) == "table" and choice.message or {}
  local delta = { content = m.content, reasoning_content = m.reasoning_content }
  if is_list(m.tool_calls) then
    delta.tool_calls = {}
    for k, c in ipairs(m.tool_calls) do
      if type(c) == "table" then delta.tool_calls[#delta.tool_calls + 1] = { index = k - 1, id = c.id, type = "function",
                                                                            ["function"] = c["function"] } end
    end
  end
  return { id = type(doc) == "table" and doc.id or nil, usage = type(doc) == "table" and doc.usage or nil,
           choices = { { index = 0, delta = delta, finish_reason = choice.finish_reason } } }
end

-- --- the stream: OpenAI chunks -> Anthropic events ---------------------------------------
-- Blocks open and close one at a time, in order. The first tool call streams its arguments
-- as they come (input_json_delta); fragments of any other call are gathered and that call
-- is sent whole once the open one is closed, so calls whose fragments interleave still
-- come out as exactly one well-formed block each, with their ids.

local Stream = {}
Stream.__index = Stream

-- anthropic.stream(model, emit) -> translator; emit(event_name, doc) writes one event and
-- returns false when the client has gone. translator:chunk(doc) for each OpenAI chunk,
-- translator:finish() at [DONE] (or the end), translator:fail(status, message) on a failure.
function anthropic.stream(model, emit)
  return setmetatable({ model = model, emit = emit, index = -1, open = nil, calls = {}, order = {},
                        live = nil, held_text = {}, stop = nil, usage = nil, ok = true, tool_blocks = 0 }, Stream)
end

function Stream:send(name, doc)
  if self.ok and self.emit(name, doc) == false then self.ok = false end
  return self.ok
end

function Stream:start(id)
  if self.started then return end
  self.started = true
  self.id = message_id(id)
  self:send("message_start", { type = "message_start", message = {
    id = self.id, type = "message", role = "assistant", model = self.model, content = array({}),
    stop_reason = null, stop_sequence = null, usage = { input_tokens = 0, output_tokens = 0 } } })
  self:send("ping", { type = "ping" })
end

function Stream:close_block()
  if not self.open then return end
  self:send("content_block_stop", { type = "content_block_stop", index = self.index })
  self.open = nil
end

function Stream:open_block(kind, block)
  self:close_block()
  self.index = self.index + 1
  if kind == "tool_use" then self.tool_blocks = self.tool_blocks + 1 end
  self.open = kind
  self:send("content_block_start", { type = "content_block_start", index = self.index, content_block = block })
end

function Stream:text(kind, text)
  if text == "" then return end
  if self.live then   -- a tool call is streaming: the text follows it
    self.held_text[#self.held_text + 1] = { kind, text }
    return
  end
  if self.open ~= kind then
    self:open_block(kind, kind == "thinking" and { type = "thinking", thinking = "", signature = "" }
      or { type = "text", text = "" })
  end
  self:send("content_block_delta", { type = "content_block_delta", index = self.index,
    delta = kind == "thinking" and { type = "thinking_delta", thinking = text } or { type = "text_delta", text = text } })
end

-- One fragment of tool call i: its id and name (first fragment), then argument pieces.
function Stream:tool(part)
  local i = math.tointeger(part.index) or 0
  local f = type(part["function"]) == "table" and part["function"] or {}
  local call = self.calls[i]
  if not call then
    call = { id = "", name = "", args = {}, sent = 0 }
    self.calls[i] = call
    self.order[#self.order + 1] = i
  end
  if str(part.id) and part.id ~= "" then call.id = part.id end
  if str(f.name) then call.name = call.name .. f.name end
  if str(f.arguments) and f.arguments ~= "" then call.args[#call.args + 1] = f.arguments end
  if self.live == nil and not call.done and call.name ~= "" then   -- the first named call streams
    self.live = i
    self:open_block("tool_use", { type = "tool_use", id = call.id, name = call.name, input = {} })
  end
  if self.live == i then self:pour(call) end
end

-- The arguments of the live call that have not gone out yet.
function Stream:pour(call)
  for k = call.sent + 1, #call.args do
    self:send("content_block_delta", { type = "content_block_delta", index = self.index,
      delta = { type = "input_json_delta", partial_json = call.args[k] } })
  end
  call.sent = #call.args
end

function Stream:chunk(doc)
  if type(doc) ~= "table" then return self.ok end
  if type(doc.error) == "table" then   -- the upstream's failure, told inside its stream
    self.failed = true
    self:fail(502, "the upstream reported an error mid-stream: " .. (str(doc.error.message) or "no message"))
    return false
  end
  self:start(doc.id)
  if type(doc.usage) == "table" then self.usage = doc.usage end
  local choice = is_list(doc.choices) and doc.choices[1]
  if type(choice) ~= "table" then return self.ok end
  local d = type(choice.delta) == "table" and choice.delta or {}
  if str(d.reasoning_content) then self:text("thinking", d.reasoning_content) end
  if str(d.content) then self:text("text", d.content) end
  for _, part in ipairs(is_list(d.tool_calls) and d.tool_calls or {}) do
    if type(part) == "table" then self:tool(part) end
  end
  if str(choice.finish_reason) then self.stop = choice.finish_reason end
  if type(choice.usage) == "table" then self.usage = choice.usage end
  return self.ok
end

-- The end: the open block closed, gathered calls and held text sent, then message_delta
-- (stop reason, usage) and message_stop.
function Stream:finish()
  self:start(nil)
  if self.live then
    self.calls[self.live].done = true
    self:close_block()
  end
  for _, i in ipairs(self.order) do
    local call = self.calls[i]
    if not call.done and call.name ~= "" then   -- a call without a name is no call
      call.done = true
      self:open_block("tool_use", { type = "tool_use", id = call.id, name = call.name, input = {} })
      call.sent = 0
      self:pour(call)
      self:close_block()
    end
  end
  self.live = nil
  for _, t in ipairs(self.held_text) do self:text(t[1], t[2]) end
  self:close_block()
  self:send("message_delta", { type = "message_delta",
    delta = { stop_reason = stop_reason(self.stop, self.tool_blocks > 0), stop_sequence = null },
    usage = usage_of(self.usage) })
  return self:send("message_stop", { type = "message_stop" })
end

-- A failure once the stream has begun: Anthropic's error event ends it.
function Stream:fail(status, message)
  self:start(nil)
  return self:send("error", anthropic.error_doc(status, message))
end

-- --- the other way: OpenAI chat completions to a provider that speaks only Messages ------

anthropic.VERSION = "2023-06-01"   -- the anthropic-version sent when the client named none

local function blocks_of(content)
  if type(content) == "string" then return content ~= "" and { { type = "text", text = content } } or {} end
  local out = {}
  for _, part in ipairs(is_list(content) and content or {}) do
    if type(part) == "table" and part.type == "text" and str(part.text) then
      out[#out + 1] = { type = "text", text = part.text }
    elseif type(part) == "table" and part.type == "image_url" then
      local url = str(type(part.image_url) == "table" and part.image_url.url or part.image_url) or ""
      local media, data = url:match("^data:([^;,]+);base64,(.*)$")
      out[#out + 1] = media and { type = "image", source = { type = "base64", media_type = media, data = data } }
        or { type = "image", source = { type = "url", url = url } }
    end
  end
  return out
end

-- Messages wants turns that alternate, so blocks of the same role join the turn before.
local function add_turn(out, role, blocks)
  if #blocks == 0 then return end
  local last = out[#out]
  if last and last.role == role then
    for _, b in ipairs(blocks) do last.content[#last.content + 1] = b end
  else
    out[#out + 1] = { role = role, content = array(blocks) }
  end
end

local function chat_tool_choice(tc)
  if tc == "auto" then return { type = "auto" }
  elseif tc == "required" then return { type = "any" }
  elseif tc == "none" then return { type = "none" }
  elseif type(tc) == "table" and type(tc["function"]) == "table" and str(tc["function"].name) then
    return { type = "tool", name = tc["function"].name }
  end
end

-- What is wrong with a chat request, naming the field; nil when it can be translated.
local function chat_misfit(body)
  if not is_list(body.messages) then return "messages must be an array" end
  for i, m in ipairs(body.messages) do
    if type(m) ~= "table" or not str(m.role) then return ("messages.%d must be an object with a role"):format(i - 1) end
    if m.tool_calls ~= nil and m.tool_calls ~= null and not is_list(m.tool_calls) then
      return ("messages.%d.tool_calls must be an array"):format(i - 1)
    end
    for j, c in ipairs(is_list(m.tool_calls) and m.tool_calls or {}) do
      if type(c) ~= "table" then return ("messages.%d.tool_calls.%d must be an object"):format(i - 1, j - 1) end
    end
  end
  if body.tools ~= nil and not is_list(body.tools) then return "tools must be an array" end
end

-- anthropic.from_chat(body[, max_tokens]) -> a Messages request | nil, message (a 400's)
-- body is an OpenAI chat request. Translated: system and developer messages, text and image
-- parts, tool_calls/tool messages (ids kept), tools, tool_choice, parallel_tool_calls, stop,
-- max_(completion_)tokens (else max_tokens, else 4096: Messages requires one), temperature, top_p,
-- thinking, user, stream. reasoning_content is not sent back: Messages wants it signed.
function anthropic.from_chat(body, max_tokens)
  local why = chat_misfit(body)
  if why then return nil, why end
  local system, turns = {}, {}
  for _, m in ipairs(body.messages) do
    if m.role == "system" or m.role == "developer" then
      local t = text_of(m.content)
      if t ~= "" then system[#system + 1] = t end
    elseif m.role == "tool" then
      add_turn(turns, "user", { { type = "tool_result", tool_use_id = str(m.tool_call_id) or "",
                                  content = text_of(m.content) } })
    elseif m.role == "assistant" then
      local blocks = blocks_of(m.content)
      for _, c in ipairs(is_list(m.tool_calls) and m.tool_calls or {}) do
        local f = type(c) == "table" and type(c["function"]) == "table" and c["function"] or {}
        blocks[#blocks + 1] = { type = "tool_use", id = str(c.id) or "", name = str(f.name) or "",
                                input = decode_input(f.arguments) }
      end
      add_turn(turns, "assistant", blocks)
    else
      add_turn(turns, "user", blocks_of(m.content))
    end
  end
  local out = {
    model = body.model, messages = array(turns),
    system = #system > 0 and table.concat(system, "\n\n") or nil,
    max_tokens = math.tointeger(body.max_completion_tokens) or math.tointeger(body.max_tokens) or max_tokens or 4096,
    temperature = tonumber(body.temperature), top_p = tonumber(body.top_p),
    stop_sequences = type(body.stop) == "string" and { body.stop } or is_list(body.stop) and body.stop or nil,
    tool_choice = chat_tool_choice(body.tool_choice),
    metadata = str(body.user) and { user_id = body.user } or nil,
    stream = body.stream == true or nil,
  }
  if body.parallel_tool_calls == false then
    out.tool_choice = out.tool_choice or { type = "auto" }
    out.tool_choice.disable_parallel_tool_use = true
  end
  -- the budget must be at least 1024 and below max_tokens: no room, no thinking
  if type(body.thinking) == "table" and body.thinking.type == "enabled" and out.max_tokens > 1024 then
    out.thinking = { type = "enabled", budget_tokens = math.max(1024, out.max_tokens // 2) }
  end
  local tools = {}
  for _, t in ipairs(body.tools or {}) do
    local f = type(t) == "table" and type(t["function"]) == "table" and t["function"]
    if f and str(f.name) then
      tools[#tools + 1] = { name = f.name, description = str(f.description),
                            input_schema = type(f.parameters) == "table" and f.parameters or { type = "object" } }
    end
  end
  if #tools > 0 then out.tools = array(tools) end
  return out
end

local FINISH = { end_turn = "stop", stop_sequence = "stop", pause_turn = "stop", max_tokens = "length",
                 tool_use = "tool_calls", refusal = "content_filter" }

local function chat_usage(u)
  u = type(u) == "table" and u or {}
  local cached = math.tointeger(u.cache_read_input_tokens) or 0
  local input = (math.tointeger(u.input_tokens) or 0) + cached + (math.tointeger(u.cache_creation_input_tokens) or 0)
  local output = math.tointeger(u.output_tokens) or 0
  return { prompt_tokens = input, completion_tokens = output, total_tokens = input + output,
           prompt_tokens_details = { cached_tokens = cached } }
end

-- anthropic.to_chat(msg) -> a chat completion, from a Messages answer
function anthropic.to_chat(msg)
  msg = type(msg) == "table" and msg or {}
  local text, reasoning, calls = {}, {}, {}
  for _, b in ipairs(is_list(msg.content) and msg.content or {}) do
    if type(b) ~= "table" then goto next end
    if b.type == "text" and str(b.text) then text[#text + 1] = b.text
    elseif b.type == "thinking" and str(b.thinking) then reasoning[#reasoning + 1] = b.thinking
    elseif b.type == "tool_use" then
      calls[#calls + 1] = { id = str(b.id) or "", type = "function", ["function"] = {
        name = str(b.name) or "", arguments = json.encode(type(b.input) == "table" and b.input or {}) } }
    end
    ::next::
  end
  local m = { role = "assistant", content = #text > 0 and table.concat(text) or null }
  if #reasoning > 0 then m.reasoning_content = table.concat(reasoning) end
  if #calls > 0 then m.tool_calls = array(calls) end
  return { id = str(msg.id) or ("chatcmpl-" .. core.proc.random_hex(12)), object = "chat.completion",
           created = os.time(), model = str(msg.model) or "",
           choices = array({ { index = 0, message = m, finish_reason = FINISH[msg.stop_reason] or "stop" } }),
           usage = chat_usage(msg.usage) }
end

-- anthropic.chat_stream(emit[, include_usage]) -> translator of Messages events into chat
-- chunks; emit(chunk) sends one and returns false when the client has gone.
-- translator:event(name, doc) for each event -> false to stop; translator.done once
-- message_stop came; translator.error: the message of an error event.
local ChatStream = {}
ChatStream.__index = ChatStream

function anthropic.chat_stream(emit, include_usage)
  return setmetatable({ emit = emit, include_usage = include_usage, ok = true, tools = {}, n = 0,
                        id = nil, model = "", created = os.time(), usage = {} }, ChatStream)
end

function ChatStream:send(delta, finish, usage)
  local doc = { id = self.id, object = "chat.completion.chunk", created = self.created, model = self.model,
                choices = array(delta and { { index = 0, delta = delta, finish_reason = finish or null } } or {}),
                usage = usage }
  if self.ok and self.emit(doc) == false then self.ok = false end
  return self.ok
end

local function tool_delta(k, fields) fields.index = k; return { tool_calls = array({ fields }) } end

function ChatStream:event(name, doc)
  if type(doc) ~= "table" then return self.ok end
  local kind = str(doc.type) or name
  if kind == "message_start" then
    local m = type(doc.message) == "table" and doc.message or {}
    self.id, self.model = str(m.id) or ("chatcmpl-" .. core.proc.random_hex(12)), str(m.model) or ""
    for k, v in pairs(type(m.usage) == "table" and m.usage or {}) do self.usage[k] = v end
    return self:send({ role = "assistant", content = "" })
  elseif kind == "content_block_start" then
    local b = type(doc.content_block) == "table" and doc.content_block or {}
    if b.type == "tool_use" then
      local call = { k = self.n, input = b.input, streamed = false }
      self.n = self.n + 1
      self.tools[doc.index or -1] = call
      return self:send(tool_delta(call.k, { id = str(b.id) or "", type = "function",
                                            ["function"] = { name = str(b.name) or "", arguments = "" } }))
    elseif b.type == "text" and str(b.text) and b.text ~= "" then return self:send({ content = b.text })
    elseif b.type == "thinking" and str(b.thinking) and b.thinking ~= "" then return self:send({ reasoning_content = b.thinking })
    end
  elseif kind == "content_block_delta" then
    local d = type(doc.delta) == "table" and doc.delta or {}
    if d.type == "text_delta" and str(d.text) then return self:send({ content = d.text })
    elseif d.type == "thinking_delta" and str(d.thinking) then return self:send({ reasoning_content = d.thinking })
    elseif d.type == "input_json_delta" and str(d.partial_json) then
      local call = self.tools[doc.index or -1]
      if call and d.partial_json ~= "" then
        call.streamed = true
        return self:send(tool_delta(call.k, { ["function"] = { arguments = d.partial_json } }))
      end
    end
  elseif kind == "content_block_stop" then
    local call = self.tools[doc.index or -1]
    -- an input never streamed (given whole at the start, or none at all) goes out as one
    -- fragment: clients parse the arguments, and "" is not JSON
    if call and not call.streamed then
      local input = type(call.input) == "table" and not is_list(call.input) and call.input or {}
      return self:send(tool_delta(call.k, { ["function"] = { arguments = next(input) and json.encode(input) or "{}" } }))
    end
  elseif kind == "message_delta" then
    for k, v in pairs(type(doc.usage) == "table" and doc.usage or {}) do self.usage[k] = v end
    local d = type(doc.delta) == "table" and doc.delta or {}
    self.finish = FINISH[d.stop_reason] or "stop"
  elseif kind == "message_stop" then
    self.done = true
    local usage = chat_usage(self.usage)
    self:send({}, self.finish or "stop", not self.include_usage and usage or nil)
    if self.include_usage then self:send(nil, nil, usage) end
  elseif kind == "error" then
    local e = type(doc.error) == "table" and doc.error or {}
    self.error = ("%s%s"):format(str(e.message) or "an error event", str(e.type) and (" (" .. e.type .. ")") or "")
    return false
  end
  return self.ok
end

-- anthropic.count_tokens(body) -> an estimate of the input tokens (about four bytes each)
function anthropic.count_tokens(body)
  local n = #json.encode({ body.system or "", body.messages or {}, body.tools or {} })
  return math.max(1, (n + 3) // 4)
end

return anthropic
