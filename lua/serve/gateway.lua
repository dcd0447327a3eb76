-- The gateway's requests: who may ask (Host, Origin, key), the OpenAI routes, and one log
-- line each. Each request runs in its own task; upstream calls go through client.request.
local client = require "client"
local config = require "config"
local core = require "core"
local anthropic = require "wire.anthropic"
local openai = require "wire.openai"
local models = require "models"
local provider = require "provider"

local gateway = {}
gateway.shutting_down = false   -- set by serve when its drain time is over and it cuts what is left

local JSON = { ["Content-Type"] = "application/json" }
local SSE = { ["Content-Type"] = "text/event-stream", ["Cache-Control"] = "no-cache" }
local LOOPBACK_HOSTS = { localhost = true, ["127.0.0.1"] = true, ["[::1]"] = true }

local function with(base, extra)
  if not extra then return base end   -- the base tables are never changed
  local h = {}
  for k, v in pairs(base) do h[k] = v end
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

-- An error answer in the dialect of the route (OpenAI's, or Anthropic's for /v1/messages);
-- true (the request is answered). headers: more headers, optional.
local function fail(ctx, status, message, kind, code, headers)
  ctx.status = status
  local doc = ctx.dialect == "anthropic" and anthropic.error_doc(status, message)
    or { error = { message = message, type = kind or "invalid_request_error", code = code } }
  local body = core.json.encode(doc)
  ctx.bytes = #body
  ctx.res:respond(status, with(with(JSON, ctx.cors), headers), body)
  return true
end

-- The first error of an upstream answer (kept status, explained message, the cause as code),
-- with the upstream's Retry-After: the SDKs of OpenAI and Anthropic wait as long as it asks.
local function upstream_error(ctx, p, res)
  local msg, hint, cause = provider.explain(p, res)
  local doc = core.json.decode(res.body or "")
  local kind = type(doc) == "table" and type(doc.error) == "table" and doc.error.type
  local after = res.headers and res.headers["retry-after"]
  fail(ctx, res.status, msg .. (hint and (" " .. hint) or ""), type(kind) == "string" and kind or "upstream_error", cause,
       after and { ["Retry-After"] = after } or nil)
end

-- A failure to reach the upstream at all: 504 for a timeout, 503 for a login that cannot
-- be used, 502 otherwise.
local function transport_error(ctx, err, kind, hint)
  local status = kind == "timeout" and 504 or (kind == "auth" or kind == "refresh") and 503 or 502
  fail(ctx, status, err .. (hint and (" " .. hint) or ""), "upstream_error", kind)
end

local function sse_frame(ev)
  if ev.event ~= "" and ev.event ~= "message" then
    return ("event: %s\ndata: %s\n\n"):format(ev.event, ev.data:gsub("\n", "\ndata: "))
  end
  return "data: " .. ev.data:gsub("\n", "\ndata: ") .. "\n\n"
end

-- Write one upstream event as it came; the common case (one data line) without building
-- the frame as a new string. -> false when the client has gone.
local function relay(ctx, res, ev)
  if (ev.event == "message" or ev.event == "") and not ev.data:find("\n", 1, true) then
    ctx.bytes = ctx.bytes + #ev.data + 8
    return res:write("data: ", ev.data, "\n\n")
  end
  local frame = sse_frame(ev)
  ctx.bytes = ctx.bytes + #frame
  return res:write(frame)
end

local function upstream_id(res)
  local h = res and res.headers or {}
  return h["x-request-id"] or h["msh-request-id"] or h["request-id"]
end

-- One named event of an Anthropic stream.
local function event_frame(name, doc)
  return ("event: %s\ndata: %s\n\n"):format(name, core.json.encode(doc))
end

-- The provider and model a request names -> p, model; nil once a 404 is answered.
local function pick(ctx, id)
  local name, model = config.resolve_model(id, provider.exists)
  local ok, p = pcall(provider.load, name)
  if not ok or not p then
    fail(ctx, 404, ("no provider '%s' for model '%s'"):format(name, id), nil, "model_not_found")
    return nil
  end
  model = model or provider.default_model(p)
  ctx.provider, ctx.model = p.name, model
  return p, model
end

