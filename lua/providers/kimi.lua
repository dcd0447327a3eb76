-- Kimi Code subscription: OAuth device login shared with Kimi CLI, the coding API, and
-- plain-word explanations of its refusals. Every header is here for you to change (README).
local core = require "core"
local paths = require "paths"

-- Kimi CLI's device id file: 32 lowercase hex digits (a UUID v4 without dashes), 0600.
local device_id
local function get_device_id(p)
  if device_id then return device_id end
  local share = os.getenv(p.oauth.share_dir_env[1])
  local path = ((share and share ~= "") and share or (paths.home() .. "/" .. p.oauth.share_dir)) .. "/device_id"
  local id = core.fs.read(path)
  id = id and id:match("^%s*(%x+)%s*$")
  if not id then
    local hex = assert(core.proc.random_hex(16))
    local b7 = (tonumber(hex:sub(13, 14), 16) & 0x0f) | 0x40       -- version 4
    local b9 = (tonumber(hex:sub(17, 18), 16) & 0x3f) | 0x80       -- RFC 4122 variant
    id = hex:sub(1, 12) .. ("%02x"):format(b7) .. hex:sub(15, 16) .. ("%02x"):format(b9) .. hex:sub(19)
    local ok, err = core.fs.mkdir(paths.dirname(path), "0700")
    if ok then ok, err = core.fs.write_atomic(path, id, "0600") end
    if not ok then   -- the id still works for this run; say why the next run sends another
      core.log.warn(("could not save the device id (%s): each run will send a new one"):format(err))
    end
  end
  device_id = id
  return id
end

-- Header values must be printable ASCII. The machine's are worked out once per run, not once
-- per request.
local function ascii(s) return (tostring(s):gsub("[^\32-\126]", "?")) end
local machine
local function about(field)
  return function()
    if not machine then
      local u = core.proc.uname()
      machine = { name = ascii(u.nodename), model = ascii(("%s %s %s"):format(u.sysname, u.release, u.machine)),
                  os = ascii(u.version) }
    end
    return machine[field]
  end
end

local identity = {
  ["X-Msh-Platform"] = "kimictl",
  ["X-Msh-Version"] = core.version,
  ["X-Msh-Device-Id"] = get_device_id,
  ["X-Msh-Device-Name"] = about("name"),
  ["X-Msh-Device-Model"] = about("model"),
  ["X-Msh-Os-Version"] = about("os"),
}

local headers = { ["User-Agent"] = "kimictl/" .. core.version }
for k, v in pairs(identity) do headers[k] = v end

-- Kimi's quirks, repaired on the one request path (chat and serve). Each can be turned off
-- in user.lua: providers = { kimi = { repair = { leaked_tool_calls = false } } }.
local REPAIR = {
  leaked_tool_calls = true,        -- tool-call markup in content becomes real tool_calls
  reasoning_content = true,        -- "" added to assistant tool-call turns when thinking is on
  empty_content = true,            -- empty content beside tool calls dropped
  thinking_max_tokens = 16000,     -- max_tokens floor when thinking is on (0: none)
  model_aliases = { ["kimi-code"] = "kimi-for-coding", k2p5 = "kimi-for-coding", ["k3[1m]"] = "k3" },
}

local function is_empty(content)
  return content == "" or (type(content) == "table" and next(content) == nil)
end

-- The request repairs: old model names, and what Kimi refuses in a thinking conversation.
local function repair_request(p, body)
  local r = p.repair or {}
  body.model = (r.model_aliases or {})[body.model] or body.model
  local thinking = type(body.thinking) == "table" and body.thinking.type == "enabled"
  for _, m in ipairs(type(body.messages) == "table" and body.messages or {}) do
    if type(m) == "table" and m.role == "assistant" and type(m.tool_calls) == "table" and next(m.tool_calls) then
      if r.empty_content and is_empty(m.content) then m.content = nil end
      if r.reasoning_content and thinking and m.reasoning_content == nil then m.reasoning_content = "" end
    end
  end
  local floor = thinking and math.tointeger(r.thinking_max_tokens) or 0
  for _, k in ipairs({ "max_completion_tokens", "max_tokens" }) do
    if math.tointeger(body[k]) and body[k] < floor then body[k] = floor end
  end
end

