-- kimictl lua FILE [ARGS]: run a Lua script with kimictl's modules (used by the Lua tests).
local cli = require "cli"

return {
  summary = "Run a Lua script with kimictl's modules and the core library available.",
  usage = "kimictl lua FILE [ARGS...]",
  max_args = math.huge,
  options = {},
  details = "The script gets ARGS as ... and may return an exit code.",
  run = function(_, args)
    local file = args[1]
    if not file then return cli.usage_error({ name = "lua", usage = "kimictl lua FILE [ARGS...]" }, "no FILE given") end
    local chunk, err = loadfile(file, "t")
    if not chunk then return cli.fail(err) end
    local code = chunk(table.unpack(args, 2))
    return math.type(code) == "integer" and code or 0
  end,
}
