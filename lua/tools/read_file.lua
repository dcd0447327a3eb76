-- Built-in tool: the text of a file, a range of its lines at a time.
local core = require "core"

local MAX_BYTES = 4 * 1024 * 1024

return {
  name = "read_file",
  description = "Read a text file. Returns its lines, numbered; use offset and limit for part of a long file.",
  parameters = {
    type = "object",
    properties = {
      path = { type = "string", description = "the file's path, absolute or relative to the working directory" },
      offset = { type = "integer", description = "the first line to return (1-based, default 1)" },
      limit = { type = "integer", description = "how many lines to return (default 2000)" },
    },
    required = { "path" },
  },
  run = function(args)
    if type(args.path) ~= "string" or args.path == "" then return nil, "path must be a non-empty string" end
    local st, err = core.fs.stat(args.path)
    if not st then return nil, err end
    if st.type == "dir" then return nil, args.path .. " is a directory: use list_dir" end
    if st.type ~= "file" then return nil, args.path .. " is not a regular file" end   -- a FIFO would never end
    if st.size > MAX_BYTES then return nil, ("%s is %d bytes, more than this tool reads (%d)"):format(args.path, st.size, MAX_BYTES) end
    local text, rerr = core.fs.read(args.path)
    if not text then return nil, rerr end
    if text:sub(1, 8192):find("\0", 1, true) then return nil, args.path .. " is not a text file" end
    local first = math.max(1, math.tointeger(args.offset) or 1)
    local limit = math.max(1, math.tointeger(args.limit) or 2000)
    local out, n = {}, 0
    for line in (text:sub(-1) == "\n" and text or text .. "\n"):gmatch("([^\n]*)\n") do
      n = n + 1
      if n >= first and n < first + limit then out[#out + 1] = ("%6d\t%s"):format(n, line) end
    end
    if #out == 0 then return ("(%s has %d lines; none from line %d)"):format(args.path, n, first) end
    if first + limit <= n then out[#out + 1] = ("(%d more lines: read on with offset %d)"):format(n - first - limit + 1, first + limit) end
    return table.concat(out, "\n")
  end,
}