-- A failure inside a stream the client already has: an error event in its dialect.
local function stream_error(ctx, res, message, kind)
  local frame = ctx.dialect == "anthropic"
    and event_frame("error", anthropic.error_doc(502, message))
    or sse_frame({ event = "", data = core.json.encode({ error = { message = message, type = "upstream_error", code = kind } }) })
      .. "data: [DONE]\n\n"
  ctx.bytes = ctx.bytes + #frame
  ctx.note = kind
  res:write(frame)
end

-- One upstream call and its answer to the client: events relayed as they arrive when a
-- stream was asked for, else the whole answer. call: client.request's req (no on_event).
-- tr (a translation, optional): tr.event(ev) -> false to stop, tr.finish(up_failed, message),
-- tr.answer(up) -> status, content type, body of a whole answer.
local function forward(ctx, p, call, stream, tr)
  local started, res = false, ctx.res
  call.on_event = stream and function(ev)
    if not started then
      started, ctx.status, ctx.ttfb, ctx.open_stream = true, 200, core.proc.now() - ctx.t0, true
      if not res:start(200, with(SSE, ctx.cors)) then return false end
    end
    if not (tr and tr.event or relay)(ctx, res, ev) then return false end   -- the client has gone
  end or nil
  local up, err, kind, hint = client.request(p, call, { profile = ctx.profile })
  ctx.upstream_id = upstream_id(up)
  if started then   -- the stream is the client's: a failure is told inside it
    ctx.open_stream = nil
    if res:closed() then   -- not finished yet: the client left mid-stream (logged 200, as sent)
      ctx.note = ctx.note or "client_gone"
    else
      local message = not up and (err .. (hint and (" " .. hint) or ""))
      if tr then tr.finish(ctx, res, message, kind)
      elseif message then stream_error(ctx, res, message, kind) end
    end
    return res:finish()
  end
  if not up then return transport_error(ctx, err, kind, hint) end
  if up.status < 200 or up.status > 299 then return upstream_error(ctx, p, up) end
  local status, ctype, body = up.status, up.headers["content-type"] or "application/json", up.body
  if tr then status, ctype, body = tr.answer(ctx, up, stream) end
  ctx.status, ctx.bytes, ctx.ttfb = status, #body, core.proc.now() - ctx.t0
  res:respond(status, with(ctype == "application/json" and JSON or { ["Content-Type"] = ctype }, ctx.cors), body)
end

-- The request body as a JSON object, or nil once a 400 is answered.
local function json_body(ctx, req)
  local body = core.json.decode(req.body)
  if type(body) ~= "table" or getmetatable(body) == core.json.array_mt then
    fail(ctx, 400, "the request body must be a JSON object")
    return nil
  end
  if type(body.model) ~= "string" or body.model == "" then
    fail(ctx, 400, "model is required")
    return nil
  end
  return body
end

-- The JSON body and the provider its model names, body.model made the provider's own id
-- -> body, p; nil once an error is answered.
local function routed(ctx, req)
  local body = json_body(ctx, req)
  local p, model
  if body then p, model = pick(ctx, body.model) end
  if not p then return nil end
  body.model = model
  return body, p
end

-- The provider's repairs of its answers (p.chat_chunks), for forward(): each chunk decoded,
-- repaired and sent on; what the repair held back goes out before [DONE].
local function chunk_repair(filter)
  local t, seen, finished, ended = {}, {}, false, false
  function t.event(ctx, res, ev)
    if ev.data == "[DONE]" then
      ended = true
      local last = filter(nil)
      if last then   -- named like the chunks before it
        last.id, last.object, last.created, last.model = seen.id, "chat.completion.chunk", seen.created, seen.model
        if not relay(ctx, res, { event = "", data = core.json.encode(last) }) then return false end
      end
      return relay(ctx, res, ev)
    end
    local doc, why = core.json.decode(ev.data)
    if type(doc) ~= "table" then   -- neither the repair nor the client could read it: an error event
      ended = true
      stream_error(ctx, res, ("%s sent a chunk that is not a JSON object (%s)"):format(ctx.provider,
        why or "not an object"), "bad_answer")
      return false
    end
    seen = doc
    local choice = type(doc.choices) == "table" and doc.choices[1]
    finished = finished or (type(choice) == "table" and type(choice.finish_reason) == "string")
    return relay(ctx, res, { event = ev.event, data = core.json.encode(filter(doc)) })
  end
  -- An answer that has its finish_reason is complete, whether its stream then closed without
  -- [DONE] or went silent until the idle timeout: the client gets the end it would have had.
  function t.finish(ctx, res, message, kind)
    if finished and not ended and (not message or kind == "timeout" or kind == "reset") then
      if message then ctx.note = kind end   -- the log still tells
      return t.event(ctx, res, { event = "", data = "[DONE]" })
    end
    if message then stream_error(ctx, res, message, kind) end
  end
  function t.answer(ctx, up)
    local doc, why = core.json.decode(up.body)
    if type(doc) ~= "table" then
      ctx.note = "bad_answer"
      return 502, "application/json", core.json.encode({ error = { type = "upstream_error", code = "bad_answer",
        message = ("%s answered %d with a body that is not a JSON object (%s)"):format(ctx.provider, up.status,
          why or "not an object") } })
    end
    return up.status, "application/json", core.json.encode(filter(doc))
  end
  return t
