"""kimictl chat against a fake OpenAI-compatible server, over HTTP and HTTPS."""
import os
import re
import select
import signal
import subprocess
import tempfile
import time

from harness import closed_port, Home, Server, certs, check, run, test, KIMICTL

_certs = None


def tls_files():
    global _certs
    if _certs is None:
        _certs = certs(tempfile.mkdtemp(prefix="kimictl-certs-"))
    return _certs


def chat_env(home, srv, scheme="http", host="127.0.0.1", **extra):
    return home.env(OPENAI_BASE_URL=srv.url(scheme, host) + "/v1", OPENAI_API_KEY="test-key", **extra)


def chat(env, model="echo", prompt="hi", *more):
    return run(["chat", "-p", prompt, "--provider", "openai", "--model", model, *more], env)


def read_until(p, word, seconds=20):
    """What p wrote to stdout until word appeared (or EOF, or the time ran out)."""
    seen = b""
    deadline = time.time() + seconds
    while word not in seen and time.time() < deadline:
        if select.select([p.stdout], [], [], 1)[0]:
            chunk = os.read(p.stdout.fileno(), 100)
            if not chunk:
                break
            seen += chunk
    return seen


@test
def streams_answer_over_http():
    with Home() as home, Server("fake_openai.py") as srv:
        r = chat(chat_env(home, srv))
        check(r.returncode == 0, "exit %d, stderr: %s" % (r.returncode, r.stderr))
        check(r.stdout == "Hello from the fake server\n", "stdout was %r" % r.stdout)
        req = [q for q in srv.requests() if q["method"] == "POST"][-1]
        check(req["path"] == "/v1/chat/completions", req["path"])
        check(req["headers"]["user-agent"].startswith("kimictl/"), req["headers"]["user-agent"])
        body = __import__("json").loads(req["body"])
        check(body["stream"] is True and body["model"] == "echo", body)
        check(body["messages"] == [{"role": "user", "content": "hi"}], body["messages"])


def gated_chat(home, srv):
    """kimictl chat against the fake's "gate" model, which holds the stream after "first"."""
    return subprocess.Popen([KIMICTL, "chat", "-p", "hi", "--provider", "openai", "--model", "gate"],
                            env=chat_env(home, srv), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@test
def prints_tokens_before_the_answer_is_complete():
    # The fake sends "first" and then holds the stream until it is released: the word must
    # reach our stdout while the request is still open.
    with Home() as home, Server("fake_openai.py") as srv:
        p = gated_chat(home, srv)
        seen = read_until(p, b"first")
        check(b"first" in seen, "no token before the end, got %r" % seen)
        check(p.poll() is None, "kimictl had already exited: it did not stream")
        run_release = __import__("urllib.request").request.urlopen(srv.url() + "/_release")
        run_release.read()
        out, err = p.communicate(timeout=20)
        check(p.returncode == 0, "exit %d: %s" % (p.returncode, err))
        check(seen + out == b"first second\n", "got %r" % (seen + out))


@test
def reads_prompt_from_stdin():
    with Home() as home, Server("fake_openai.py") as srv:
        r = run(["chat", "--provider", "openai", "--model", "echo"], chat_env(home, srv), input="from stdin\n")
        check(r.returncode == 0, r.stderr)
        body = __import__("json").loads([q for q in srv.requests() if q["method"] == "POST"][-1]["body"])
        check(body["messages"] == [{"role": "user", "content": "from stdin"}], body["messages"])


@test
def streams_over_https_with_the_test_ca():
    c = tls_files()
    with Home() as home, Server("fake_openai.py", tls=c["server"]) as srv:
        r = chat(chat_env(home, srv, "https", "localhost", SSL_CERT_FILE=c["ca"]))
        check(r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr))
        check(r.stdout == "Hello from the fake server\n", r.stdout)


@test
def a_ca_file_without_final_newline_works():
    c = tls_files()
    with Home() as home, Server("fake_openai.py", tls=c["server"]) as srv:
        ca = os.path.join(home.path, "ca.pem")
        with open(ca, "w") as f:
            f.write(open(c["ca"]).read().rstrip("\n"))
        r = chat(chat_env(home, srv, "https", "localhost", SSL_CERT_FILE=ca))
        check(r.returncode == 0, r.stderr)


@test
def wrong_ca_fails_verification():
    c = tls_files()
    with Home() as home, Server("fake_openai.py", tls=c["server"]) as srv:
        r = chat(chat_env(home, srv, "https", "localhost", SSL_CERT_FILE=c["otherca"]))
        check(r.returncode == 1, "exit %d" % r.returncode)
        check("TLS certificate verification failed" in r.stderr, r.stderr)
        check("could not be linked to a trust anchor" in r.stderr, r.stderr)


