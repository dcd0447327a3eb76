-- Anthropic Messages <-> OpenAI chat completions (lua/wire/anthropic.lua), both ways, table-driven.
local anthropic = require "wire.anthropic"
local core = require "core"

local json = core.json
local enc, dec = json.encode, json.decode

-- Deep equality of decoded JSON; an array is never equal to an object, empty ones included.
local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then return a == b end
  if (getmetatable(a) == json.array_mt) ~= (getmetatable(b) == json.array_mt) then return false end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local function expect(got, want, what)
  local g, w = dec(enc(got)), dec(want)
  assert(same(g, w), ("%s:\n got  %s\n want %s"):format(what, enc(got), want))
end

-- Runs OpenAI chunks (JSON texts) through the stream translator -> list of { name, doc }.
local function translate(chunks, opts)
  local events = {}
  local s = anthropic.stream("m", function(name, doc) events[#events + 1] = { name, dec(enc(doc)) } end)
  for _, c in ipairs(chunks) do s:chunk(dec(c)) end
  if opts and opts.fail then s:fail(502, opts.fail) else s:finish() end
  return events
end

local function names(events)
  local out = {}
  for _, e in ipairs(events) do out[#out + 1] = e[1] end
  return table.concat(out, " ")
end

-- The content blocks a client rebuilds from the events (as the SDKs do), checking that every
-- delta names a block that was started and is still open.
local function rebuild(events)
  local blocks, open = {}, {}
  for _, e in ipairs(events) do
    local name, d = e[1], e[2]
    if name == "content_block_start" then
      assert(blocks[d.index + 1] == nil, "block started twice: " .. d.index)
      blocks[d.index + 1] = d.content_block
      d.content_block.partial = ""
      open[d.index] = true
    elseif name == "content_block_delta" then
      local b = assert(open[d.index] and blocks[d.index + 1], "delta for a block not open: " .. d.index)
      if d.delta.type == "text_delta" then b.text = b.text .. d.delta.text
      elseif d.delta.type == "thinking_delta" then b.thinking = b.thinking .. d.delta.thinking
      elseif d.delta.type == "input_json_delta" then b.partial = b.partial .. d.delta.partial_json end
    elseif name == "content_block_stop" then
      assert(open[d.index], "stop for a block not open: " .. d.index)
      open[d.index] = nil
      local b = blocks[d.index + 1]
      if b.type == "tool_use" then b.input = b.partial ~= "" and dec(b.partial) or {} end
      b.partial = nil
    end
  end
  assert(next(open) == nil, "a block was never stopped")
  return setmetatable(blocks, json.array_mt)
end

local function chunk(delta, finish, usage)
  return enc({ id = "c1", choices = { { index = 0, delta = delta, finish_reason = finish } }, usage = usage })
end

local REQUESTS = {
  { "system as a string, a plain user turn, max_tokens, stop_sequences, sampling",
    { model = "m", max_tokens = 100, system = "be brief", stop_sequences = { "END" }, temperature = 0.5, top_p = 0.9,
      top_k = 5, messages = { { role = "user", content = "hi" } } },
    [[{"model":"m","max_completion_tokens":100,"temperature":0.5,"top_p":0.9,"stop":["END"],
       "messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}]] },
  { "system as blocks (cache_control dropped), text and image parts",
    { model = "m", system = { { type = "text", text = "a", cache_control = { type = "ephemeral" } }, { type = "text", text = "b" } },
      messages = { { role = "user", content = {
        { type = "text", text = "look" },
        { type = "image", source = { type = "base64", media_type = "image/png", data = "AAAA" } },
        { type = "image", source = { type = "url", url = "https://x/y.png" } } } } } },
    [[{"model":"m","messages":[{"role":"system","content":"a\n\nb"},{"role":"user","content":[
       {"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},
       {"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}]] },
  { "a tool round trip: thinking, text and tool_use out, tool_result (with an error) back, ids kept",
    { model = "m", messages = {
      { role = "user", content = "weather?" },
      { role = "assistant", content = {
        { type = "thinking", thinking = "hmm", signature = "s" }, { type = "text", text = "Let me look." },
        { type = "tool_use", id = "toolu_1", name = "get_weather", input = { city = "Paris" } },
        { type = "tool_use", id = "toolu_2", name = "get_time", input = {} } } },
      { role = "user", content = {
        { type = "tool_result", tool_use_id = "toolu_1", content = "sunny" },
        { type = "tool_result", tool_use_id = "toolu_2", is_error = true, content = { { type = "text", text = "no clock" } } },
        { type = "text", text = "and now?" } } } } },
    [[{"model":"m","messages":[{"role":"user","content":"weather?"},
       {"role":"assistant","content":"Let me look.","reasoning_content":"hmm","tool_calls":[
         {"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
         {"id":"toolu_2","type":"function","function":{"name":"get_time","arguments":"{}"}}]},
       {"role":"tool","tool_call_id":"toolu_1","content":"sunny"},
       {"role":"tool","tool_call_id":"toolu_2","content":"Error: no clock"},
       {"role":"user","content":[{"type":"text","text":"and now?"}]}]}]] },
  { "an assistant turn of tool calls only has no content at all",
    { model = "m", messages = { { role = "assistant", content = {
      { type = "tool_use", id = "t", name = "f", input = { a = 1 } } } } } },
    [[{"model":"m","messages":[{"role":"assistant","tool_calls":[
       {"id":"t","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]}]}]] },
  { "tools, tool_choice any with no parallel calls, thinking, metadata, stream",
    { model = "m", stream = true, thinking = { type = "enabled", budget_tokens = 2000 }, metadata = { user_id = "u1" },
      tool_choice = { type = "any", disable_parallel_tool_use = true },
      tools = { { name = "f", description = "d", input_schema = { type = "object", properties = { x = { type = "string" } } } },
                { type = "web_search_20250305", name = "web_search" } },
      messages = { { role = "user", content = "go" } } },
    [[{"model":"m","stream":true,"stream_options":{"include_usage":true},"thinking":{"type":"enabled"},"user":"u1",
       "tool_choice":"required","parallel_tool_calls":false,
       "tools":[{"type":"function","function":{"name":"f","description":"d",
                 "parameters":{"type":"object","properties":{"x":{"type":"string"}}}}}],
       "messages":[{"role":"user","content":"go"}]}]] },
  { "tool_choice by name",
    { model = "m", tool_choice = { type = "tool", name = "f" }, messages = { { role = "user", content = "x" } } },
    [[{"model":"m","tool_choice":{"type":"function","function":{"name":"f"}},"messages":[{"role":"user","content":"x"}]}]] },
}

local tests = {}

for _, case in ipairs(REQUESTS) do
  tests["request: " .. case[1]] = function()
    expect(assert(anthropic.to_openai(case[2])), case[3], case[1])
  end
end

tests["request: what cannot be translated is named"] = function()
  local bad = {
    { { messages = {} }, "model is required" },
    { { model = "m", messages = "hi" }, "messages must be an array" },
    { { model = "m", messages = { { role = "system", content = "x" } } }, 'messages.0.role must be "user" or "assistant"' },
    { { model = "m", messages = { { role = "user", content = 5 } } }, "messages.0.content must be a string" },
    { { model = "m", messages = { { role = "user", content = { "text" } } } }, "messages.0.content.0 must be a block" },
  }
  for _, c in ipairs(bad) do
    local out, why = anthropic.to_openai(c[1])
    assert(out == nil and why:find(c[2], 1, true), ("%s -> %s"):format(enc(c[1]), tostring(why)))
  end
end

tests["answer: thinking, text and tool calls become blocks; stop reasons and usage"] = function()
  local doc = dec([[{"id":"chatcmpl-9","choices":[{"index":0,"finish_reason":"tool_calls","message":{
    "role":"assistant","reasoning_content":"think","content":"ok","tool_calls":[
    {"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}},
    {"id":"c2","type":"function","function":{"name":"g","arguments":"not json"}}]}}],
    "usage":{"prompt_tokens":50,"completion_tokens":7,"prompt_tokens_details":{"cached_tokens":20}}}]])
  expect(anthropic.from_openai(doc, "m"), [[{"id":"msg_chatcmpl-9","type":"message","role":"assistant","model":"m",
    "content":[{"type":"thinking","thinking":"think","signature":""},{"type":"text","text":"ok"},
               {"type":"tool_use","id":"c1","name":"f","input":{"a":1}},{"type":"tool_use","id":"c2","name":"g","input":{}}],
    "stop_reason":"tool_use","stop_sequence":null,
    "usage":{"input_tokens":30,"output_tokens":7,"cache_read_input_tokens":20}}]], "answer")
  for finish, want in pairs({ stop = "end_turn", length = "max_tokens", content_filter = "refusal" }) do
    local m = anthropic.from_openai({ choices = { { message = { content = "x" }, finish_reason = finish } } }, "m")
    assert(m.stop_reason == want, finish .. " -> " .. tostring(m.stop_reason))
  end
end

tests["stream: text in order, usage from the final chunk, one message_start first"] = function()
  local ev = translate({ chunk({ role = "assistant", content = "" }), chunk({ content = "Hel" }), chunk({ content = "lo" }),
                         chunk({}, "stop"), enc({ id = "c1", choices = {}, usage = { prompt_tokens = 4, completion_tokens = 2 } }) })
  assert(names(ev) == "message_start ping content_block_start content_block_delta content_block_delta " ..
    "content_block_stop message_delta message_stop", names(ev))
  expect(rebuild(ev), [=[[{"type":"text","text":"Hello"}]]=], "blocks")
  expect(ev[#ev - 1][2], [[{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},
    "usage":{"input_tokens":4,"output_tokens":2,"cache_read_input_tokens":0}}]], "message_delta")
end

tests["stream: thinking, then text, then a tool call: three blocks in order"] = function()
  local ev = translate({
    chunk({ reasoning_content = "let me " }), chunk({ reasoning_content = "see" }), chunk({ content = "Checking." }),
    chunk({ tool_calls = { { index = 0, id = "call_1", type = "function", ["function"] = { name = "f", arguments = "" } } } }),
    chunk({ tool_calls = { { index = 0, ["function"] = { arguments = '{"a":' } } } }),
    chunk({ tool_calls = { { index = 0, ["function"] = { arguments = "1}" } } } }),
    chunk({}, "tool_calls") })
  expect(rebuild(ev), [=[[{"type":"thinking","thinking":"let me see","signature":""},{"type":"text","text":"Checking."},
    {"type":"tool_use","id":"call_1","name":"f","input":{"a":1}}]]=], "blocks")
  assert(ev[#ev - 1][2].delta.stop_reason == "tool_use")
end

tests["stream: fragments of two calls interleaved come out as exactly one block per call"] = function()
  local function frag(i, t) return chunk({ tool_calls = { { index = i, ["function"] = { arguments = t } } } }) end
  local ev = translate({
    chunk({ tool_calls = { { index = 0, id = "a", ["function"] = { name = "f", arguments = "" } },
                           { index = 1, id = "b", ["function"] = { name = "g", arguments = "" } } } }),
    frag(1, '{"y":'), frag(0, '{"x":'), frag(1, "2}"), frag(0, "1}"), chunk({}, "tool_calls") })
  expect(rebuild(ev), [=[[{"type":"tool_use","id":"a","name":"f","input":{"x":1}},
    {"type":"tool_use","id":"b","name":"g","input":{"y":2}}]]=], "blocks")
  local starts = 0
  for _, e in ipairs(ev) do if e[1] == "content_block_start" then starts = starts + 1 end end
  assert(starts == 2, "blocks started: " .. starts)
end

tests["stream: a call that never got a name is dropped, not sent as an empty-name block"] = function()
  local ev = translate({ chunk({ tool_calls = { { index = 0, ["function"] = { arguments = "{}" } } } }), chunk({}, "tool_calls") })
  expect(rebuild(ev), "[]", "blocks")
end

tests["stream: a failure mid-stream ends with Anthropic's error event after the open block"] = function()
  local ev = translate({ chunk({ content = "Hel" }) }, { fail = "upstream reset" })
  assert(names(ev) == "message_start ping content_block_start content_block_delta error", names(ev))
  expect(ev[#ev][2], [[{"type":"error","error":{"type":"api_error","message":"upstream reset"}}]], "error")
end

tests["stream: a whole answer told as a stream (as_chunk) keeps ids and arguments"] = function()
  local doc = dec([[{"id":"x","choices":[{"index":0,"finish_reason":"tool_calls","message":{"content":null,
    "tool_calls":[{"id":"c9","type":"function","function":{"name":"f","arguments":"{\"k\":true}"}}]}}]}]])
  local ev = translate({ enc(anthropic.as_chunk(doc)) })
  expect(rebuild(ev), [=[[{"type":"tool_use","id":"c9","name":"f","input":{"k":true}}]]=], "blocks")
end

tests["errors: Anthropic's type for each status"] = function()
  local want = { [400] = "invalid_request_error", [401] = "authentication_error", [403] = "permission_error",
                 [404] = "not_found_error", [413] = "request_too_large", [429] = "rate_limit_error",
                 [500] = "api_error", [502] = "api_error", [529] = "overloaded_error" }
  for status, kind in pairs(want) do
    local doc = anthropic.error_doc(status, "why")
    assert(doc.type == "error" and doc.error.type == kind and doc.error.message == "why", status)
  end
end

tests["count_tokens: an estimate that grows with the input"] = function()
  local small = anthropic.count_tokens({ messages = { { role = "user", content = "hi" } } })
  local big = anthropic.count_tokens({ messages = { { role = "user", content = ("word "):rep(400) } } })
  assert(small >= 1 and big > 400 and big < 700, small .. " " .. big)
end

-- --- the other way: chat completions to a provider that speaks only Messages --------------

local CHAT_REQUESTS = {
  { "system and developer messages joined, text and image parts, stop as a string, max_tokens",
    { model = "m", max_tokens = 50, stop = "END", temperature = 0.2, user = "u7", messages = {
      { role = "system", content = "be brief" }, { role = "developer", content = { { type = "text", text = "and kind" } } },
      { role = "user", content = { { type = "text", text = "look" },
        { type = "image_url", image_url = { url = "data:image/png;base64,AAAA" } },
        { type = "image_url", image_url = { url = "https://x/y.png" } } } } } },
    [[{"model":"m","max_tokens":50,"system":"be brief\n\nand kind","stop_sequences":["END"],"temperature":0.2,
       "metadata":{"user_id":"u7"},"messages":[{"role":"user","content":[{"type":"text","text":"look"},
       {"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}},
       {"type":"image","source":{"type":"url","url":"https://x/y.png"}}]}]}]] },
  { "a tool round trip: calls become tool_use (ids kept), tool messages one user turn of tool_result",
    { model = "m", max_completion_tokens = 9, messages = {
      { role = "user", content = "weather?" },
      { role = "assistant", content = "Let me look.", reasoning_content = "hmm", tool_calls = {
        { id = "call_1", type = "function", ["function"] = { name = "get_weather", arguments = '{"city":"Paris"}' } },
        { id = "call_2", type = "function", ["function"] = { name = "get_time", arguments = "" } } } },
      { role = "tool", tool_call_id = "call_1", content = "sunny" },
      { role = "tool", tool_call_id = "call_2", content = { { type = "text", text = "noon" } } },
      { role = "user", content = "and now?" } } },
    [[{"model":"m","max_tokens":9,"messages":[{"role":"user","content":[{"type":"text","text":"weather?"}]},
       {"role":"assistant","content":[{"type":"text","text":"Let me look."},
         {"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris"}},
         {"type":"tool_use","id":"call_2","name":"get_time","input":{}}]},
       {"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":"sunny"},
         {"type":"tool_result","tool_use_id":"call_2","content":"noon"},{"type":"text","text":"and now?"}]}]}]] },
  { "tools, tool_choice required without parallel calls, thinking, stream; max_tokens from the provider",
    { model = "m", stream = true, stream_options = { include_usage = true }, thinking = { type = "enabled" },
      tool_choice = "required", parallel_tool_calls = false,
      tools = { { type = "function", ["function"] = { name = "f", description = "d", parameters = { type = "object" } } } },
      messages = { { role = "user", content = "go" } } },
    [[{"model":"m","max_tokens":4096,"stream":true,"thinking":{"type":"enabled","budget_tokens":2048},
       "tool_choice":{"type":"any","disable_parallel_tool_use":true},
       "tools":[{"name":"f","description":"d","input_schema":{"type":"object"}}],
       "messages":[{"role":"user","content":[{"type":"text","text":"go"}]}]}]] },
  { "tool_choice by name, none",
    { model = "m", tool_choice = { type = "function", ["function"] = { name = "f" } }, messages = { { role = "user", content = "x" } } },
    [[{"model":"m","max_tokens":4096,"tool_choice":{"type":"tool","name":"f"},
       "messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}]] },
}

for _, case in ipairs(CHAT_REQUESTS) do
  tests["chat request: " .. case[1]] = function()
    expect(assert(anthropic.from_chat(case[2], 4096)), case[3], case[1])
  end
end

tests["chat request: what cannot be translated is named"] = function()
  for _, c in ipairs({ { { model = "m", messages = "hi" }, "messages must be an array" },
                       { { model = "m", messages = { "hi" } }, "messages.0 must be an object with a role" },
                       { { model = "m", messages = { { role = "user", content = "x" } }, tools = "f" }, "tools must be an array" } }) do
    local out, why = anthropic.from_chat(c[1], 1)
    assert(out == nil and why:find(c[2], 1, true), ("%s -> %s"):format(enc(c[1]), tostring(why)))
  end
end

tests["round trip: a Messages conversation through chat completions and back keeps every block and id"] = function()
  local convo = dec([[{"model":"m","max_tokens":64,"system":"s","messages":[
    {"role":"user","content":[{"type":"text","text":"weather?"}]},
    {"role":"assistant","content":[{"type":"text","text":"Looking."},
      {"type":"tool_use","id":"toolu_1","name":"f","input":{"city":"Paris"}}]},
    {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"sunny"}]}]}]])
  expect(assert(anthropic.from_chat(assert(anthropic.to_openai(convo)), 1)), enc(convo), "round trip")
end

tests["chat answer: text, thinking and tool_use blocks become one message; stop reasons and usage"] = function()
  local msg = dec([[{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[
    {"type":"thinking","thinking":"hmm","signature":"sig"},{"type":"text","text":"Looking."},
    {"type":"tool_use","id":"toolu_1","name":"f","input":{"city":"Paris"}}],"stop_reason":"tool_use",
    "usage":{"input_tokens":10,"cache_read_input_tokens":30,"output_tokens":5}}]])
  local doc = anthropic.to_chat(msg)
  doc.created = nil
  expect(doc, [[{"id":"msg_1","object":"chat.completion","model":"m","choices":[{"index":0,"finish_reason":"tool_calls",
    "message":{"role":"assistant","content":"Looking.","reasoning_content":"hmm","tool_calls":[
      {"id":"toolu_1","type":"function","function":{"name":"f","arguments":"{\"city\":\"Paris\"}"}}]}}],
    "usage":{"prompt_tokens":40,"completion_tokens":5,"total_tokens":45,"prompt_tokens_details":{"cached_tokens":30}}}]], "answer")
  for stop, want in pairs({ end_turn = "stop", max_tokens = "length", stop_sequence = "stop", refusal = "content_filter" }) do
    local d = anthropic.to_chat({ content = { { type = "text", text = "x" } }, stop_reason = stop })
    assert(d.choices[1].finish_reason == want, stop .. " -> " .. d.choices[1].finish_reason)
  end
end

-- Runs Messages events through the chat translator -> the chunks, and the message a client
-- rebuilds from them as the openai SDK does (tool calls by index).
local function to_chunks(events, include_usage)
  local chunks = {}
  local s = anthropic.chat_stream(function(doc) chunks[#chunks + 1] = dec(enc(doc)) end, include_usage)
  for _, e in ipairs(events) do
    if s:event(e[1], dec(enc(e[2]))) == false then break end
  end
  local m, calls = { content = "", reasoning = "" }, {}
  for _, c in ipairs(chunks) do
    local ch = c.choices[1]
    if ch then
      local d = ch.delta
      m.content = m.content .. (type(d.content) == "string" and d.content or "")
      m.reasoning = m.reasoning .. (d.reasoning_content or "")
      for _, t in ipairs(d.tool_calls or {}) do
        local call = calls[t.index + 1] or { id = "", name = "", arguments = "" }
        calls[t.index + 1] = call
        call.id = t.id or call.id
        call.name = call.name .. ((t["function"] or {}).name or "")
        call.arguments = call.arguments .. ((t["function"] or {}).arguments or "")
      end
      if ch.finish_reason ~= json.null then m.finish = ch.finish_reason end
    end
    if c.usage then m.usage = c.usage end
  end
  m.calls = setmetatable(calls, json.array_mt)
  return m, chunks, s
end

local function ev(kind, fields) fields.type = kind; return { kind, fields } end
local function start_ev() return ev("message_start", { message = { id = "msg_7", model = "m", usage = { input_tokens = 11 } } }) end

tests["chat stream: thinking, text and two tool calls come out as OpenAI chunks, ids and arguments whole"] = function()
  local m, chunks, s = to_chunks({
    start_ev(), ev("ping", {}),
    ev("content_block_start", { index = 0, content_block = { type = "thinking", thinking = "" } }),
    ev("content_block_delta", { index = 0, delta = { type = "thinking_delta", thinking = "let me " } }),
    ev("content_block_delta", { index = 0, delta = { type = "thinking_delta", thinking = "see" } }),
    ev("content_block_delta", { index = 0, delta = { type = "signature_delta", signature = "sig" } }),
    ev("content_block_stop", { index = 0 }),
    ev("content_block_start", { index = 1, content_block = { type = "text", text = "" } }),
    ev("content_block_delta", { index = 1, delta = { type = "text_delta", text = "Checking." } }),
    ev("content_block_stop", { index = 1 }),
    ev("content_block_start", { index = 2, content_block = { type = "tool_use", id = "toolu_a", name = "f", input = {} } }),
    ev("content_block_delta", { index = 2, delta = { type = "input_json_delta", partial_json = '{"x":' } }),
    ev("content_block_delta", { index = 2, delta = { type = "input_json_delta", partial_json = "1}" } }),
    ev("content_block_stop", { index = 2 }),
    ev("content_block_start", { index = 3, content_block = { type = "tool_use", id = "toolu_b", name = "g", input = { y = 2 } } }),
    ev("content_block_stop", { index = 3 }),
    ev("message_delta", { delta = { stop_reason = "tool_use" }, usage = { output_tokens = 9 } }),
    ev("message_stop", {}) }, true)
  assert(s.done, "message_stop seen")
  assert(m.reasoning == "let me see" and m.content == "Checking." and m.finish == "tool_calls", enc(m))
  expect(m.calls, [=[[{"id":"toolu_a","name":"f","arguments":"{\"x\":1}"},{"id":"toolu_b","name":"g","arguments":"{\"y\":2}"}]]=], "calls")
  expect(m.usage, [[{"prompt_tokens":11,"completion_tokens":9,"total_tokens":20,"prompt_tokens_details":{"cached_tokens":0}}]], "usage")
  assert(chunks[1].id == "msg_7" and chunks[1].choices[1].delta.role == "assistant", enc(chunks[1]))
  assert(#chunks[#chunks].choices == 0, "usage in a chunk of its own when include_usage was asked")
end

tests["chat stream: an error event stops the stream and names the cause"] = function()
  local _, chunks, s = to_chunks({ start_ev(),
    ev("content_block_start", { index = 0, content_block = { type = "text", text = "" } }),
    ev("content_block_delta", { index = 0, delta = { type = "text_delta", text = "Hel" } }),
    ev("error", { error = { type = "overloaded_error", message = "Overloaded" } }),
    ev("content_block_delta", { index = 0, delta = { type = "text_delta", text = "lo" } }) })
  assert(s.error == "Overloaded (overloaded_error)" and not s.done, tostring(s.error))
  assert(#chunks == 2, "no chunk after the error: " .. #chunks)
end

tests["stream: an error inside the upstream's stream ends it with an error event, not a complete message"] = function()
  local ev = {}
  local s = anthropic.stream("m", function(name, doc) ev[#ev + 1] = { name, dec(enc(doc)) } end)
  assert(s:chunk(dec(chunk({ content = "Hel" }))))
  assert(s:chunk(dec([[{"error":{"message":"overloaded","type":"server_error"}}]])) == false, "told to stop")
  assert(s.failed and names(ev) == "message_start ping content_block_start content_block_delta error", names(ev))
  assert(ev[#ev][2].error.message:find("overloaded", 1, true), enc(ev[#ev][2]))
end

tests["stop_reason: tool_use exactly when a tool_use block went out"] = function()
  local ev = translate({ chunk({ tool_calls = { { index = 0, id = "a", ["function"] = { name = "f", arguments = "{}" } } } }),
                         chunk({}, "stop") })
  assert(ev[#ev - 1][2].delta.stop_reason == "tool_use", "stop after calls: " .. enc(ev[#ev - 1][2]))
  ev = translate({ chunk({ tool_calls = { { index = 0, ["function"] = { arguments = "{}" } } } }), chunk({}, "tool_calls") })
  assert(ev[#ev - 1][2].delta.stop_reason == "end_turn", "no block, no tool_use: " .. enc(ev[#ev - 1][2]))
  local m = anthropic.from_openai(dec([[{"choices":[{"finish_reason":"stop","message":{"content":null,
    "tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}}]}]]), "m")
  assert(m.stop_reason == "tool_use", m.stop_reason)
end

tests["answer: a choice that is null or calls that are not objects give an empty message, no crash"] = function()
  local m = anthropic.from_openai(dec([[{"choices":[null]}]]), "m")
  assert(#m.content == 0 and m.stop_reason == "end_turn", enc(m))
  m = anthropic.from_openai(dec([[{"choices":[{"message":{"tool_calls":[5,null]},"finish_reason":"tool_calls"}]}]]), "m")
  assert(#m.content == 0, enc(m))
  local c = anthropic.as_chunk(dec([[{"choices":[{"message":{"tool_calls":[5,{"id":"x","function":{"name":"f"}}]}}]}]]))
  assert(#c.choices[1].delta.tool_calls == 1 and c.choices[1].delta.tool_calls[1].index == 1, enc(c))
end

tests["chat request: malformed tool_calls are a 400's message, not a crash"] = function()
  local out, why = anthropic.from_chat(dec([[{"model":"m","messages":[{"role":"user","content":"hi"},
    {"role":"assistant","tool_calls":[5]}]}]]))
  assert(out == nil and why == "messages.1.tool_calls.0 must be an object", tostring(why))
  out, why = anthropic.from_chat(dec([[{"model":"m","messages":[{"role":"assistant","tool_calls":"f"}]}]]))
  assert(out == nil and why == "messages.0.tool_calls must be an array", tostring(why))
end

tests["chat request: the thinking budget fits under max_tokens, or thinking is left off"] = function()
  local function budget(max)
    local out = anthropic.from_chat({ model = "m", max_tokens = max, thinking = { type = "enabled" },
                                      messages = { { role = "user", content = "x" } } })
    return out.thinking and out.thinking.budget_tokens
  end
  assert(budget(1000) == nil and budget(1024) == nil, "no room under 1025")
  assert(budget(1025) == 1024 and budget(1500) == 1024 and budget(16000) == 8000)
end

tests["chat stream: a tool call with no input streamed has arguments {} (JSON), not \"\""] = function()
  local m = to_chunks({ start_ev(),
    ev("content_block_start", { index = 0, content_block = { type = "tool_use", id = "t", name = "now", input = {} } }),
    ev("content_block_delta", { index = 0, delta = { type = "input_json_delta", partial_json = "" } }),
    ev("content_block_stop", { index = 0 }),
    ev("message_delta", { delta = { stop_reason = "tool_use" } }), ev("message_stop", {}) })
  expect(m.calls, [=[[{"id":"t","name":"now","arguments":"{}"}]]=], "calls")
end

return tests