end

-- The translation of a Messages upstream's answer into chat completions, for forward():
-- each event becomes chunks (through the provider's repairs, filter), message_stop [DONE].
local function chat_translation(filter, include_usage)
  local t, tr = {}, nil
  local function to(ctx, res)
    return anthropic.chat_stream(function(doc)
      return relay(ctx, res, { event = "", data = core.json.encode(filter and filter(doc) or doc) })
    end, include_usage)
  end
  function t.event(ctx, res, ev)
    tr = tr or to(ctx, res)
    local doc = core.json.decode(ev.data)
    if tr:event(ev.event, doc) == false then return false end
    if not tr.done then return true end
    local last = filter and filter(nil)
    if last and not relay(ctx, res, { event = "", data = core.json.encode(last) }) then return false end
    return relay(ctx, res, { event = "", data = "[DONE]" })
  end
  function t.finish(ctx, res, message, kind)
    tr = tr or to(ctx, res)
    if tr.error then stream_error(ctx, res, ctx.provider .. " reported an error mid-stream: " .. tr.error, "stream")
    elseif message then stream_error(ctx, res, message, kind)
    elseif not tr.done then stream_error(ctx, res, ctx.provider .. "'s stream ended before message_stop", "stream") end
  end
  function t.answer(ctx, up, stream)
    local msg = core.json.decode(up.body)
    if type(msg) ~= "table" then
      ctx.note = "bad_answer"
      return 502, "application/json", core.json.encode({ error = { type = "upstream_error", code = "bad_answer",
        message = ("%s answered %d with a body that is not a JSON message"):format(ctx.provider, up.status) } })
    end
    local doc = anthropic.to_chat(msg)
    if filter then doc = filter(doc) end
    if not stream then return 200, "application/json", core.json.encode(doc) end
    -- a whole answer where a stream was asked for: told as a stream of one chunk
    local chunk = anthropic.as_chunk(doc)
    chunk.object, chunk.created, chunk.model = "chat.completion.chunk", doc.created, doc.model
    return 200, "text/event-stream", "data: " .. core.json.encode(chunk) .. "\n\ndata: [DONE]\n\n"
  end
  return t
end

-- The headers of a request to a provider's Messages endpoint.
local function messages_headers(h, stream)
  return { ["anthropic-version"] = h["anthropic-version"] or anthropic.VERSION, ["anthropic-beta"] = h["anthropic-beta"],
           Accept = stream and "text/event-stream" or nil }
end

-- POST /v1/chat/completions: the body through the provider's mapping to its upstream, and
-- the answer back, streamed as it arrives when the client asked for a stream. A provider
-- that speaks only Messages (api = "anthropic") gets it translated, its answer translated back.
local function chat_completions(ctx, req)
  local body, p = routed(ctx, req)
  if not body then return true end
  openai.prepare(p, body)
  local stream = body.stream == true
  local filter = p.chat_chunks and p.chat_chunks(p)
  if p.api == "anthropic" then
    local msg, why = anthropic.from_chat(body, p.max_tokens)
    if not msg then return fail(ctx, 400, why) end
    local usage = type(body.stream_options) == "table" and body.stream_options.include_usage == true
    return forward(ctx, p, { path = p.messages_path, body = msg, headers = messages_headers(req.headers, stream) },
                   stream, chat_translation(filter, usage))
  end
  return forward(ctx, p, { path = "/chat/completions", body = body,
                           headers = stream and { Accept = "text/event-stream" } or nil }, stream,
                 filter and chunk_repair(filter))
end

-- The translation of an OpenAI upstream's answer into Anthropic's Messages, for forward().
local function messages_translation(model, filter)
  local t, tr, done = {}, nil, false
  local function emit_to(ctx, res)
    return function(name, doc)
      local frame = event_frame(name, doc)
      ctx.bytes = ctx.bytes + #frame
      return res:write(frame)
    end
  end
  function t.event(ctx, res, ev)
    tr = tr or anthropic.stream(model, emit_to(ctx, res))
    if ev.data == "[DONE]" then
      local last = filter and filter(nil)
      if last then tr:chunk(last) end
      done = true
      return tr:finish()
    end
    local doc, why = core.json.decode(ev.data)
    if doc == nil then   -- a chunk lost would be a gap in the answer: an error event instead
      tr:fail(502, ("%s sent a chunk that is not JSON (%s)"):format(ctx.provider, why))
      return false
    end
    return tr:chunk(filter and type(doc) == "table" and filter(doc) or doc)
  end
  function t.finish(ctx, res, message, kind)
    tr = tr or anthropic.stream(model, emit_to(ctx, res))
    if tr.failed then ctx.note = "stream"   -- the upstream's error event is out already
    elseif message then ctx.note = kind; tr:fail(502, message)
    elseif not done and tr.stop then tr:finish()   -- a finish_reason but no [DONE]: complete enough
    elseif not done then
      ctx.note = "stream"
      tr:fail(502, ctx.provider .. "'s stream ended before the answer was complete (no finish_reason, no [DONE])")
    end
  end
  function t.answer(ctx, up, stream)
    local doc = core.json.decode(up.body)
    if type(doc) ~= "table" then
      ctx.note = "bad_answer"
      return 502, "application/json", core.json.encode(anthropic.error_doc(502,
        ("%s answered %d with a body that is not a JSON chat completion"):format(ctx.provider, up.status)))
    end
    if filter then doc = filter(doc) end
    local msg = anthropic.from_openai(doc, model)
    if not stream then return 200, "application/json", core.json.encode(msg) end
    -- a whole answer where a stream was asked for: told as a stream all the same
    local frames = {}
    local s = anthropic.stream(model, function(name, doc)
      frames[#frames + 1] = event_frame(name, doc)
    end)
    s:chunk(anthropic.as_chunk(doc))
    s:finish()
    return 200, "text/event-stream", table.concat(frames)
  end
  return t
end

-- POST /v1/messages: Anthropic's Messages API. A provider that speaks it (messages_path)
-- gets the request as it came, with fresh auth; any other gets it translated to chat
-- completions, and its answer translated back.
local function messages(ctx, req)
  local body, p = routed(ctx, req)
  if not body then return true end
  local model, stream = body.model, body.stream == true
  if p.messages_path then
    if p.messages_request then p.messages_request(p, body) end
    return forward(ctx, p, { path = p.messages_path, body = body, headers = messages_headers(req.headers, stream) },
                   stream)
  end
  local chat, why = anthropic.to_openai(body)
  if not chat then return fail(ctx, 400, why) end
  openai.prepare(p, chat)
  return forward(ctx, p, { path = "/chat/completions", body = chat,
                           headers = stream and { Accept = "text/event-stream" } or nil },
                 stream, messages_translation(model, p.chat_chunks and p.chat_chunks(p)))
end

-- POST /v1/messages/count_tokens: an estimate (about four bytes a token); no upstream call.
local function count_tokens(ctx, req)
  local body = json_body(ctx, req)
  if not body then return true end
  local out = core.json.encode({ input_tokens = anthropic.count_tokens(body) })
  ctx.status, ctx.bytes = 200, #out
  ctx.res:respond(200, with(JSON, ctx.cors), out)
end

-- GET /v1/models: provider/model ids of every configured provider, and the default's bare
-- ids; in Anthropic's list shape when the client sent anthropic-version.
local function list_models(ctx, req)
  local data, default = {}, config.default_provider()
  local as_anthropic = req.headers["anthropic-version"] ~= nil
  local function add(id, m, owner)
    data[#data + 1] = as_anthropic
      and { type = "model", id = id, display_name = m.display_name or id,
            created_at = m.created_at or os.date("!%Y-%m-%dT%H:%M:%SZ", m.created or 0) }
      or { id = id, object = "model", created = m.created or 0, owned_by = owner }
  end
  for _, name in ipairs(models.configured()) do
    local p = provider.load(name)
    local found, why = models.of(p, ctx.profile)
    if not found then core.log.warn(("models of %s: %s"):format(name, why)) end
    for _, m in ipairs(found or {}) do add(name .. "/" .. m.id, m, name) end
    if name == default then
      for _, m in ipairs(found or {}) do add(m.id, m, name) end
    end
  end
  local list = setmetatable(data, core.json.array_mt)
  local body = core.json.encode(as_anthropic
    and { data = list, has_more = false, first_id = data[1] and data[1].id or core.json.null,
          last_id = data[#data] and data[#data].id or core.json.null }
    or { object = "list", data = list })
  ctx.status, ctx.bytes = 200, #body
  ctx.res:respond(200, with(JSON, ctx.cors), body)
end

-- GET /healthz: is the default provider's login usable? Its /models answers that.
local function health(ctx)
  local name = config.default_provider()
  local ok, p = pcall(provider.load, name)
  local found, why
  if not ok or not p then why = ("the default provider '%s' does not exist"):format(name)
  else found, why = models.of(p, ctx.profile) end
  local doc = found and { status = "ok", provider = name } or { status = "unavailable", provider = name, cause = why }
  local status = found and 200 or 503
  local body = core.json.encode(doc)
  ctx.status, ctx.bytes = status, #body
  ctx.res:respond(status, with(JSON, ctx.cors), body)
end

local ROUTES = {
  ["/v1/chat/completions"] = { POST = chat_completions },
  ["/v1/messages"] = { POST = messages },
  ["/v1/messages/count_tokens"] = { POST = count_tokens },
  ["/v1/models"] = { GET = list_models },
  ["/healthz"] = { GET = health },
}

-- The key from Authorization: Bearer or x-api-key.
local function presented_key(h)
  local bearer = (h.authorization or ""):match("^[Bb]earer%s+(%S+)")
  return bearer or h["x-api-key"]
end

-- The name in a Host header, lowercase and without its port; the few a client sends are
-- kept (at most 64, so that made-up names cannot grow the table).
local host_names, host_count = {}, 0
local function host_name(header)
  local name = host_names[header]
  if name then return name end
  name = header:lower():gsub(":%d+$", "")
  if host_count >= 64 then host_names, host_count = {}, 0 end
  host_names[header], host_count = name, host_count + 1
  return name
end

-- Who may ask: nil to go on, or the refusal already sent.
local function admit(ctx, s, req)
  local h = req.headers
  local host = host_name(h.host or "")
  if not s.key_hash and not LOOPBACK_HOSTS[host] and not s.allow_hosts[host] then
    return fail(ctx, 403, ("Host '%s' is not a loopback name: refused (DNS rebinding guard)"):format(host), "forbidden")
  end
  if h.origin then
    if not s.allow_origins[h.origin] then
      return fail(ctx, 403, ("requests from the web page %s are not allowed (kimictl serve --allow-origin)"):format(h.origin),
        "forbidden")
    end
    ctx.cors = { ["Access-Control-Allow-Origin"] = h.origin, Vary = "Origin" }
  end
  if req.method == "OPTIONS" and h.origin then
    ctx.status, ctx.bytes = 204, 0
    ctx.res:respond(204, with(ctx.cors, {
      ["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS",
      ["Access-Control-Allow-Headers"] = "Authorization, Content-Type, X-Api-Key, Anthropic-Version",
      ["Access-Control-Max-Age"] = "600",
    }))
    return true
  end
  if s.key_hash then
    local given = presented_key(h)
    if not given or core.hash.sha256(given) ~= s.key_hash then   -- digests: no early exit to time
      return fail(ctx, 401, "a valid API key is required (Authorization: Bearer KEY or x-api-key)",
        "authentication_error")
    end
  end
end

-- The time for log lines, formatted once a second.
local stamp_s, stamp = -1, nil
local function now_stamp()
  local t = os.time()
  if t ~= stamp_s then stamp_s, stamp = t, os.date("!%Y-%m-%dT%H:%M:%SZ", t) end
  return stamp
end

-- Whole numbers >= 0 as text; the small ones (statuses, sizes, milliseconds) kept, since
-- each conversion is a call of snprintf.
local small_numbers = {}
local function itoa(n)
  local s = small_numbers[n]
  if s then return s end
  s = tostring(n)
  if n < 4096 then small_numbers[n] = s end
  return s
end

-- Seconds as milliseconds with one decimal, "12.3".
local function ms_text(x)
  local tenths = math.floor(x * 10000 + 0.5)
  return itoa(tenths // 10) .. "." .. itoa(tenths % 10)
end

local function log_line(s, ctx)
  local took, ttfb = ms_text(core.proc.now() - ctx.t0), ctx.ttfb and ms_text(ctx.ttfb)
  local line
  if s.log_format == "json" then
    line = core.json.encode({
      time = now_stamp(), method = ctx.method, path = ctx.path, provider = ctx.provider or "-",
      model = ctx.model or "-", status = ctx.status or 0, bytes = ctx.bytes, duration_ms = tonumber(took),
      ttfb_ms = ttfb and tonumber(ttfb), upstream_id = ctx.upstream_id, error = ctx.note,
    })
  else
    -- one concatenation of strings (string.format costs a conversion per field)
    line = now_stamp() .. " " .. ctx.method .. " " .. ctx.path .. " " .. (ctx.provider or "-") .. " " ..
      (ctx.model or "-") .. " " .. itoa(ctx.status or 0) .. " " .. itoa(ctx.bytes) .. "B " .. took .. "ms ttfb=" ..
      (ttfb and (ttfb .. "ms") or "-") .. " id=" .. (ctx.upstream_id or "-") .. (ctx.note and (" error=" .. ctx.note) or "")
  end
  io.stderr:write(line .. "\n")   -- one write: lines of requests at once never interleave
end

-- A collection cycle marks the whole live heap, so its cost per request falls as the
-- pause grows. With few requests in flight the heap is small and may double before a
-- cycle (Lua's default); with many, cycles start when it has grown by a fifth, which keeps
-- 1,000 streams near 30 MiB. Two thresholds, so the setting does not flap.
local in_flight, gc_busy = 0, false
local function pace_gc()
  local busy = in_flight > 64 or (gc_busy and in_flight > 32)
  if busy ~= gc_busy then
    gc_busy = busy
    collectgarbage("incremental", busy and 120 or 200)
  end
end

-- A request's end, however it comes (an error is answered 500 by the server, a killed task
-- closes it too): counted out and logged. ctx is the request's to-be-closed value.
local function request_closed(ctx, e)
  in_flight = in_flight - 1
  if e then ctx.status, ctx.note = 500, "internal"
  elseif not ctx.status then ctx.status, ctx.note = 499, "client_gone"
  elseif ctx.open_stream then   -- stopped mid-stream: the client left, or serve stopped past its drain
    ctx.note = ctx.note or (gateway.shutting_down and "shutdown" or "client_gone")
  end
  log_line(ctx.settings, ctx)
end
local CTX = { __close = request_closed }

-- gateway.handler(settings) -> function(req, res) for core.server.listen.
-- settings: { key_hash, allow_origins = set, allow_hosts = set, log_format, profile }
function gateway.handler(s)
  return function(req, res)
    -- every field the request may set, named here so the table is made once at its size
    local ctx <close> = setmetatable({ res = res, t0 = core.proc.now(), method = req.method, path = req.path, bytes = 0,
      settings = s, profile = s.profile, dialect = req.path:find("^/v1/messages") and "anthropic" or "openai", cors = nil,
      status = nil, ttfb = nil, provider = nil, model = nil, upstream_id = nil, note = nil, open_stream = nil }, CTX)
    in_flight = in_flight + 1
    pace_gc()
    if admit(ctx, s, req) then return end
    local route = ROUTES[req.path]
    if not route then return fail(ctx, 404, ("no route %s %s"):format(req.method, req.path), nil, "not_found") end
    local fn = route[req.method]
    if not fn then return fail(ctx, 405, ("%s is not allowed on %s"):format(req.method, req.path)) end
    return fn(ctx, req)
  end
end

return gateway