@test
def built_in_roots_do_not_trust_the_test_ca():
    c = tls_files()
    with Home() as home, Server("fake_openai.py", tls=c["server"]) as srv:
        r = chat(chat_env(home, srv, "https", "localhost"))
        check(r.returncode == 1 and "could not be linked to a trust anchor" in r.stderr, r.stderr)


@test
def wrong_host_name_fails_verification():
    c = tls_files()
    with Home() as home, Server("fake_openai.py", tls=c["wrongname"]) as srv:
        r = chat(chat_env(home, srv, "https", "localhost", SSL_CERT_FILE=c["ca"]))
        check(r.returncode == 1, "exit %d" % r.returncode)
        check("expected server name was not found" in r.stderr, r.stderr)


@test
def unreadable_ca_file_is_named():
    with Home() as home, Server("fake_openai.py") as srv:
        missing = os.path.join(home.path, "nope.pem")
        r = chat(chat_env(home, srv, "https", "localhost", SSL_CERT_FILE=missing))
        check(r.returncode == 1 and missing in r.stderr and "SSL_CERT_FILE" in r.stderr, r.stderr)


@test
def server_closing_mid_stream_is_an_error():
    with Home() as home, Server("fake_openai.py") as srv:
        r = chat(chat_env(home, srv), "cut")
        # a passing failure, but the answer had begun: no retry (it would print the start
        # twice), exit 75 as when retries run out
        check(r.returncode == 75, "exit %d, stdout %r" % (r.returncode, r.stdout))
        check(r.stdout.startswith("Hello from"), "partial answer lost: %r" % r.stdout)
        check("closed before the answer was complete" in r.stderr and "broke off" in r.stderr, r.stderr)
        check(len([q for q in srv.requests() if q["method"] == "POST"]) == 1, "retried after printing")


@test
def refused_connection_is_explained():
    port = closed_port()
    with Home() as home:
        home.quick_retries(2)
        r = run(["chat", "-p", "hi", "--provider", "openai", "--model", "echo"],
                home.env(OPENAI_BASE_URL="http://127.0.0.1:%d/v1" % port, OPENAI_API_KEY="k"))
        check(r.returncode == 75 and "connection refused" in r.stderr, r.stderr)
        check(r.stderr.count("retrying in") == 2 and "gave up after 2 retries" in r.stderr, r.stderr)


@test
def http_errors_show_status_and_message():
    with Home() as home, Server("fake_openai.py") as srv:
        home.quick_retries(1)
        r = chat(chat_env(home, srv), "error500")
        check(r.returncode == 75, "exit %d" % r.returncode)
        check("HTTP 500" in r.stderr and "bad day" in r.stderr, r.stderr)
        env = chat_env(home, srv)
        env["OPENAI_API_KEY"] = "wrong-key-123"
        r = chat(env)
        check(r.returncode == 1 and "HTTP 401" in r.stderr and "Incorrect API key" in r.stderr, r.stderr)
        check("OPENAI_API_KEY" in r.stderr, "no hint: " + r.stderr)
        check("wrong-key-123" not in r.stderr + r.stdout, "the key was printed")


@test
def malformed_stream_and_plain_json_answers():
    with Home() as home, Server("fake_openai.py") as srv:
        r = chat(chat_env(home, srv), "garbage")
        check(r.returncode == 1 and "not a JSON object" in r.stderr, r.stderr)
        r = chat(chat_env(home, srv), "json")
        check(r.returncode == 0 and r.stdout == "whole answer\n", (r.stdout, r.stderr))


@test
def missing_key_says_what_to_set():
    with Home() as home:
        r = run(["chat", "-p", "hi", "--provider", "openai", "--model", "m"],
                home.env(OPENAI_BASE_URL="http://127.0.0.1:9/v1"))
        check(r.returncode == 1 and "no API key" in r.stderr and "OPENAI_API_KEY" in r.stderr, r.stderr)


@test
def proxy_from_environment_is_used():
    # The fake answers proxy-style requests too: the upstream name never resolves, so the
    # answer can only come through http_proxy.
    with Home() as home, Server("fake_openai.py") as srv:
        env = home.env(OPENAI_BASE_URL="http://upstream.invalid/v1", OPENAI_API_KEY="test-key",
                       http_proxy=srv.url())
        r = chat(env)
        check(r.returncode == 0 and r.stdout == "Hello from the fake server\n", r.stderr)
        check(srv.requests()[-1]["path"] == "http://upstream.invalid/v1/chat/completions",
              srv.requests()[-1]["path"])


