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
def request_inside_on_event_is_refused():
    with Home() as home, Server("fake_openai.py") as srv:
        r = lua(home, CHAT + """
local url = ...
local ok, err = pcall(stream, url, function() core.http.request { url = url .. "/v1/models" } end)
print(ok, err)
""", srv.url())
        check(r.returncode == 0 and r.stdout.startswith("false\t"), r.stdout + r.stderr)
        check("core.http.request cannot be called from inside on_event" in r.stdout, r.stdout)


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
