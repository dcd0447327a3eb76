-- The models a user can reach: the providers they configured, and each one's /models with
-- what the service says the model can do. Shared by `kimictl models` and serve's /v1/models.
local auth = require "auth"
local client = require "client"
local config = require "config"
local core = require "core"
local provider = require "provider"

local models = {}

-- models.has_credentials(p) -> true when p has a key or a stored login (nothing is refreshed)
function models.has_credentials(p)
  local ok, src = pcall(auth.source, p)
  if not ok or not src then return false end
  if src.kind == "missing" then return false end
  return src.kind ~= "oauth" or core.fs.stat(src.store.path) ~= nil
end

-- models.configured([only_with_credentials]) -> provider names: the default one and those
-- of aliases (unless only_with_credentials), and every one with a key or a login.
function models.configured(only_with_credentials)
  local names, seen = {}, {}
  local function add(n, checked)
    if not n or seen[n] or not provider.exists(n) then return end
    if only_with_credentials and not checked and not models.has_credentials(provider.load(n)) then return end
    seen[n] = true
    names[#names + 1] = n
  end
  add(config.default_provider())
  for _, target in pairs(config.load().aliases or {}) do add(target:match("^([%w_-]+)/")) end
  for _, n in ipairs(provider.names()) do
    local ok, p = pcall(provider.load, n)
    if ok and p and models.has_credentials(p) then add(n, true) end
  end
  return names
end

local function first_number(m, keys)
  for _, k in ipairs(keys) do
    local v = math.tointeger(m[k])
    if v then return v end
  end
end

local function has(list, word)
  for _, x in ipairs(type(list) == "table" and list or {}) do if x == word then return true end end
  return false
end

-- One entry of a /models answer, with the capabilities services name in different words.
function models.entry(p, m)
  local function bool(...)
    for _, k in ipairs({ ... }) do if type(m[k]) == "boolean" then return m[k] end end
  end
  local image = bool("supports_image_in", "supports_vision", "vision")
  if image == nil and type(m.input_modalities) == "table" then image = has(m.input_modalities, "image") end
  return {
    id = m.id,
    display_name = type(m.display_name) == "string" and m.display_name or nil,
    created = math.tointeger(m.created),
    created_at = type(m.created_at) == "string" and m.created_at or nil,
    context_length = first_number(m, { "context_length", "context_window", "max_context_length", "max_model_len" }),
    thinking = bool("supports_reasoning", "reasoning", "supports_thinking"),
    image_input = image,
    protocol = type(m.protocol) == "string" and m.protocol or p.api,
  }
end

-- models.of(p[, profile]) -> { entry, ... } | nil, message. Kept for a minute in the process
-- (five seconds after a failure).
local cache = {}
function models.of(p, profile)
  local key = p.name .. "\0" .. (profile or "")
  local hit = cache[key]
  if hit and hit.until_ > core.proc.clock_ms() then return hit.models, hit.err end
  local res, err, _, hint = client.request(p, { path = "/models", timeout_ms = 15000,
    headers = p.api == "anthropic" and { ["anthropic-version"] = require("wire.anthropic").VERSION } or nil },
    { profile = profile })
  local list, why = nil, nil
  if not res then
    why = err .. (hint and (" " .. hint) or "")
  elseif res.status ~= 200 then
    local msg, h = provider.explain(p, res)
    why = msg .. (h and (" " .. h) or "")
  else
    local doc = core.json.decode(res.body)
    if type(doc) ~= "table" or type(doc.data) ~= "table" then
      why = p.name .. "'s /models answer is not a JSON list of models"
    else
      list = {}
      for _, m in ipairs(doc.data) do
        if type(m) == "table" and type(m.id) == "string" then list[#list + 1] = models.entry(p, m) end
      end
    end
  end
  cache[key] = { models = list, err = why, until_ = core.proc.clock_ms() + (list and 60000 or 5000) }
  return list, why
end

return models
