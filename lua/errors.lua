-- What to do about a failed request, by core.http's kind of failure (shared by every command).
local errors = {}

local NETWORK = {
  dns = "Check the host name, your network and DNS (static kimictl reads /etc/hosts and /etc/resolv.conf).",
  tls = "Check SSL_CERT_FILE if you set it, the system clock, and any proxy that intercepts TLS.",
  connect = "Check your network, firewall or proxy settings (https_proxy).",
  proxy = "Check https_proxy / http_proxy / no_proxy.",
  timeout = "The network or the service is slow: try again; check your proxy.",
  reset = "The connection broke: try again.",
  http = "The service had a passing problem: try again in a minute.",
}

-- errors.hint(kind) -> what to do, or nil for a kind that has no general advice
function errors.hint(kind)
  return NETWORK[kind]
end

-- A mistake in the user's own files (config.lua, user.lua): raised as an object so the
-- command line can print it as it is, without the hint to look for a traceback.
local Mistake = { __tostring = function(e) return e.message end }

function errors.mistake(message)
  error(setmetatable({ message = message }, Mistake), 0)
end

function errors.is_mistake(e)
  return getmetatable(e) == Mistake
end

return errors