@test
def debug_log_redacts_the_key():
    with Home() as home, Server("fake_openai.py") as srv:
        r = chat(chat_env(home, srv, KIMICTL_LOG="debug"))
        check(r.returncode == 0, r.stderr)
        check("Authorization: Bearer [redacted]" in r.stderr, "no redacted header in the debug log")
        check("test-key" not in r.stderr, "the key leaked into the debug log")


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


@test
def user_lua_directory_overrides_the_provider():
    with Home() as home, Server("fake_openai.py") as srv:
        # XDG_CONFIG_HOME/kimictl/lua is searched before the embedded copy.
        xdg = os.path.join(home.path, "xdg")
        write(os.path.join(xdg, "kimictl/lua/providers/openai.lua"), """
return { name = "openai", api = "openai", auth = "api_key", api_key_env = { "MY_KEY" },
  base_url = "%s/v1", headers = { ["User-Agent"] = "my-own-client/1.0" } }
""" % srv.url())
        r = run(["chat", "-p", "hi", "--provider", "openai", "--model", "echo"],
                home.env(XDG_CONFIG_HOME=xdg, MY_KEY="test-key"))
        check(r.returncode == 0, r.stderr)
        check(srv.requests()[-1]["headers"]["user-agent"] == "my-own-client/1.0", srv.requests()[-1]["headers"])


@test
def user_patch_changes_one_field():
    with Home() as home, Server("fake_openai.py") as srv:
        lua = os.path.join(home.path, "lua")
        write(os.path.join(lua, "user.lua"),
              'return { providers = { openai = { headers = { ["X-Extra"] = "yes" } } } }\n')
        r = chat(chat_env(home, srv, KIMICTL_LUA_DIR=lua))
        check(r.returncode == 0, r.stderr)
        h = srv.requests()[-1]["headers"]
        check(h.get("x-extra") == "yes" and h["user-agent"].startswith("kimictl/"), h)


@test
def idle_timeout_from_a_patch():
    with Home() as home, Server("fake_openai.py") as srv:
        lua = os.path.join(home.path, "lua")
        write(os.path.join(lua, "user.lua"),
              "return { providers = { openai = { timeouts = { idle_ms = 500 } } } }\n")
        home.quick_retries(0)
        r = chat(chat_env(home, srv, KIMICTL_LUA_DIR=lua), "slow")
        check(r.returncode == 75 and "sent nothing for 500 ms" in r.stderr, r.stderr)


@test
def lua_errors_are_clean_and_traceback_only_in_debug():
    with Home() as home, Server("fake_openai.py") as srv:
        lua = os.path.join(home.path, "lua")
        write(os.path.join(lua, "providers/openai.lua"), 'local t = nil\nreturn t.boom\n')
        r = chat(chat_env(home, srv, KIMICTL_LUA_DIR=lua))
        check(r.returncode == 1, "exit %d" % r.returncode)
        check("providers/openai.lua:2" in r.stderr and "stack traceback" not in r.stderr, r.stderr)
        check("Segmentation" not in r.stderr, r.stderr)
        r = chat(chat_env(home, srv, KIMICTL_LUA_DIR=lua, KIMICTL_LOG="debug"))
        check(r.returncode == 1 and "stack traceback" in r.stderr, r.stderr)


@test
def connections_are_reused_within_a_process():
    with Home() as home, Server("fake_openai.py") as srv:
        script = os.path.join(home.path, "three.lua")
        write(script, """
local core = require "core"
for i = 1, 3 do
  local res, err = core.http.request{ url = ... }
  assert(res and res.status == 200, err)
end
""")
        r = run(["lua", script, srv.url() + "/v1/models"], home.env())
        check(r.returncode == 0, r.stderr)
        peers = {q["peer"] for q in srv.requests()}
        check(len(srv.requests()) == 3 and len(peers) == 1, "connections used: %s" % peers)


@test
def a_provider_added_in_the_user_directory():
    with Home() as home, Server("fake_openai.py") as srv:
        lua = os.path.join(home.path, "lua")
        write(os.path.join(lua, "providers/mine.lua"), """
return { api = "openai", auth = "api_key", api_key_env = { "MINE_KEY" }, base_url = "%s/v1",
  default_model = "echo", headers = { ["User-Agent"] = "kimictl-user-provider" } }
""" % srv.url())
        r = run(["chat", "-p", "hi", "--provider", "mine"], home.env(KIMICTL_LUA_DIR=lua, MINE_KEY="test-key"))
        check(r.returncode == 0 and r.stdout == "Hello from the fake server\n", r.stderr)


