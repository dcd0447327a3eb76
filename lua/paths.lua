-- Where kimictl keeps things: XDG directories, and paths shown with ~ for reading.
local core = require "core"
local errors = require "errors"

local paths = {}

local function env(name)
  local v = os.getenv(name)
  if v and v ~= "" then return v end
end

function paths.home()
  return env("HOME") or errors.mistake("HOME is not set: kimictl needs a home directory for its files")
end

-- An XDG directory of kimictl's: $VAR/kimictl, else ~/UNDER/kimictl. The environment does not
-- change while kimictl runs (kimictl.lua), so each is worked out once.
local function xdg_dir(var, under)
  local known
  return function()
    known = known or ((env(var) or (paths.home() .. under)) .. "/kimictl")
    return known
  end
end

-- $XDG_CONFIG_HOME/kimictl, else ~/.config/kimictl: profiles and kimictl's own logins.
paths.config_dir = xdg_dir("XDG_CONFIG_HOME", "/.config")

-- $XDG_STATE_HOME/kimictl, else ~/.local/state/kimictl: what kimictl remembers between runs.
paths.state_dir = xdg_dir("XDG_STATE_HOME", "/.local/state")

-- $XDG_DATA_HOME/kimictl, else ~/.local/share/kimictl: the user's own records (sessions).
paths.data_dir = xdg_dir("XDG_DATA_HOME", "/.local/share")

-- $XDG_CACHE_HOME/kimictl, else ~/.cache/kimictl: what may be thrown away (model lists).
paths.cache_dir = xdg_dir("XDG_CACHE_HOME", "/.cache")

-- A name that becomes part of a path (profile, provider): letters, digits, '-' and '_',
-- 1 to 64 of them, so that "../x", "a/b" or "" can never name a file elsewhere.
-- paths.check_name(what, s) -> s | nil, message
function paths.check_name(what, s)
  if type(s) == "string" and #s <= 64 and s:match("^[%w_-]+$") then return s end
  return nil, ("bad %s name %s: use 1 to 64 letters, digits, '-' or '_'"):format(what,
    type(s) == "string" and ("'" .. s .. "'") or ("(a " .. type(s) .. ")"))
end

-- paths.run_file(path, what) -> what the Lua file returns. A file that does not load or
-- fails is a mistake of the user's, reported with the file (as ~/...) and the line.
function paths.run_file(path, what)
  local function shown(msg) return (tostring(msg):gsub(path:gsub("%p", "%%%0"), (paths.show(path):gsub("%%", "%%%%")))) end
  local chunk, err = loadfile(path, "t")
  if not chunk then errors.mistake(("your %s does not load: %s"):format(what, shown(err))) end
  local ok, result = xpcall(chunk, core.log.level() == "debug" and debug.traceback or tostring)
  if not ok then errors.mistake(("your %s failed: %s"):format(what, shown(result))) end
  return result
end

function paths.dirname(p)
  return p:match("^(.*)/[^/]*$") or "."
end

-- paths.read_parsed(path, parse) -> what parse(text | nil, err, code) returns, kept while the
-- file stays as it was (core.fs.version: a replaced, written or chmod-ed file is read
-- again), so that a gateway reads a credential file once per change, not once per request.
-- The results are shared: callers must not change them.
local parsed = {}
function paths.read_parsed(path, parse)
  local version = core.fs.version(path)
  local hit = parsed[path]
  if hit and hit.version == version then return table.unpack(hit, 1, hit.n) end
  hit = table.pack(parse(core.fs.read(path)))
  hit.version = version
  parsed[path] = hit
  return table.unpack(hit, 1, hit.n)
end

-- A path for people: the home directory shown as ~.
function paths.show(p)
  local home = env("HOME")
  if home and p:sub(1, #home + 1) == home .. "/" then return "~" .. p:sub(#home + 1) end
  return p
end

return paths
