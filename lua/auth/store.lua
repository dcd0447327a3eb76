-- Credential files shared with the official Kimi clients: where they are, their two
-- formats, reading them strictly and writing them atomically under their own locks.
local core = require "core"
local paths = require "paths"

local store = {}

-- Kimi CLI's store: <share>/credentials/kimi-code.json, flock on kimi-code.lock beside it.
function store.kimi_cli(share_dir)
  local dir = share_dir .. "/credentials"
  return { kind = "kimi-cli", dir = dir, path = dir .. "/kimi-code.json",
           lock_path = dir .. "/kimi-code.lock", lock_kind = "flock", shared_with = "Kimi CLI" }
end

-- kimi-code's store: <home>/credentials/kimi-code.json, lock directory <home>/oauth/kimi-code.lock.
function store.kimi_code(home)
  return { kind = "kimi-code", dir = home .. "/credentials", path = home .. "/credentials/kimi-code.json",
           lock_path = home .. "/oauth/kimi-code.lock", lock_kind = "dir", sentinel = home .. "/oauth/kimi-code",
           shared_with = "kimi-code" }
end

-- kimictl's own store for a named profile, in Kimi CLI's format. Both names were checked
-- (paths.check_name) where they came in; checked again here, where they become a path.
function store.kimictl(provider, profile)
  assert(paths.check_name("provider", provider))
  assert(paths.check_name("profile", profile))
  local dir = paths.config_dir() .. "/credentials"
  local base = dir .. "/" .. provider .. "-" .. profile
  return { kind = "kimictl", dir = dir, path = base .. ".json", lock_path = base .. ".lock",
           lock_kind = "flock" }
end

local function is_str(v) return type(v) == "string" end
local function is_num(v) return math.type(v) ~= nil end
-- OAuth tokens are printable ASCII (RFC 6749's VSCHAR); anything else would not be written back as read.
local function is_token(v) return not v:find("[^\32-\126]") end
-- A time kimictl can do arithmetic with: finite, from 1970 to the year 5138.
local function is_time(v) return is_num(v) and v >= 0 and v < 1e11 end

-- store.parse(path, text | nil, err, code) -> cred | nil, message, code: the credentials in
-- the text of the file at path, as core.fs.read gave it (see store.read).
function store.parse(path, text, err, code)
  if not text then
    if code == "ENOENT" then return nil, "no login stored in " .. paths.show(path), "missing" end
    return nil, ("cannot read %s: %s"):format(paths.show(path), err:sub(#path + 3)), "io"
  end
  local doc, jerr = core.json.decode(text)
  local why
  if not utf8.len(text) then
    why = "not UTF-8 text"   -- no Kimi client writes that, and it would not be written back as read
  elseif type(doc) ~= "table" then
    why = jerr or "not a JSON object"
  elseif not is_str(doc.access_token) or not is_str(doc.refresh_token) then
    why = "access_token and refresh_token must be strings"
  elseif not is_token(doc.access_token) or not is_token(doc.refresh_token) then
    why = "access_token and refresh_token must be printable ASCII"
  elseif doc.expires_at ~= nil and not is_time(doc.expires_at) then
    why = "expires_at must be a time in seconds since 1970"
  elseif doc.expires_in ~= nil and not is_time(doc.expires_in) then
    why = "expires_in must be a number of seconds"
  end
  if why then
    return nil, ("the credential file %s is damaged (%s); kimictl left it untouched. " ..
      "Run 'kimictl login' to replace it."):format(paths.show(path), why), "corrupt"
  end
  return {
    access_token = doc.access_token, refresh_token = doc.refresh_token,
    expires_at = is_num(doc.expires_at) and doc.expires_at or 0,
    expires_in = is_num(doc.expires_in) and doc.expires_in or 0,
    scope = is_str(doc.scope) and doc.scope or "", token_type = is_str(doc.token_type) and doc.token_type or "Bearer",
  }
end

-- store.read(s) -> cred | nil, message, code ("missing", "corrupt", "io")
-- Never changes the file: a file kimictl cannot read is reported and left as it is. The
-- file is parsed again only when it changed (paths.read_parsed); each caller gets its own copy.
function store.read(s)
  local cred, err, code = paths.read_parsed(s.path, function(...) return store.parse(s.path, ...) end)
  if not cred then return nil, err, code end
  local copy = {}
  for k, v in pairs(cred) do copy[k] = v end
  return copy
end

-- A float as Python's json.dumps writes it: the shortest text that reads back the same,
-- always with a fraction or an exponent.
local function float_text(x)
  local s
  for digits = 15, 17 do
    s = ("%." .. digits .. "g"):format(x)
    if tonumber(s) == x then break end
  end
  if not s:find("[%.eEn]") then s = s .. ".0" end
  return s
end

local FIELDS = { "access_token", "refresh_token", "expires_at", "scope", "token_type", "expires_in" }

-- The file's text in the store's own format: Kimi CLI writes compact JSON with float times;
-- kimi-code writes indented JSON with an integer expires_at and a final newline.
function store.encode(s, cred)
  local parts = {}
  for _, k in ipairs(FIELDS) do
    local v = cred[k]
    local text
    if k == "expires_at" and s.kind == "kimi-code" then text = ("%d"):format(math.floor(v))
    elseif k == "expires_at" or k == "expires_in" then text = float_text(v + 0.0)
    else text = core.json.encode(v) end
    parts[#parts + 1] = core.json.encode(k) .. (s.kind == "kimi-code" and ": " or ":") .. text
  end
  if s.kind == "kimi-code" then return "{\n  " .. table.concat(parts, ",\n  ") .. "\n}\n" end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- store.write(s, cred) -> true | nil, message. 0600 file in a 0700 directory, replaced atomically.
function store.write(s, cred)
  local ok, err = core.fs.mkdir(s.dir, "0700")
  if ok then ok, err = core.fs.write_atomic(s.path, store.encode(s, cred), "0600") end
  if not ok then return nil, ("cannot save the login to %s: %s"):format(paths.show(s.path), err) end
  return true
end

-- store.lock(s, timeout_ms) -> lock | nil, message, code. Release with lock:release() or <close>.
function store.lock(s, timeout_ms)
  local ok, err, code = core.fs.mkdir(paths.dirname(s.lock_path), "0700")
  if ok and s.sentinel and not core.fs.stat(s.sentinel) then   -- kimi-code's lock sits beside it
    ok, err, code = core.fs.write_atomic(s.sentinel, "", "0600")
  end
  if not ok then return nil, err, code end
  return core.lock.take(s.lock_path, s.lock_kind, timeout_ms)
end

-- store.check_writable(s) -> true | nil, message: the directory exists or can be made, and a
-- file can be written in it (asked before a login, not after the user confirmed it).
function store.check_writable(s)
  local ok, err = core.fs.mkdir(s.dir, "0700")
  if ok then
    local probe = s.path .. ".probe"
    ok, err = core.fs.write_atomic(probe, "", "0600")
    if ok then core.fs.remove(probe) end
  end
  if not ok then return nil, ("cannot save a login in %s: %s"):format(paths.show(s.dir), err) end
  return true
end

-- store.remove(s) -> true | nil, message: logout, under the store's lock.
function store.remove(s, timeout_ms)
  local lock, err = store.lock(s, timeout_ms)
  if not lock then return nil, err end
  local ok, rerr, code = core.fs.remove(s.path)
  lock:release()
  if not ok and code ~= "ENOENT" then return nil, rerr end
  return true
end

return store
