-- Built-in tool: a shell command, run only with --allow-shell or after the user says yes on
-- a terminal. It runs in its own process group through the event loop, with a time limit
-- (then the group is killed) and a limit on the output kept; stderr is merged into stdout.
local core = require "core"

local DEFAULT_S, MAX_S, MAX_OUTPUT = 120, 600, 64 * 1024

return {
  name = "shell",
  description = "Run a command with /bin/sh in the working directory and return its output " ..
    "(stdout and stderr) and exit status.",
  parameters = {
    type = "object",
    properties = {
      command = { type = "string", description = "the command line" },
      timeout_s = { type = "integer", description = ("seconds before the command is killed (default %d, at most %d)"):format(DEFAULT_S, MAX_S) },
    },
    required = { "command" },
  },
  run = function(args, ctx)
    if type(args.command) ~= "string" or args.command == "" then return nil, "command must be a non-empty string" end
    if not (ctx and ctx.allow and ctx.allow("shell", args.command)) then
      return nil, "the user did not allow this command (kimictl chat --allow-shell allows commands)"
    end
    local timeout = math.min(MAX_S, math.max(1, math.tointeger(args.timeout_s) or DEFAULT_S))
    local res, err = core.proc.spawn_detached { argv = { "/bin/sh", "-c", args.command }, timeout_ms = timeout * 1000,
                                                stderr = "stdout", max_output = MAX_OUTPUT, kill = true }
    if not res then return nil, err end
    local out = res.output
    if res.dropped then out = out .. ("\n[... %d more bytes of output not kept]"):format(res.dropped) end
    local status = res.signal and ("killed by signal " .. res.signal) or ("exit status " .. res.status)
    return (out ~= "" and (out:sub(-1) == "\n" and out or out .. "\n") or "") .. "[" .. status .. "]"
  end,
}
