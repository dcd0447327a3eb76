"""core.http as a Lua script sees it, against the fake server: errors raised in on_event,
re-entry, timeouts, refused connections, repeated headers and interim answers."""
import os
import time

from harness import Home, Server, check, closed_port, run, test

CHAT = """
local core = require "core"
local function stream(url, on_event)
  return core.http.request {
    url = url .. "/v1/chat/completions", method = "POST", on_event = on_event,
    headers = { Authorization = "Bearer test-key", ["Content-Type"] = "application/json" },
    body = '{"model":"echo","stream":true,"messages":[{"role":"user","content":"hi"}]}',
  }
end
"""


def lua(home, code, *args):
    """Run a Lua script with kimictl lua; the script gets args as `...`."""
    path = os.path.join(home.path, "script.lua")
    with open(path, "w") as f:
        f.write(code)
    return run(["lua", path, *args], home.env(), timeout=60)


@test
def an_error_in_on_event_reaches_the_caller():
    with Home() as home, Server("fake_openai.py") as srv:
        r = lua(home, CHAT + """
local ok, err = pcall(stream, ..., function(ev) error("stopped by the callback at " .. ev.data:sub(1, 6), 0) end)
print(ok, err)
""", srv.url())
        check(r.returncode == 0 and r.stdout == 'false\tstopped by the callback at {"id":\n', r.stdout + r.stderr)


@test
def a_request_inside_on_event_runs_while_the_stream_waits():
    with Home() as home, Server("fake_openai.py") as srv:
        r = lua(home, CHAT + """
local url = ...
local inner
local res = assert(stream(url, function()
  inner = inner or core.http.request { url = url .. "/v1/models", headers = { Authorization = "Bearer test-key" } }
end))
print(res.status, inner.status, #core.json.decode(inner.body).data > 0)
""", srv.url())
        check(r.returncode == 0 and r.stdout == "200\t200\ttrue\n", r.stdout + r.stderr)


@test
def tasks_wait_for_their_answers_at_the_same_time():
    # The fake holds the "gate" stream until /_release: run one after the other, the first
    # request would wait forever for the second.
    with Home() as home, Server("fake_openai.py") as srv:
        r = lua(home, """
local core = require "core"
local url = ...
local done, words = core.loop.event(), {}
core.loop.spawn(function()
  local res = core.http.request {
    url = url .. "/v1/chat/completions", idle_timeout_ms = 20000,
    headers = { Authorization = "Bearer test-key", ["Content-Type"] = "application/json" },
    body = '{"model":"gate","stream":true,"messages":[{"role":"user","content":"hi"}]}',
    on_event = function(ev) words[#words + 1] = ev.data end,
  }
  done:set()
end)
core.loop.spawn(function()
  while #words == 0 do core.loop.sleep(10) end
  core.http.request { url = url .. "/_release" }
end)
print(done:wait(20000), #words > 2)
""", srv.url())
        check(r.returncode == 0 and r.stdout == "true\ttrue\n", r.stdout + r.stderr)


@test
def the_total_timeout_names_its_limit():
    with Home() as home, Server("fake_openai.py") as srv:
        start = time.time()
        r = lua(home, """
local res, err, kind = require("core").http.request { url = ... .. "/_stall", timeout_ms = 300 }
print(res, err, kind)
""", srv.url())
        want = "nil\t%s/_stall did not finish within 300 ms\ttimeout\n" % srv.url()
        check(r.stdout == want, r.stdout + r.stderr)
        check(time.time() - start < 20, "the timeout did not stop the request")


@test
def a_refused_connection_is_nil_message_kind():
    with Home() as home:
        url = "http://127.0.0.1:%d/api/oauth/token" % closed_port()
        r = lua(home, """
local res, err, kind = require("core").http.request { url = ..., connect_timeout_ms = 5000 }
print(res, err, kind)
""", url)
        want = "nil\tcould not connect to %s: connection refused (is the server running?)\tconnect\n" % url
        check(r.stdout == want, r.stdout + r.stderr)


def get(home, srv, path, header):
    """status, the header's value and the body of GET path, as the Lua side sees them."""
    return lua(home, """
local url, header = ...
local res = assert(require("core").http.request { url = url })
print(res.status, res.headers[header], res.body)
""", srv.url() + path, header)


@test
def repeated_headers_are_joined():
    with Home() as home, Server("fake_openai.py") as srv:
        r = get(home, srv, "/_dup", "x-dup")
        check(r.stdout == "200\ta, b\t{}\n", r.stdout + r.stderr)


@test
def an_interim_100_continue_is_skipped():
    with Home() as home, Server("fake_openai.py") as srv:
        r = get(home, srv, "/_continue", "x-final")
        check(r.stdout == '201\tyes\t{"final": true}\n', r.stdout + r.stderr)
