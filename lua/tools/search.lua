-- Built-in tool: lines containing a piece of text, in a file or in every text file under a
-- directory (hidden files and directories are skipped).
local core = require "core"

local MAX_MATCHES, MAX_FILES, MAX_BYTES, MAX_DEPTH = 200, 20000, 2 * 1024 * 1024, 32

return {
  name = "search",
  description = "Search text files for lines containing a string (not a regular expression). " ..
    "Returns path:line: text for each match.",
  parameters = {
    type = "object",
    properties = {
      text = { type = "string", description = "the text to look for" },
      path = { type = "string", description = "a file or a directory searched recursively (default: the working directory)" },
      ignore_case = { type = "boolean", description = "match regardless of case" },
    },
    required = { "text" },
  },
  run = function(args)
    if type(args.text) ~= "string" or args.text == "" then return nil, "text must be a non-empty string" end
    local root = type(args.path) == "string" and args.path ~= "" and args.path or "."
    local fold = args.ignore_case == true
    local needle = fold and args.text:lower() or args.text
    local out, files = {}, 0
    local function scan(path)
      files = files + 1
      local text = core.fs.read(path)
      if not text or text:sub(1, 8192):find("\0", 1, true) then return end
      local n = 0
      for line in text:gmatch("([^\n]*)\n?") do
        n = n + 1
        if (fold and line:lower() or line):find(needle, 1, true) then
          out[#out + 1] = ("%s:%d: %s"):format(path, n, #line > 300 and (line:sub(1, 300) .. "...") or line)
          if #out >= MAX_MATCHES then return end
        end
      end
    end
    local function walk(path, depth)
      local st = core.fs.stat(path)
      if not st then return end
      if st.type == "file" then
        if st.size <= MAX_BYTES then scan(path) end
        return
      end
      if st.type ~= "dir" or depth > MAX_DEPTH then return end
      for _, name in ipairs(core.fs.list(path) or {}) do
        if #out >= MAX_MATCHES or files >= MAX_FILES then return end
        if name:sub(1, 1) ~= "." then walk(path == "." and name or (path .. "/" .. name), depth + 1) end
      end
    end
    local st, err = core.fs.stat(root)
    if not st then return nil, err end
    walk(root, 0)
    if #out == 0 then return ("no line contains %q (%d files searched)"):format(args.text, files) end
    if #out >= MAX_MATCHES then out[#out + 1] = ("(stopped at %d matches)"):format(MAX_MATCHES) end
    return table.concat(out, "\n")
  end,
}
