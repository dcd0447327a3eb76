"""Fault injection (issue 10): the fake Kimi's failing prompts (tests/e2e/fake_kimi.py) through
`kimictl chat` and `kimictl serve`. Each fault ends in a retry that succeeds or a clear error
(chat: exit 0, 1 or 75; serve: an error status, or an error event inside the stream, and the
next request served), never in a wait beyond the configured timeouts."""
import contextlib
import json
import os
import time
import types

from harness import Home, Server, check, run, test, wait_for
from test_auth import FAST, call, kimi_env, read_like_kimi_cli, write_kimi_cli_file
from test_serve import CHAT, Gateway, chat_body, data_events, error_of, request, text_of

IDLE_MS = 1500   # the provider's idle timeout in these tests (300 s as shipped)


def patched_env(home, srv, idle_ms=None, oauth_ms=None):
    """kimi_env, whose user.lua (FAST's short waits) may also shorten the idle timeout
    (timeouts.idle_ms) and the OAuth requests' timeout (oauth.timeout_ms)."""
    env = kimi_env(home, srv)
    check(FAST.count("oauth = {") == 1, "FAST changed shape: " + FAST)
    lua = FAST.replace("oauth = {", ("timeouts = { idle_ms = %d }, " % idle_ms if idle_ms else "") + "oauth = {" +
                       (" timeout_ms = %d," % oauth_ms if oauth_ms else ""))
    with open(os.path.join(env["KIMICTL_LUA_DIR"], "user.lua"), "w") as f:
        f.write(lua)
    return env


@contextlib.contextmanager
def kimi(*fake, retries=1, expired=False, idle_ms=None, oauth_ms=None):
    """The fake Kimi, a login for it in Kimi CLI's file (expired, or good for 15 minutes), and
    chat retries after 10 ms instead of Kimi CLI's 300 ms and more."""
    with Home() as home, Server("fake_kimi.py", *fake) as srv:
        tok = call(srv, "/_seed")
        path = write_kimi_cli_file(home, tok, time.time() + (-5 if expired else 900))
        home.quick_retries(retries)
        yield types.SimpleNamespace(home=home, srv=srv, tok=tok, path=path,
                                    env=patched_env(home, srv, idle_ms, oauth_ms))


def chat(s, prompt):
    """`kimictl chat -p PROMPT`: the result and the seconds it took. No token is ever printed."""
    t0 = time.time()
    r = run(["chat", "-p", prompt], s.env, timeout=60)
    took = time.time() - t0
    for secret in (s.tok["access_token"], s.tok["refresh_token"]):
        check(secret not in r.stdout and secret not in r.stderr, "a token was printed")
    return r, took


def stats(srv):
    return call(srv, "/_stats")


def said(r):
    return "exit %d, stdout %r, stderr %r" % (r.returncode, r.stdout[:200], r.stderr)


def served_next(gw):
    """The gateway still answers: a plain request after the fault succeeds."""
    status, _, body = request(gw, "POST", CHAT, chat_body("hi", stream=False))
    check(status == 200 and b'"OK"' in body, "not serving after the fault: %d %r" % (status, body[:300]))


@test
def bursts_of_500_502_503_are_retried():
    with kimi(retries=2) as s:
        r, _ = chat(s, "burst 502 2")
        check(r.returncode == 0 and r.stdout == "Hello from Kimi\n", said(r))
        check(r.stderr.count("retrying in") == 2 and "kimi answered HTTP 502: 502 Bad Gateway;" in r.stderr, r.stderr)
        check("<html>" not in r.stderr, "the proxy's HTML page was printed: " + r.stderr)
        r, _ = chat(s, "burst 503 1")
        check(r.returncode == 0 and r.stdout == "Hello from Kimi\n", said(r))
        check(r.stderr.count("retrying in") == 1 and "HTTP 503: fault injected" in r.stderr, r.stderr)
        r, _ = chat(s, "burst 500 3")   # three failures, two retries: the burst outlasts them
        check(r.returncode == 75 and r.stdout == "", said(r))
        check("HTTP 500: fault injected" in r.stderr and "gave up after 2 retries" in r.stderr, r.stderr)
        check(stats(s.srv)["prompts"]["burst 500 3"] == 3, "not three tries")


