-- Kimi's leaked tool-call markup, repaired in flight: the input is an answer's text, cut into
-- pieces at the \1 bytes. What comes out never shows the markup, text with no "<|" passes
-- unchanged, every call found is whole, and every chunk still encodes as JSON.
local json = require("core").json
local kimi = require "providers.kimi"

local BEGIN = "<|tool_calls_section_begin|>"

return function(s)
  local filter = kimi.chat_chunks(kimi)
  local out, calls = {}, {}
  local function take(chunk)
    if not chunk then return end
    json.encode(chunk)
    local d = chunk.choices[1].delta
    if d.content then out[#out + 1] = d.content end
    for _, c in ipairs(d.tool_calls or {}) do calls[#calls + 1] = c end
  end
  for piece in (s .. "\1"):gmatch("([^\1]*)\1") do
    take(filter({ choices = { { index = 0, delta = { content = piece } } } }))
  end
  take(filter({ choices = { { index = 0, delta = {}, finish_reason = "stop" } } }))
  take(filter(nil))
  local text = table.concat(out)
  local plain = s:gsub("\1", "")
  assert(not text:find(BEGIN, 1, true), "the markup was shown")
  if not plain:find("<|", 1, true) then assert(text == plain, "plain text changed") end
  for _, c in ipairs(calls) do
    assert(type(c.id) == "string" and type(c["function"].name) == "string" and type(c["function"].arguments) == "string")
  end
end
