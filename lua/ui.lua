-- Small pieces of output shared by commands: durations in words, progress on a terminal.
local core = require "core"

local ui = {}

-- ui.duration(seconds) -> "12 minutes", "3 hours", "2 days", "40 seconds"
function ui.duration(s)
  s = math.abs(s)
  local function plural(n, unit) return ("%.0f %s%s"):format(n, unit, n == 1 and "" or "s") end
  if s < 90 then return plural(math.floor(s + 0.5), "second") end
  if s < 90 * 60 then return plural(math.floor(s / 60 + 0.5), "minute") end
  if s < 36 * 3600 then return plural(math.floor(s / 3600 + 0.5), "hour") end
  return plural(math.floor(s / 86400 + 0.5), "day")
end

-- ui.relative(t) -> "in 12 minutes" or "3 hours ago", from now
function ui.relative(t)
  local d = t - core.proc.now()
  return d >= 0 and ("in " .. ui.duration(d)) or (ui.duration(d) .. " ago")
end

-- Progress for people: written to stderr only when it is a terminal.
function ui.progress(text)
  if core.proc.isatty(2) then
    io.stderr:write(text)
    io.stderr:flush()
  end
end

function ui.say(text)
  io.stderr:write(text .. "\n")
end

return ui