@test
def bursts_through_the_gateway_are_errors_then_answers():
    with kimi() as s, Gateway(s.env) as gw:
        for prompt, code, stream in (("burst 502 1", 502, True), ("burst 503 1", 503, False),
                                     ("burst 500 1", 500, True)):
            status, _, body = request(gw, "POST", CHAT, chat_body(prompt, stream=stream))
            err = error_of(status, body, code)
            check(("HTTP %d" % code) in err["message"] and "<html>" not in err["message"], err)
            status, _, body = request(gw, "POST", CHAT, chat_body(prompt, stream=stream))
            check(status == 200, "%s, the second time: %d %r" % (prompt, status, body[:300]))
            if stream:
                check(text_of(data_events(body)) == "Hello from Kimi", body[:300])


@test
def retry_after_is_waited_for_unless_too_long():
    with kimi() as s:
        r, took = chat(s, "retry-after 1")
        check(r.returncode == 0 and r.stdout == "Hello from Kimi\n", said(r))
        check("HTTP 429" in r.stderr and "retrying in 1.0 s" in r.stderr, r.stderr)
        check(took >= 0.9, "retried after %.2f s; Retry-After asked for 1 s" % took)
        check(took < 30, "took %.1f s" % took)
        # more than chat.retry_max_wait_ms (60 s): not waited for, said at once
        r, took = chat(s, "retry-after 120")
        check(r.returncode == 75 and r.stdout == "" and "asks to wait 120 s" in r.stderr, said(r))
        check(took < 30, "took %.1f s" % took)
        check(stats(s.srv)["prompts"]["retry-after 120"] == 1, "retried although told to wait 120 s")


@test
def retry_after_reaches_the_gateways_client():
    with kimi() as s, Gateway(s.env) as gw:
        status, headers, body = request(gw, "POST", CHAT, chat_body("retry-after 7"))
        err = error_of(status, body, 429)
        check(headers.get("retry-after") == "7", "Retry-After not passed on: %r" % headers)
        check("rate-limiting" in err["message"], err)
        status, _, body = request(gw, "POST", CHAT, chat_body("retry-after 7"))
        check(status == 200 and text_of(data_events(body)) == "Hello from Kimi", (status, body[:300]))


@test
def a_reset_before_the_answer_is_retried_and_one_during_it_is_not():
    with kimi() as s:
        r, _ = chat(s, "reset 1")
        check(r.returncode == 0 and r.stdout == "Hello from Kimi\n", said(r))
        check(r.stderr.count("retrying in") == 1 and "closed before the answer was complete" in r.stderr, r.stderr)
        r, _ = chat(s, "reset 9")
        check(r.returncode == 75 and r.stdout == "", said(r))
        check("Connection reset" in r.stderr and "gave up after 1 retries" in r.stderr, r.stderr)
        r, _ = chat(s, "cut")   # after two tokens: shown, so not retried (it would print them twice)
        check(r.returncode == 75 and r.stdout.startswith("Hello from"), said(r))
        check("closed before the answer was complete" in r.stderr and "broke off" in r.stderr, r.stderr)
        check(stats(s.srv)["prompts"]["cut"] == 1, "retried after printing")


@test
def a_reset_before_the_answer_is_a_502_from_the_gateway():
    with kimi() as s, Gateway(s.env) as gw:
        for stream in (True, False):
            status, _, body = request(gw, "POST", CHAT, chat_body("reset 2", stream=stream))
            err = error_of(status, body, 502)
            check("closed before the answer was complete" in err["message"] and err.get("code") == "reset", err)
        served_next(gw)


@test
def a_drip_of_bytes_is_ended_by_the_idle_timeout():
    # One byte a second never ends a line: the idle timeout counts from the last line's end,
    # so the drip cannot hold the request open (it used to, for as long as it dripped).
    with kimi(retries=0, idle_ms=IDLE_MS) as s:
        r, took = chat(s, "drip")
        check(r.returncode == 75 and r.stdout == "", said(r))
        check("sent bytes but no complete line for 1500 ms (idle timeout)" in r.stderr, r.stderr)
        check(1.4 <= took < 30, "ended after %.1f s" % took)
        wait_for(lambda: stats(s.srv).get("fault_streams_broken") == 1, 15, "the fake to see the connection closed")
    # Lines 600 ms apart keep it alive past the idle timeout: it is silence between lines.
    with kimi("--token-interval-ms", "600", idle_ms=IDLE_MS) as s:
        r, took = chat(s, "slow 4")
        check(r.returncode == 0 and r.stdout == "t0 t1 t2 t3 \n", said(r))
        check(took > IDLE_MS / 1000, "took only %.1f s" % took)