@test
def key_from_a_command_in_a_profile():
    with Home() as home, Server("fake_openai.py") as srv:
        env = home.env(OPENAI_BASE_URL=srv.url() + "/v1")
        r = run(["login", "--provider", "openai", "--profile", "cmd", "--key-cmd", "echo test-key"], env)
        check(r.returncode == 0, r.stderr)
        r = run(["chat", "-p", "hi", "--provider", "openai", "--profile", "cmd", "--model", "echo"], env)
        check(r.returncode == 0 and r.stdout == "Hello from the fake server\n", r.stderr)
        st = run(["auth", "status"], env).stdout
        check("openai/cmd" in st and "from a command" in st, st)
        r = run(["chat", "-p", "hi", "--provider", "openai", "--profile", "nope", "--model", "echo"], env)
        check(r.returncode == 1 and "no profile 'nope'" in r.stderr, r.stderr)


@test
def on_event_returning_false_cancels_the_transfer():
    with Home() as home, Server("fake_openai.py") as srv:
        script = os.path.join(home.path, "cancel.lua")
        write(script, """
local core = require "core"
local seen = {}
local res, err = core.http.request{ url = ..., method = "POST", body = '{"model":"gate","stream":true}',
  headers = { Authorization = "Bearer test-key", ["Content-Type"] = "application/json" },
  on_event = function(ev) seen[#seen + 1] = ev.data; return false end }
assert(res, err)
print(res.status, res.cancelled, #seen, res.headers["content-type"])
""")
        # The fake holds the stream open after the first event: only a cancel returns before it ends.
        r = run(["lua", script, srv.url() + "/v1/chat/completions"], home.env())
        check(r.returncode == 0 and r.stdout.split() == ["200", "true", "1", "text/event-stream"], r.stdout + r.stderr)


@test
def body_limit_applies_to_kept_bodies_not_streams():
    with Home() as home, Server("fake_openai.py") as srv:
        script = os.path.join(home.path, "limit.lua")
        write(script, """
local core = require "core"
local url = ...
local n = 0
local res, err = core.http.request{ url = url .. "/chat/completions", max_body = 16,
  body = '{"model":"echo","stream":true}', headers = { Authorization = "Bearer test-key" },
  on_event = function() n = n + 1 end }
assert(res and res.status == 200 and n == 7, err or n)
local res2, err2, kind = core.http.request{ url = url .. "/models", max_body = 16 }
assert(res2 == nil and kind == "too_large" and err2:find("larger than 16 bytes"), err2)
""")
        r = run(["lua", script, srv.url() + "/v1"], home.env())
        check(r.returncode == 0, r.stderr)


@test
def config_aliases_and_mistakes():
    with Home() as home, Server("fake_openai.py") as srv:
        cfg = os.path.join(home.path, ".config", "kimictl", "config.lua")
        write(cfg, 'return { aliases = { quick = "openai/echo" } }\n')
        env = home.env(OPENAI_BASE_URL=srv.url() + "/v1", OPENAI_API_KEY="test-key")
        r = run(["chat", "-p", "hi", "-m", "quick"], env)
        check(r.returncode == 0 and r.stdout == "Hello from the fake server\n", r.stderr)
        body = __import__("json").loads([q for q in srv.requests() if q["method"] == "POST"][-1]["body"])
        check(body["model"] == "echo", body["model"])
        write(cfg, 'return {\n  aliases = { quick = "openai/echo" }\n  provider = "openai"\n}\n')
        r = run(["chat", "-p", "hi", "-m", "quick"], env)
        check(r.returncode == 1 and "~/.config/kimictl/config.lua:3:" in r.stderr, r.stderr)


@test
def ctrl_c_cancels_the_request_and_exits_130():
    # The fake holds the stream after "first": SIGINT must end kimictl at once (exit 130),
    # and the fake sees its connection closed rather than kept open.
    with Home() as home, Server("fake_openai.py") as srv:
        p = gated_chat(home, srv)
        seen = read_until(p, b"first")
        check(b"first" in seen, "no token before the interrupt, got %r" % seen)
        p.send_signal(signal.SIGINT)
        try:
            code = p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            raise AssertionError("kimictl went on after SIGINT")
        err = p.stderr.read().decode()
        check(code == 130, "exit %d, stderr %r" % (code, err))
        check("Traceback" not in err and "stack" not in err, err)
