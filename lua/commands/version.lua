-- kimictl version: print the version.
local core = require "core"

return {
  summary = "Print kimictl's version.",
  usage = "kimictl version",
  options = {},
  run = function()
    io.stdout:write("kimictl " .. core.version .. "\n")
  end,
}