@test
def a_drip_through_the_gateway_is_a_504():
    with kimi(idle_ms=IDLE_MS) as s, Gateway(s.env) as gw:
        t0 = time.time()
        status, _, body = request(gw, "POST", CHAT, chat_body("drip"))
        err = error_of(status, body, 504)
        check("no complete line for 1500 ms" in err["message"] and err.get("code") == "timeout", err)
        check(time.time() - t0 < 30, "took %.1f s" % (time.time() - t0))
        served_next(gw)


@test
def junk_lines_between_events_are_ignored():
    with kimi() as s:
        r, _ = chat(s, "garbage")
        check(r.returncode == 0 and r.stdout == "Hello from Kimi\n" and r.stderr == "", said(r))
        with Gateway(s.env) as gw:
            status, _, body = request(gw, "POST", CHAT, chat_body("garbage"))
            check(status == 200, (status, body[:300]))
            for junk in (b"\xff", b"foo", b"colon", b"keep-alive", b"ping", b"retry:"):
                check(junk not in body, "%r reached the client: %r" % (junk, body[:600]))
            ev = data_events(body)
            check(text_of(ev) == "Hello from Kimi" and ev[-1] == "[DONE]", ev)


@test
def a_10_mib_line_is_taken_and_a_64_mib_one_refused():
    # An event stream line may be 16 MiB: ten are an answer, sixty-four an error, and kimictl
    # stops reading there rather than taking the whole line into memory.
    with kimi() as s:
        r, _ = chat(s, "long 10")
        check(r.returncode == 0 and len(r.stdout) == (10 << 20) + 1 and r.stdout.strip("x") == "\n",
              "exit %d, %d bytes out, stderr %r" % (r.returncode, len(r.stdout), r.stderr))
        r, took = chat(s, "long 64")
        check(r.returncode == 1 and r.stdout == "", said(r))
        check("bad answer from" in r.stderr and "event stream line too long" in r.stderr, r.stderr)
        wait_for(lambda: stats(s.srv).get("fault_streams_broken") == 1, 15, "the fake to see the connection closed")
        sent = stats(s.srv)["fault_bytes_sent"]
        check(sent < 48 << 20, "kimictl read %d MiB of the 64 MiB line" % (sent >> 20))
        with Gateway(s.env) as gw:
            status, _, body = request(gw, "POST", CHAT, chat_body("long 64"))
            err = error_of(status, body, 502)
            check("event stream line too long" in err["message"], err)
            served_next(gw)


@test
def truncated_json_in_a_chunk_or_a_body_is_an_error():
    with kimi() as s:
        r, _ = chat(s, "truncated")
        check(r.returncode == 1 and r.stdout == "Hello\n", said(r))
        check("not a JSON object" in r.stderr and "unexpected end" in r.stderr, r.stderr)
        r, _ = chat(s, "truncated body")   # a JSON answer to a request for a stream, cut short
        check(r.returncode == 1 and r.stdout == "", said(r))
        check("kimi answered 200 with a body that is neither an event stream nor a JSON object" in r.stderr, r.stderr)
        prompts = stats(s.srv)["prompts"]
        check(prompts["truncated"] == 1 and prompts["truncated body"] == 1, "a broken answer was asked again")


@test
def truncated_json_through_the_gateway_is_an_error_not_a_relay():
    with kimi() as s, Gateway(s.env) as gw:
        status, _, body = request(gw, "POST", CHAT, chat_body("truncated"))
        ev = data_events(body)
        check(status == 200 and len(ev) == 3 and text_of(ev[:1]) == "Hello" and ev[2] == "[DONE]", ev)
        err = json.loads(ev[1]).get("error")
        check(isinstance(err, dict) and err.get("code") == "bad_answer" and "not a JSON object" in err["message"], ev[1])
        for prompt, stream in (("truncated", False), ("truncated body", True)):
            status, _, body = request(gw, "POST", CHAT, chat_body(prompt, stream=stream))
            err = error_of(status, body, 502)
            check(err.get("code") == "bad_answer" and "not a JSON object" in err["message"], err)
        served_next(gw)


@test
def a_stream_without_done_ends_at_its_close_or_the_idle_timeout():
    with kimi() as s:   # the idle timeout as shipped (300 s): waiting for [DONE] would hang
        r, _ = chat(s, "nodone")   # finish_reason, then the body ends: complete
        check(r.returncode == 0 and r.stdout == "Hello from Kimi\n" and r.stderr == "", said(r))
    with kimi(idle_ms=IDLE_MS) as s:
        r, took = chat(s, "hang")     # finish_reason, then silence: the idle timeout ends it
        check(r.returncode == 0 and r.stdout == "Hello from Kimi\n" and r.stderr == "", said(r))
        check(1.4 <= took < 30, "ended after %.1f s" % took)


