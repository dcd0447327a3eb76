-- Named logins: $XDG_CONFIG_HOME/kimictl/profiles.json maps provider -> profile -> entry.
-- An entry holds an API key, a key_cmd, or OAuth settings (region); OAuth tokens live in
-- credential files (auth/store.lua). The file is 0600, written atomically under a lock.
local core = require "core"
local paths = require "paths"

local profiles = {}

local function file() return paths.config_dir() .. "/profiles.json" end

local ENTRY_FIELDS = { api_key = "string", key_cmd = "string", region = "string" }

-- What is wrong with a decoded document, naming the field; nil when it is sound.
local function problem(doc)
  if type(doc) ~= "table" or getmetatable(doc) == core.json.array_mt then return "not a JSON object" end
  if doc.providers == nil then return nil end
  if type(doc.providers) ~= "table" or getmetatable(doc.providers) == core.json.array_mt then
    return "providers must be an object"
  end
  for name, by in pairs(doc.providers) do
    local ok, why = paths.check_name("provider", name)
    if not ok then return "providers: " .. why end
    if type(by) ~= "table" then return ("providers.%s must be an object, got a %s"):format(name, type(by)) end
    for prof, entry in pairs(by) do
      ok, why = paths.check_name("profile", prof)
      if not ok then return ("providers.%s: %s"):format(name, why) end
      if type(entry) ~= "table" then
        return ("providers.%s.%s must be an object, got a %s"):format(name, prof, type(entry))
      end
      for k, want in pairs(ENTRY_FIELDS) do
        if entry[k] ~= nil and type(entry[k]) ~= want then
          return ("providers.%s.%s.%s must be a %s, got a %s"):format(name, prof, k, want, type(entry[k]))
        end
      end
    end
  end
end

-- The profiles in the file's text (see profiles.load).
local function parse(text, err, code)
  if not text then
    if code == "ENOENT" then return { providers = {} } end
    return nil, err
  end
  local doc, jerr = core.json.decode(text)
  local why = jerr or problem(doc)
  if why then
    return nil, ("%s is damaged (%s); kimictl left it untouched: fix or remove it"):format(
      paths.show(file()), why)
  end
  doc.providers = doc.providers or {}
  return doc
end

-- profiles.load() -> doc | nil, message   (a missing file is an empty doc)
-- The doc is shared until the file changes (paths.read_parsed): read it, do not change it.
function profiles.load()
  return paths.read_parsed(file(), parse)
end

-- profiles.update(fn) -> true | nil, message: fn(doc) changes the doc, saved under the lock.
function profiles.update(fn)
  local dir = paths.config_dir()
  local ok, err = core.fs.mkdir(dir, "0700")
  if not ok then return nil, err end
  local lock <close>, lerr = core.lock.take(dir .. "/profiles.lock", "flock", 30000)
  if not lock then return nil, lerr end
  local doc, derr = parse(core.fs.read(file()))   -- a doc of its own, to change
  if not doc then return nil, derr end
  fn(doc)
  return core.fs.write_atomic(file(), core.json.encode(doc), "0600")
end

-- profiles.get(provider, profile) -> entry | nil (none) | nil, message (a damaged file)
function profiles.get(provider, profile)
  local doc, err = profiles.load()
  if not doc then return nil, err end
  local entry = (doc.providers[provider] or {})[profile]
  if type(entry) ~= "table" then return entry end
  local copy = {}
  for k, v in pairs(entry) do copy[k] = v end
  return copy
end

function profiles.set(provider, profile, entry)
  return profiles.update(function(doc)
    doc.providers[provider] = doc.providers[provider] or {}
    doc.providers[provider][profile] = entry
    if next(doc.providers[provider]) == nil then doc.providers[provider] = nil end
  end)
end

function profiles.path() return file() end

return profiles
