-- Where kimictl keeps things: XDG directories, and paths shown with ~ for reading.
local paths = {}

local function env(name)
  local v = os.getenv(name)
  if v and v ~= "" then return v end
end

function paths.home()
  return env("HOME") or error("HOME is not set: kimictl needs a home directory for its files", 0)
end

-- $XDG_CONFIG_HOME/kimictl, else ~/.config/kimictl: profiles and kimictl's own logins.
function paths.config_dir()
  return (env("XDG_CONFIG_HOME") or (paths.home() .. "/.config")) .. "/kimictl"
end

-- $XDG_STATE_HOME/kimictl, else ~/.local/state/kimictl: what kimictl remembers between runs.
function paths.state_dir()
  return (env("XDG_STATE_HOME") or (paths.home() .. "/.local/state")) .. "/kimictl"
end

function paths.dirname(p)
  return p:match("^(.*)/[^/]*$") or "."
end

-- A path for people: the home directory shown as ~.
function paths.show(p)
  local home = env("HOME")
  if home and p:sub(1, #home + 1) == home .. "/" then return "~" .. p:sub(#home + 1) end
  return p
end

return paths
