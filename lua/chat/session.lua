-- Conversations, saved as they go: one JSON line per record in
-- $XDG_DATA_HOME/kimictl/sessions/<id>.jsonl (0600 in a 0700 directory). Records are only
-- ever appended, each by one write, so a crash or a kill mid-answer leaves at most a torn
-- last line, which loading skips; everything before it loads as it was.
--   {"type":"session","version":1,"id":ID,"created":T,"cwd":DIR}   the first line
--   {"type":"message","message":{...OpenAI chat message...},"time":T}
--   {"type":"system","content":TEXT}        the system prompt from here on ("" for none)
--   {"type":"model","provider":P,"model":M} the model from here on
--   {"type":"clear"}                        the conversation starts again (/clear)
local core = require "core"
local paths = require "paths"

local session = {}
local Session = {}
Session.__index = Session

function session.dir()
  return paths.data_dir() .. "/sessions"
end

local function path_of(id)
  return session.dir() .. "/" .. id .. ".jsonl"
end

-- session.check_id(id) -> id | nil, message: 1 to 64 letters, digits, '-' or '_'.
function session.check_id(id)
  return paths.check_name("session", id)
end

-- A new id: a random UUID (version 4), as other tools name their sessions.
function session.new_id()
  local h = assert(core.proc.random_hex(16))
  local b7 = (tonumber(h:sub(13, 14), 16) & 0x0f) | 0x40
  local b9 = (tonumber(h:sub(17, 18), 16) & 0x3f) | 0x80
  h = h:sub(1, 12) .. ("%02x"):format(b7) .. h:sub(15, 16) .. ("%02x"):format(b9) .. h:sub(19)
  return ("%s-%s-%s-%s-%s"):format(h:sub(1, 8), h:sub(9, 12), h:sub(13, 16), h:sub(17, 20), h:sub(21))
end

