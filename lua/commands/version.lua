-- kimictl version: print the version.
local core = require "core"

return {
  summary = "Print kimictl's version.",
  usage = "kimictl version",
  options = { { "-h", "--help", help = "show this help" } },
  run = function()
    io.stdout:write("kimictl " .. core.version .. "\n")
  end,
}