@test
def a_stream_without_done_through_the_gateway():
    # The answer is complete (finish_reason): the client gets its [DONE] when the upstream's
    # stream closes without one, and when it goes silent until the idle timeout.
    with kimi(idle_ms=IDLE_MS) as s, Gateway(s.env) as gw:
        for prompt in ("nodone", "hang"):
            t0 = time.time()
            status, _, body = request(gw, "POST", CHAT, chat_body(prompt))
            took = time.time() - t0
            ev = data_events(body)
            check(status == 200 and text_of(ev) == "Hello from Kimi" and ev[-1] == "[DONE]", (prompt, ev))
            check(json.loads(ev[-2])["choices"][0]["finish_reason"] == "stop", (prompt, ev[-2]))
            check(not any('"error"' in e for e in ev), (prompt, ev))
            check(prompt == "nodone" or 1.4 <= took < 30, "%s ended after %.1f s" % (prompt, took))
        wait_for(lambda: gw.stderr().count("\n") >= 2, 5, "two log lines")
        lines = gw.stderr().splitlines()
        check(" 200 " in lines[0] and "error=" not in lines[0], lines[0])   # ended by the close, not the timeout
        check(" 200 " in lines[1] and lines[1].endswith("error=timeout"), lines[1])   # the silence is logged
        served_next(gw)


@test
def a_token_endpoint_that_hangs_is_given_up_and_the_login_kept():
    # Three refresh calls that never answer (the fake does not rotate the token), each given
    # up after oauth.timeout_ms; the credential file stays as it was, and the next run,
    # with the token endpoint answering again, refreshes the same login.
    with kimi("--refresh-hang", "3", expired=True, oauth_ms=1000) as s:
        before = open(s.path).read()
        r, took = chat(s, "hi")
        check(r.returncode == 1 and r.stdout == "", said(r))
        check("could not refresh the kimi login" in r.stderr and
              "/api/oauth/token did not finish within 1000 ms (tried 3 times)" in r.stderr, r.stderr)
        check(2.9 <= took < 30, "gave up after %.1f s (three tries of 1 s)" % took)
        check(stats(s.srv)["refresh_hung"] == 3, "refresh calls that hung: %r" % stats(s.srv).get("refresh_hung"))
        check(open(s.path).read() == before, "the credential file changed")
        check(read_like_kimi_cli(s.path)["refresh_token"] == s.tok["refresh_token"], "the refresh token changed")
        r, _ = chat(s, "hi")
        check(r.returncode == 0 and r.stdout == "Hello from Kimi\n", said(r))
        check(read_like_kimi_cli(s.path)["refresh_token"] != s.tok["refresh_token"], "not refreshed")


@test
def a_token_endpoint_that_hangs_is_a_503_from_the_gateway():
    with kimi("--refresh-hang", "3", expired=True, oauth_ms=1000) as s, Gateway(s.env) as gw:
        before = open(s.path).read()
        status, _, body = request(gw, "POST", CHAT, chat_body("hi"))
        err = error_of(status, body, 503)
        check("did not finish within 1000 ms" in err["message"] and err.get("code") == "refresh", err)
        check(open(s.path).read() == before, "the credential file changed")
        served_next(gw)
        check(read_like_kimi_cli(s.path)["refresh_token"] != s.tok["refresh_token"], "not refreshed")


@test
def a_task_whose_timer_is_already_due_runs_at_once():
    # What hung the gateway now and then while it waited for its refresh worker: a task's
    # timer already due when the loop next ran (its clock had fallen behind), whose callback
    # runs before the poll; the task was ready, but the poll slept until something else came
    # (here the main task's own 60 s deadline; in the gateway, the client giving up).
    with Home() as home:
        script = os.path.join(home.path, "due.lua")
        with open(script, "w") as f:
            f.write("""local core = require "core"
local done = core.loop.event()
core.loop.spawn(function()
  local t0 = core.proc.clock_ms()
  while core.proc.clock_ms() - t0 < 30 do end   -- busy: the loop's clock falls behind
  core.loop.sleep(1)                            -- due before the loop looks again
  done:set()
end)
print(done:wait(60000))
""")
        t0 = time.time()
        r = run(["lua", script], home.env(), timeout=90)
        took = time.time() - t0
        check(r.returncode == 0 and r.stdout == "true\n", said(r))
        check(took < 30, "the woken task waited %.1f s for the loop" % took)
