-- kimictl sessions: the saved conversations of kimictl chat: list, show one, remove one.
local cli = require "cli"
local core = require "core"
local paths = require "paths"
local session = require "chat.session"
local ui = require "ui"

local spec = {
  summary = "List, show or remove the conversations kimictl chat has saved.",
  usage = "kimictl sessions [list | show ID | rm ID] [--json]",
  max_args = 2,
  verbs = { "list", "show", "rm" },
  options = { cli.opt.json },
  details = [[Sessions are JSON lines files in $XDG_DATA_HOME/kimictl/sessions/ (else
~/.local/share/kimictl/sessions/). Resume one with kimictl chat --session ID, or the latest
with kimictl chat --continue.

Exit status: 0 on success, 1 when the session does not exist or cannot be read, 2 on bad usage.]],
}

local function one_line(s, width)
  s = tostring(s or ""):gsub("%s+", " ")
  return #s > width and (s:sub(1, width - 3) .. "...") or s
end

local function list(opts)
  local all, err = session.list()
  if not all then return cli.fail(err) end
  if opts.json then
    for _, s in ipairs(all) do s.updated_ns = nil end
    io.stdout:write(core.json.encode(core.json.array(all)) .. "\n")
    return cli.EXIT_OK
  end
  if #all == 0 then
    ui.say("No sessions yet: 'kimictl chat -p PROMPT' starts one (" .. paths.show(session.dir()) .. ").")
    return cli.EXIT_OK
  end
  io.stdout:write(("%-36s  %-14s  %5s  %-24s  %s\n"):format("ID", "UPDATED", "MSGS", "MODEL", "FIRST PROMPT"))
  for _, s in ipairs(all) do
    local model = s.provider and (s.provider .. "/" .. (s.model or "?")) or ""
    io.stdout:write(("%-36s  %-14s  %5d  %-24s  %s\n"):format(s.id, ui.relative(s.updated), s.messages,
      one_line(model, 24), one_line(s.title, 60)))
  end
  return cli.EXIT_OK
end

local function text_of(content)
  if type(content) ~= "table" then return tostring(content or "") end
  local parts = {}
  for _, p in ipairs(content) do if type(p) == "table" and p.text then parts[#parts + 1] = p.text end end
  return table.concat(parts, "\n")
end

local function show(opts, id)
  local s, err = session.load(id)
  if not s then return cli.fail(err, "'kimictl sessions' lists them.") end
  if opts.json then
    io.stdout:write(core.json.encode({ id = s.id, provider = s.provider, model = s.model, system = s.system,
      created = s.created, path = s.path, messages = core.json.array(s.messages) }) .. "\n")
    return cli.EXIT_OK
  end
  local function say(who, text) io.stdout:write(cli.style("bold", who, 1) .. " " .. text .. "\n") end
  io.stdout:write(("session %s (%s/%s), %s\n\n"):format(s.id, s.provider or "?", s.model or "?", paths.show(s.path)))
  if s.system then say("system:", s.system) end
  for _, m in ipairs(s.messages) do
    if m.role == "tool" then
      say("  <- tool:", one_line(m.content, 200))
    else
      if m.content ~= nil and text_of(m.content) ~= "" then say(m.role .. ":", text_of(m.content)) end
      for _, c in ipairs(type(m.tool_calls) == "table" and m.tool_calls or {}) do
        local f = c["function"] or {}
        say("  -> " .. tostring(f.name) .. ":", one_line(f.arguments, 200))
      end
    end
  end
  return cli.EXIT_OK
end

function spec.run(opts, args)
  local verb, id = args[1] or "list", args[2]
  if verb == "list" and not id then return list(opts) end
  if (verb == "show" or verb == "rm") and id then
    if verb == "show" then return show(opts, id) end
    local ok, err = session.remove(id)
    if not ok then return cli.fail(err, "'kimictl sessions' lists them.") end
    ui.say("Removed session " .. id .. ".")
    return cli.EXIT_OK
  end
  if verb == "show" or verb == "rm" then return cli.usage_error(spec, ("'sessions %s' needs a session ID"):format(verb)) end
  return cli.usage_error(spec, ("unknown sessions command '%s'"):format(table.concat(args, " ")))
end

return spec
