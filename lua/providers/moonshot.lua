-- The Moonshot open platform (platform.moonshot.ai / .cn), by API key.
local core = require "core"

return {
  name = "moonshot",
  description = "Moonshot open platform by API key (MOONSHOT_API_KEY); region global (.ai) or cn",
  api = "openai",
  auth = "api_key",
  base_url = "https://api.moonshot.ai/v1",
  base_url_env = { "MOONSHOT_BASE_URL" },
  api_key_env = { "MOONSHOT_API_KEY" },
  default_model = "kimi-k2.5",
  model_env = { "MOONSHOT_MODEL" },
  replay_reasoning = true,   -- thinking models want each turn's reasoning_content back
  regions = {
    global = { api = "https://api.moonshot.ai/v1" },
    cn = { api = "https://api.moonshot.cn/v1" },
  },
  headers = { ["User-Agent"] = "kimictl/" .. core.version },
  timeouts = { connect_ms = 15000, idle_ms = 300000, total_ms = 0 },
  hints = {
    [401] = "The Moonshot API key was refused: check it, and that it belongs to this region " ..
      "(keys from platform.moonshot.cn work only with --region cn).",
    [429] = "Rate limited or out of balance: check the account on the Moonshot platform.",
  },
}