-- Tool calls leaked into the text: <|tool_calls_section_begin|> <|tool_call_begin|>
-- functions.NAME:N <|tool_call_argument_begin|> {json} <|tool_call_end|> ...
-- <|tool_calls_section_end|>. markup() -> a filter fed text in pieces: feed(text, final) ->
-- text to show now, calls found ({ id, name, arguments }). Only what could be the start of
-- the markup is held back.
local BEGIN, END = "<|tool_calls_section_begin|>", "<|tool_calls_section_end|>"

local function parse_calls(section, calls)
  for head, args in section:gmatch("<|tool_call_begin|>%s*(.-)%s*<|tool_call_argument_begin|>(.-)<|tool_call_end|>") do
    calls[#calls + 1] = { id = head, name = head:match("^functions%.(.-):%d+$") or head, arguments = args }
  end
end

local function markup()
  local held, inside = "", false
  return function(text, final)
    held = held .. (text or "")
    local out, calls = {}, {}
    while true do
      if inside then
        local e = held:find(END, 1, true)
        if not e and not final then break end
        parse_calls(held:sub(1, e and e - 1 or #held), calls)
        held, inside = e and held:sub(e + #END) or "", false
        if not e then break end
      else
        local b = held:find(BEGIN, 1, true)
        if b then
          out[#out + 1] = held:sub(1, b - 1)
          held, inside = held:sub(b + #BEGIN), true
        else
          local keep = 0   -- the longest tail that could begin the marker
          for n = math.min(#held, #BEGIN - 1), 1, -1 do
            if BEGIN:sub(1, n) == held:sub(-n) then keep = n; break end
          end
          if final then keep = 0 end
          out[#out + 1] = held:sub(1, #held - keep)
          held = held:sub(#held - keep + 1)
          break
        end
      end
    end
    return table.concat(out), calls
  end
end

-- The answer repairs, chunk by chunk: chat_chunks(p) -> filter(chunk) -> chunk (changed in
-- place); filter(nil) at the end -> a last chunk with what was held back, or nil.
local function chat_chunks(p)
  if not (p.repair or {}).leaked_tool_calls then return nil end
  local feed, n, any = markup(), 0, false
  local function add(delta, calls)
    if #calls == 0 then return end
    delta.tool_calls = type(delta.tool_calls) == "table" and delta.tool_calls or {}
    for _, c in ipairs(calls) do
      delta.tool_calls[#delta.tool_calls + 1] = { index = n, id = c.id, type = "function",
                                                  ["function"] = { name = c.name, arguments = c.arguments } }
      n, any = n + 1, true
    end
  end
  return function(chunk)
    if chunk == nil then
      local text, calls = feed("", true)
      if text == "" and #calls == 0 then return nil end
      local delta = { content = text ~= "" and text or nil }
      add(delta, calls)
      return { choices = { { index = 0, delta = delta } } }
    end
    local choice = type(chunk.choices) == "table" and chunk.choices[1]
    if type(choice) ~= "table" then return chunk end
    local d = type(choice.delta) == "table" and choice.delta or type(choice.message) == "table" and choice.message
    local final = choice.message ~= nil or type(choice.finish_reason) == "string"
    for _, c in ipairs(type(d) == "table" and type(d.tool_calls) == "table" and d.tool_calls or {}) do
      local i = type(c) == "table" and math.tointeger(c.index)
      if i and i >= n then n = i + 1 end   -- real calls keep their numbers; leaked ones come after
    end
    local had = type(d) == "table" and type(d.content) == "string"
    if had or (final and type(d) == "table") then   -- the end of the answer flushes what was held
      local text, calls = feed(had and d.content or "", final)
      if text ~= "" then d.content = text
      elseif had then d.content = (choice.message and #calls == 0) and "" or nil end
      add(d, calls)
    end
    if any and choice.finish_reason == "stop" then choice.finish_reason = "tool_calls" end
    return chunk
  end
end

local TERMINATED = [[Kimi For Coding admits only the coding agents on its allow-list, judged by the
User-Agent and X-Msh-Platform headers. kimictl identifies itself honestly (User-Agent: kimictl/%s),
and Kimi has answered that this client is not on the list. Kimi's rules forbid sending another
client's identity (accounts have been suspended for it), so kimictl will not pretend. You can:
  - ask Moonshot to allow-list kimictl under its own name, or
  - use a Moonshot platform API key instead: kimictl login --provider moonshot --api-key-stdin]]

return {
  name = "kimi",
  description = "Kimi Code subscription (OAuth device login, shared with Kimi CLI)",
  api = "openai",
  auth = "oauth",
  base_url = "https://api.kimi.com/coding/v1",
  base_url_env = { "KIMI_CODE_BASE_URL", "KIMI_BASE_URL" },
  api_key_env = { "KIMI_API_KEY" },          -- a static key instead of the OAuth login
  default_model = "kimi-for-coding",
  messages_path = "/messages?beta=true",   -- Anthropic's Messages API, spoken natively (serve)
  model_env = { "KIMI_MODEL_NAME" },
  replay_reasoning = true,                 -- each turn's reasoning_content goes back (§6)
  regions = {
    ["mainland-cn"] = { oauth = "https://auth.kimi.com", api = "https://api.kimi.com/coding/v1" },
    global = { oauth = "https://auth.kimi.ai", api = "https://api.kimi.ai/coding/v1" },
  },
  oauth = {
    host = "https://auth.kimi.com",
    host_env = { "KIMI_CODE_OAUTH_HOST", "KIMI_OAUTH_HOST" },
    client_id = "17e5f671-d194-4dfb-9706-5516cb48c098",
    device_path = "/api/oauth/device_authorization",
    token_path = "/api/oauth/token",
    headers = identity,                      -- OAuth requests carry the X-Msh-* set only
    share_dir = ".kimi", share_dir_env = { "KIMI_SHARE_DIR" },
    successor_dir = ".kimi-code", successor_dir_env = { "KIMI_CODE_HOME" },
    slow_down_ms = 5000,                     -- added to the poll interval on slow_down (RFC 8628)
    retry_delays_ms = { 1000, 2000 },        -- refresh retries on 429, 5xx and network errors
    reread_ms = 1000,                        -- wait before re-reading after a refused refresh
    rejected_ttl_s = 300,
    lock_timeout_ms = 60000,
  },
  headers = headers,
  timeouts = { connect_ms = 15000, idle_ms = 300000, total_ms = 0 },
  hints = {
    [401] = "Your Kimi login has expired or was revoked: run 'kimictl login'.",
    [402] = "Your Kimi Code membership has expired: renew it on kimi.com, then try again.",
    [404] = "Not found: check the model name ('kimictl doctor' lists the models) and KIMI_CODE_BASE_URL.",
    [429] = "Kimi is rate-limiting this account: wait a little and try again.",
  },
  -- Each chat request on its way (kimictl chat and serve): Kimi caches prompts by
  -- prompt_cache_key, so one conversation (the same first two messages) keeps one key.
  repair = REPAIR,
  chat_chunks = chat_chunks,
  -- Requests to the Messages endpoint (serve's /v1/messages): the old model names and the
  -- max_tokens floor apply there too.
  messages_request = repair_request,
  chat_request = function(p, body)
    repair_request(p, body)
    if body.prompt_cache_key == nil and type(body.messages) == "table" then
      local start = { body.model, body.messages[1], body.messages[2] }
      body.prompt_cache_key = core.hash.sha256(core.json.encode(start)):sub(1, 32)
    end
  end,
  -- A refusal explained -> message (nil: the generic one), hint, cause. Kimi's bodies tell an
  -- identity refusal from an exhausted weekly quota (both 403) and a wrong region (429).
  explain = function(p, res, doc)
    local e = type(doc) == "table" and type(doc.error) == "table" and doc.error or {}
    local text = tostring(e.message or res.body or ""):lower()
    if res.status == 403 and e.type == "access_terminated_error" then
      return nil, TERMINATED:format(core.version), "access_terminated"
    elseif res.status == 403 and text:find("limit") then
      return nil, "You have used this period's quota of your plan: 'kimictl usage' shows when it resets.",
        "quota_exhausted"
    elseif res.status == 402 then
      return nil, nil, "membership_expired"
    elseif res.status == 429 and text:find("insufficient balance") then
      return nil, "Kimi says the balance is insufficient: this usually means the wrong region. " ..
        "Log in with 'kimictl login --region global' (kimi.ai accounts) or '--region mainland-cn' (kimi.com).",
        "insufficient_balance"
    end
  end,
}