-- The records of a file's text: every line that is a JSON object; a torn last line (a
-- crash mid-write) is dropped quietly, any other bad line is counted in skipped.
local function parse(text)
  local records, skipped, n = {}, 0, 0
  for line, nl in text:gmatch("([^\n]*)(\n?)") do
    if line ~= "" then
      n = n + 1
      local doc = core.json.decode(line)
      if type(doc) == "table" and type(doc.type) == "string" then records[#records + 1] = doc
      elseif nl == "\n" then skipped = skipped + 1 end
    end
    if nl == "" then break end
  end
  return records, skipped
end

-- The state records leave behind: messages since the last clear, system prompt, model.
local function replay(s, records)
  for _, r in ipairs(records) do
    if r.type == "session" then
      s.created = math.tointeger(r.created) or s.created
      s.cwd = type(r.cwd) == "string" and r.cwd or s.cwd
    elseif r.type == "message" and type(r.message) == "table" then
      s.messages[#s.messages + 1] = r.message
    elseif r.type == "system" then
      s.system = type(r.content) == "string" and r.content ~= "" and r.content or nil
    elseif r.type == "model" then
      s.provider = type(r.provider) == "string" and r.provider or nil
      s.model = type(r.model) == "string" and r.model or nil
    elseif r.type == "clear" then
      s.messages = {}
    end
  end
end

-- session.load(id) -> session | nil, message, code ("ENOENT" when there is no such session)
function session.load(id)
  local ok, why = session.check_id(id)
  if not ok then return nil, why, "EINVAL" end
  local path = path_of(id)
  local text, err, code = core.fs.read(path)
  if not text then
    if code == "ENOENT" then return nil, ("no session '%s'"):format(id), code end
    return nil, ("cannot read session '%s': %s"):format(id, err), code
  end
  local s = setmetatable({ id = id, path = path, messages = {}, torn = text ~= "" and text:sub(-1) ~= "\n" }, Session)
  local records, skipped = parse(text)
  replay(s, records)
  if skipped > 0 then
    core.log.warn(("session %s: %d damaged line%s skipped"):format(id, skipped, skipped == 1 and "" or "s"))
  end
  return s
end

-- session.create(id) -> a new session (nothing is written until its first record)
function session.create(id)
  id = id or session.new_id()
  return setmetatable({ id = id, path = path_of(id), messages = {}, fresh = true }, Session)
end

-- session.open(id) -> the session id names, created when there is none | nil, message
function session.open(id)
  local s, err, code = session.load(id)
  if s then return s end
  if code ~= "ENOENT" then return nil, err end
  return session.create(id)
end

-- A record that could not be written: the conversation goes on, and the user is told once.
function Session:unsaved(why)
  if not self.warned then
    self.warned = true
    core.log.warn(why .. " (the conversation goes on without being saved)")
  end
  return nil, why
end

-- Append one record. The first also writes the header line (and the directory).
function Session:append(record)
  local lines = {}
  if self.fresh then
    local ok, err = core.fs.mkdir(session.dir(), "0700")
    if not ok then return self:unsaved("cannot create the sessions directory: " .. err) end
    self.created = math.floor(core.proc.now())
    lines[1] = core.json.encode({ type = "session", version = 1, id = self.id, created = self.created,
                                  cwd = os.getenv("PWD") })
  elseif self.torn then   -- a crash left a torn line: end it, or the next record would join it
    lines[1] = ""
  end
  lines[#lines + 1] = core.json.encode(record)
  local ok, err = core.fs.append(self.path, table.concat(lines, "\n") .. "\n", "0600")
  if not ok then return self:unsaved(("cannot save session %s: %s"):format(self.id, err)) end
  self.fresh, self.torn = false, false
  return true
end

-- s:add(message): the message joins the conversation and the file.
function Session:add(message)
  self.messages[#self.messages + 1] = message
  return self:append({ type = "message", message = message, time = math.floor(core.proc.now()) })
end

function Session:set_system(text)
  if (text or nil) == self.system then return true end
  self.system = text ~= "" and text or nil
  return self:append({ type = "system", content = text or "" })
end

function Session:set_model(provider_name, model)
  if provider_name == self.provider and model == self.model then return true end
  self.provider, self.model = provider_name, model
  return self:append({ type = "model", provider = provider_name, model = model })
end

function Session:clear()
  self.messages = {}
  if self.fresh then return true end
  return self:append({ type = "clear" })
end

-- The first user text of a list of messages, on one line, for listings.
local function title_of(messages)
  for _, m in ipairs(messages) do
    if m.role == "user" then
      local text = m.content
      if type(text) == "table" then
        local parts = {}
        for _, part in ipairs(text) do if type(part) == "table" and type(part.text) == "string" then parts[#parts + 1] = part.text end end
        text = table.concat(parts, " ")
      end
      if type(text) == "string" then return (text:gsub("%s+", " "):gsub("^ ", "")) end
    end
  end
  return ""
end

-- The ids of the session files, each with its modification time in ns.
local function files()
  local names, err, code = core.fs.list(session.dir())
  if not names then
    if code == "ENOENT" then return {} end
    return nil, "cannot list the sessions: " .. err
  end
  local out = {}
  for _, name in ipairs(names) do
    local id = name:match("^(.+)%.jsonl$")
    local st = id and session.check_id(id) and core.fs.stat(path_of(id))
    if st and st.type == "file" then out[#out + 1] = { id = id, st = st } end
  end
  return out
end

-- session.latest() -> the id of the session written last, or nil (only the files' times read)
function session.latest()
  local best
  for _, f in ipairs(files() or {}) do
    if not best or f.st.mtime_ns > best.st.mtime_ns or (f.st.mtime_ns == best.st.mtime_ns and f.id < best.id) then best = f end
  end
  return best and best.id
end

-- session.list() -> { { id, updated, messages, title, model, provider, created } }, newest first
function session.list()
  local found, err = files()
  if not found then return nil, err end
  local out = {}
  for _, f in ipairs(found) do
    local s = session.load(f.id)
    if s then
      out[#out + 1] = { id = f.id, updated = f.st.mtime, updated_ns = f.st.mtime_ns, created = s.created,
                        messages = #s.messages, title = title_of(s.messages), provider = s.provider, model = s.model,
                        path = s.path }
    end
  end
  table.sort(out, function(a, b)
    if a.updated_ns ~= b.updated_ns then return a.updated_ns > b.updated_ns end
    return a.id < b.id
  end)
  return out
end

-- session.remove(id) -> true | nil, message
function session.remove(id)
  local ok, why = session.check_id(id)
  if not ok then return nil, why end
  local done, err, code = core.fs.remove(path_of(id))
  if not done then
    if code == "ENOENT" then return nil, ("no session '%s'"):format(id) end
    return nil, err
  end
  return true
end

return session
