-- The Anthropic <-> OpenAI translation the gateway applies to what clients and providers
-- send: the input is JSON. A request either translates or is refused with a reason; a list
-- is fed as a stream of chunks (OpenAI -> Anthropic events) and as a stream of [name, event]
-- pairs (Anthropic -> OpenAI chunks). Whatever comes out must encode as JSON.
local json = require("core").json
local anthropic = require "wire.anthropic"

local function request(f, ...)
  local out, err = f(...)
  assert(out ~= nil or type(err) == "string", "neither a result nor a reason")
  if out ~= nil then json.encode(out) end
end

return function(s)
  local doc = json.decode(s)
  if type(doc) ~= "table" then return end
  request(anthropic.to_openai, doc)
  request(anthropic.from_chat, doc, 4096)
  json.encode(anthropic.from_openai(doc, "kimi-for-coding"))
  json.encode(anthropic.to_chat(doc))
  if doc[1] == nil then return end
  local events = anthropic.stream("kimi-for-coding", function(_, ev) json.encode(ev) end)
  for _, chunk in ipairs(doc) do
    if type(chunk) == "table" then events:chunk(chunk) end
  end
  events:finish()
  local chunks = anthropic.chat_stream(function(c) json.encode(c) end, true)
  for _, pair in ipairs(doc) do
    if type(pair) == "table" and type(pair[1]) == "string" and type(pair[2]) == "table" then
      if chunks:event(pair[1], pair[2]) == false then break end
    end
  end
end
