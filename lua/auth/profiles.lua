-- Named logins: $XDG_CONFIG_HOME/kimictl/profiles.json maps provider -> profile -> entry.
-- An entry holds an API key, a key_cmd, or OAuth settings (region); OAuth tokens live in
-- credential files (auth/store.lua). The file is 0600, written atomically under a lock.
local core = require "core"
local paths = require "paths"

local profiles = {}

local function file() return paths.config_dir() .. "/profiles.json" end

-- profiles.load() -> doc | nil, message   (a missing file is an empty doc)
function profiles.load()
  local text, err, code = core.fs.read(file())
  if not text then
    if code == "ENOENT" then return { providers = {} } end
    return nil, err
  end
  local doc, jerr = core.json.decode(text)
  if type(doc) ~= "table" or (doc.providers ~= nil and type(doc.providers) ~= "table") then
    return nil, ("%s is damaged (%s); kimictl left it untouched: fix or remove it"):format(
      paths.show(file()), jerr or "not a profiles document")
  end
  doc.providers = doc.providers or {}
  return doc
end

-- profiles.update(fn) -> true | nil, message: fn(doc) changes the doc, saved under the lock.
function profiles.update(fn)
  local dir = paths.config_dir()
  local ok, err = core.fs.mkdir(dir, "0700")
  if not ok then return nil, err end
  local lock <close>, lerr = core.lock.take(dir .. "/profiles.lock", "flock", 30000)
  if not lock then return nil, lerr end
  local doc, derr = profiles.load()
  if not doc then return nil, derr end
  fn(doc)
  return core.fs.write_atomic(file(), core.json.encode(doc), "0600")
end

function profiles.get(provider, profile)
  local doc = profiles.load()
  local by = doc and doc.providers[provider]
  return type(by) == "table" and by[profile] or nil
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
