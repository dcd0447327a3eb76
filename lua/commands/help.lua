-- kimictl help [command]: the top help, or one command's.
local cli = require "cli"

return {
  summary = "Show help for kimictl or for one command.",
  usage = "kimictl help [command]",
  max_args = 1,
  options = {},
  run = function(_, args, ctx)
    local name = args[1]
    if not name then
      io.stdout:write(ctx.top_help())
      return cli.EXIT_OK
    end
    for _, c in ipairs(ctx.commands) do
      if c[1] == name then
        io.stdout:write(cli.help(ctx.load(name)))
        return cli.EXIT_OK
      end
    end
    return cli.usage_error({ name = "help", usage = "kimictl help [command]" },
      ("unknown command '%s'"):format(name))
  end,
}
