-- Kimi's quirks repaired in lua/providers/kimi.lua: leaked tool-call markup, thinking turns.
local provider = require "provider"

local p = assert(provider.load("kimi"))
local LEAK = "Let me check.<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0" ..
  '<|tool_call_argument_begin|>{"city": "Paris"}<|tool_call_end|><|tool_call_begin|>functions.now:1' ..
  "<|tool_call_argument_begin|>{}<|tool_call_end|><|tool_calls_section_end|> Done."

-- The stream of LEAK cut into pieces at the given positions, through the repair -> text, calls
local function through(cuts)
  local filter = p.chat_chunks(p)
  local text, calls = {}, {}
  local function take(chunk)
    local d = chunk and chunk.choices[1].delta
    if d and d.content then text[#text + 1] = d.content end
    for _, c in ipairs(d and d.tool_calls or {}) do calls[#calls + 1] = c end
  end
  local prev = 0
  for _, at in ipairs(cuts) do
    take(filter({ choices = { { index = 0, delta = { content = LEAK:sub(prev + 1, at) } } } }))
    prev = at
  end
  take(filter({ choices = { { index = 0, delta = {}, finish_reason = "stop" } } }))
  take(filter(nil))
  return table.concat(text), calls
end

return {
  ["leaked markup becomes tool calls wherever the stream is cut"] = function()
    for cut = 1, #LEAK - 1 do
      local text, calls = through({ cut, #LEAK })
      assert(text == "Let me check. Done.", ("cut at %d: text %q"):format(cut, text))
      assert(#calls == 2 and calls[1]["function"].name == "get_weather" and calls[2]["function"].name == "now",
        "cut at " .. cut)
      assert(calls[1]["function"].arguments == '{"city": "Paris"}' and calls[1].index == 0 and calls[2].index == 1)
      assert(calls[1].id == "functions.get_weather:0", calls[1].id)
    end
  end,
  ["leaked calls are numbered after the real ones of the same stream"] = function()
    local filter = p.chat_chunks(p)
    local real = filter({ choices = { { index = 0, delta = { tool_calls = {
      { index = 0, id = "call_real", type = "function", ["function"] = { name = "f", arguments = "{}" } } } } } } })
    assert(real.choices[1].delta.tool_calls[1].index == 0)
    local out = filter({ choices = { { index = 0, delta = { content = LEAK }, finish_reason = "stop" } } })
    local calls = out.choices[1].delta.tool_calls
    assert(#calls == 2 and calls[1].index == 1 and calls[2].index == 2, "leaked calls collide with the real one")
  end,
  ["text that only looks like the start of markup is held, then shown"] = function()
    local filter = p.chat_chunks(p)
    local c = filter({ choices = { { index = 0, delta = { content = "a <|tool" } } } })
    assert(c.choices[1].delta.content == "a ", tostring(c.choices[1].delta.content))
    local last = filter({ choices = { { index = 0, delta = { content = "bar|> b" }, finish_reason = "stop" } } })
    assert(last.choices[1].delta.content == "<|toolbar|> b" and last.choices[1].finish_reason == "stop")
  end,
  ["a whole answer with markup is repaired, finish_reason tool_calls"] = function()
    local doc = { choices = { { index = 0, finish_reason = "stop", message = { role = "assistant", content = LEAK } } } }
    doc = p.chat_chunks(p)(doc)
    local m = doc.choices[1].message
    assert(m.content == "Let me check. Done." and #m.tool_calls == 2 and doc.choices[1].finish_reason == "tool_calls")
  end,
  ["thinking turns: reasoning_content added, empty content dropped, max_tokens raised, old names mapped"] = function()
    local body = { model = "k2p5", max_completion_tokens = 100, thinking = { type = "enabled" }, messages = {
      { role = "assistant", content = "", tool_calls = { { id = "c" } } },
      { role = "assistant", content = "kept", reasoning_content = "r", tool_calls = { { id = "d" } } } } }
    p.chat_request(p, body)
    assert(body.model == "kimi-for-coding" and body.max_completion_tokens == 16000)
    assert(body.messages[1].content == nil and body.messages[1].reasoning_content == "")
    assert(body.messages[2].content == "kept" and body.messages[2].reasoning_content == "r")
    local off = { model = "k3[1m]", max_tokens = 100, messages = {} }
    p.chat_request(p, off)
    assert(off.model == "k3" and off.max_tokens == 100, "no thinking: no floor")
  end,
}
