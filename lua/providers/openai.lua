-- Any OpenAI-compatible chat service, reached with an API key.
-- Copy this file to <your Lua directory>/providers/openai.lua to replace it, or patch
-- fields from user.lua (see README).
local core = require "core"

return {
  name = "openai",
  description = "any OpenAI-compatible service (OPENAI_BASE_URL, OPENAI_API_KEY)",
  api = "openai",                          -- request and stream shape: lua/openai.lua
  auth = "api_key",
  base_url = "https://api.openai.com/v1",
  base_url_env = { "OPENAI_BASE_URL" },    -- the first one set wins over base_url
  api_key_env = { "OPENAI_API_KEY" },
  default_model = nil,
  model_env = { "OPENAI_MODEL" },
  -- Sent with every request; a value may be a function(provider) -> string, false drops it.
  headers = {
    ["User-Agent"] = "kimictl/" .. core.version,
  },
  timeouts = { connect_ms = 15000, idle_ms = 120000, total_ms = 0 },
  hints = {
    [401] = "The API key was refused: check OPENAI_API_KEY (and OPENAI_BASE_URL for the service it belongs to).",
    [403] = "The service refused this request for this key.",
    [404] = "Not found: check the model name and OPENAI_BASE_URL (it usually ends in /v1).",
    [429] = "Rate limited or out of quota: wait and try again, or check the account's balance.",
  },
}
