-- kimictl usage: the plan's quota windows from /usages, as bars with their reset times.
local cli = require "cli"
local client = require "client"
local core = require "core"
local provider = require "provider"
local ui = require "ui"

local spec = {
  summary = "Show how much of your plan's quota is used, per window, and when each resets.",
  usage = "kimictl usage [--provider NAME] [--profile NAME] [--json]",
  options = {
    cli.opt.provider("kimi"),
    cli.opt.profile,
    cli.opt.json,
  },
}

-- "2026-11-25T10:00:00Z" (or with an offset, or fractions) -> Unix seconds, independent of TZ.
local function parse_time(v)
  if math.type(v) then return v > 1e12 and v / 1000 or v end
  if type(v) ~= "string" then return nil end
  local y, mo, d, h, mi, s, rest = v:match("^(%d+)-(%d+)-(%d+)[T ](%d+):(%d+):(%d+)%.?%d*(.*)$")
  if not y then return tonumber(v) end
  y, mo = tonumber(y), tonumber(mo)
  if mo <= 2 then y, mo = y - 1, mo + 12 end   -- days from civil, March-based year
  local days = 365 * y + y // 4 - y // 100 + y // 400 + (153 * (mo - 3) + 2) // 5 + tonumber(d) - 719469
  local t = days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s)
  local sign, oh, om = rest:match("^([+-])(%d%d):?(%d%d)$")
  if sign then t = t - (sign == "+" and 1 or -1) * (tonumber(oh) * 3600 + tonumber(om) * 60) end
  return t
end

local UNIT = { MINUTE = 60, HOUR = 3600, DAY = 86400, TIME_UNIT_MINUTE = 60, TIME_UNIT_HOUR = 3600, TIME_UNIT_DAY = 86400 }

local function first(t, ...)
  for _, k in ipairs({ ... }) do
    if t[k] ~= nil and t[k] ~= core.json.null then return t[k] end
  end
  return nil
end

-- One quota window in a common shape: name, used, limit, resets_at.
local function window(item, win)
  local limit = tonumber(first(item, "limit"))
  local used = tonumber(first(item, "used"))
  local remaining = tonumber(first(item, "remaining"))
  if not used and limit and remaining then used = limit - remaining end
  local resets_at = parse_time(first(item, "reset_at", "resetAt", "reset_time", "resetTime"))
  local reset_in = tonumber(first(item, "reset_in", "resetIn", "ttl"))
  if not resets_at and reset_in then resets_at = core.proc.now() + reset_in end
  local name = first(item, "name", "title")
  if not name and type(win) == "table" and tonumber(win.duration) then
    local secs = tonumber(win.duration) * (UNIT[tostring(win.timeUnit)] or 60)
    name = ui.duration(secs) .. " window"
  end
  return { name = tostring(name or "quota"), used = used, limit = limit,
           resets_at = resets_at and math.floor(resets_at) }
end

local function windows(doc)
  local out = {}
  if type(doc.usage) == "table" then out[#out + 1] = window(doc.usage) end
  for _, l in ipairs(type(doc.limits) == "table" and doc.limits or {}) do
    if type(l) == "table" then out[#out + 1] = window(type(l.detail) == "table" and l.detail or l, l.window) end
  end
  return out
end

local function bar(used, limit)
  if not used or not limit or limit <= 0 then return "" end
  local frac = math.max(0, math.min(1, used / limit))
  local n = math.floor(frac * 20 + 0.5)
  return ("[%s%s] %3d%% used (%s of %s)"):format(("#"):rep(n), ("."):rep(20 - n), math.floor(frac * 100 + 0.5),
    math.tointeger(used) or used, math.tointeger(limit) or limit)
end

function spec.run(opts)
  local p, err = provider.load(opts.provider or "kimi")
  if not p then return cli.fail(err) end
  local res, rerr, _, hint = client.request(p, { path = "/usages", timeout_ms = 30000 }, { profile = opts.profile })
  if not res then return cli.fail(rerr, hint) end
  if res.status == 404 then
    return cli.fail(("%s has no quota endpoint (/usages answered HTTP 404)"):format(p.name), "Quota is shown for Kimi Code logins; other providers show it on their website.")
  end
  if res.status ~= 200 then return cli.fail(provider.explain(p, res)) end
  local doc = core.json.decode(res.body)
  if type(doc) ~= "table" then return cli.fail("the /usages answer is not JSON") end
  local list = windows(doc)
  if opts.json then
    io.stdout:write(core.json.encode({ windows = core.json.array(list) }) .. "\n")
    return cli.EXIT_OK
  end
  if #list == 0 then io.stdout:write("The service reported no quota windows.\n") end
  for _, w in ipairs(list) do
    io.stdout:write(("%-16s %s%s\n"):format(w.name, bar(w.used, w.limit),
      w.resets_at and ("  resets " .. ui.relative(w.resets_at)) or ""))
  end
  return cli.EXIT_OK
end

return spec
