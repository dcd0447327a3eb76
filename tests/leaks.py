"""make leaks: `kimictl serve` under valgrind for a few hundred mixed requests (OpenAI and
Anthropic, streamed and whole, tool calls, upstream faults, bad input, clients that leave
mid-stream, token refreshes), then SIGTERM with work in flight. Passes with no byte lost
(definitely, indirectly or possibly) and no error in valgrind's logs. KIMICTL names the glibc
build with debug info that the Makefile makes; the raw logs stay in build/valgrind/. The
fakes are tests/e2e's; every request stays on loopback."""
import collections
import glob
import http.client
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(os.path.dirname(HERE), "build", "valgrind")
os.environ.setdefault("KIMICTL", os.path.join(OUT, "kimictl"))   # not ./kimictl: static, stripped
sys.path.insert(0, os.path.join(HERE, "e2e"))
from harness import KIMICTL, ROOT, Home, Server  # noqa: E402
from test_auth import call, kimi_env, write_kimi_cli_file  # noqa: E402
from test_messages import ANTHROPIC, MESSAGES, readme_claude_provider  # noqa: E402
from test_serve import CHAT, chat_body, raw_exchange, request  # noqa: E402

ROUNDS = 5              # each round sends every kind once, shuffled: 300 requests, then 3 at SIGTERM
WORKERS = 6
MAX_BODY = 65536        # serve's --max-body, so an oversized body need not be megabytes
IDLE_MS = 3000          # the upstream idle timeout ("drip", "hang"); wide, for valgrind's pace
EXPIRES_IN = 302        # announced lifetime: due for a refresh 2 s after each (Kimi CLI's 300 s rule)
TIMEOUT = 90            # any one request, under valgrind
APP = "http://app.example"
# --trace-children: the refresh workers serve starts (kimictl auth refresh --worker) run under
# valgrind too, each with a log of its own (serve.PID.log).
# Stacks are shown for every kind of loss this script fails on; only a definite one makes
# valgrind's exit status 99.
VALGRIND = ["valgrind", "--leak-check=full", "--show-leak-kinds=definite,indirect,possible",
            "--errors-for-leak-kinds=definite", "--error-exitcode=99", "--track-fds=no", "--num-callers=30",
            "--trace-children=yes"]

# The kimi provider waits less (as test_auth's FAST) and gives up on a silent upstream sooner;
# the openai provider's mapping raises on "boom" (a Lua error inside a request: 500, then go
# on); the README's claude provider (Messages only) points at the fake Anthropic.
USER_LUA = """return { providers = {
  kimi = { timeouts = { idle_ms = %d },
           oauth = { slow_down_ms = 300, reread_ms = 50, retry_delays_ms = { 50, 100 } } },
  openai = { chat_request = function(p, body)
    if body.messages[1].content == "boom" then error("the mapping broke") end
  end },
  claude = { base_url = "%%s/v1" },
} }
""" % IDLE_MS


# --- one request of each kind -> its outcome, a short text ----------------------------------

def answer(status, headers, raw):
    """The status, and for a stream whether it ended well: with [DONE] or message_stop, or
    with an error event (the gateway's way to tell a failure after the first byte)."""
    out = str(status)
    if headers.get("content-type", "").startswith("text/event-stream"):
        text = raw.decode("utf-8", "replace")
        if "event: error" in text or re.search(r'^data: \{"error":', text, re.M):
            out += " error event"
        elif not (text.rstrip().endswith("data: [DONE]") or "event: message_stop" in text):
            out += " unfinished"
    return out


def ask(port, method, path, body=None, headers=None):
    try:
        return answer(*request(types.SimpleNamespace(port=port), method, path, body, headers, TIMEOUT))
    except http.client.IncompleteRead:
        return "incomplete"


def chat(prompt, stream=False, model="kimi-for-coding", **extra):
    return lambda port: ask(port, "POST", CHAT, dict(chat_body(prompt, stream, model), **extra))


def msgs(prompt, stream=False, model="kimi-for-coding", **extra):
    body = dict({"model": model, "max_tokens": 64, "stream": stream,
                 "messages": [{"role": "user", "content": prompt}]}, **extra)
    return lambda port: ask(port, "POST", MESSAGES, body, ANTHROPIC)


def get(path, headers=None):
    return lambda port: ask(port, "GET", path, headers=headers)


def raw_post(path, body, headers=""):
    return (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n%s"
            b"Content-Length: %d\r\n\r\n%s" % (path.encode(), headers.encode(), len(body), body))


def send_raw(data):
    """Raw bytes; the status of the answer, read until the server closes."""
    def one(port):
        got = raw_exchange(port, data, TIMEOUT)
        m = re.match(rb"HTTP/1\.1 (\d+) ", got)
        return m.group(1).decode() if m else "no answer"
    return one


def leave(data, after=b"data:"):
    """Send a request, read until `after` arrives (nothing: leave at once), close: the
    client gone mid-stream, mid-wait or mid-body."""
    def one(port):
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
            s.sendall(data)
            got = b""
            while after and after not in got:
                chunk = s.recv(4096)
                if not chunk:
                    return "closed before %r: %r" % (after, got[:60])
                got += chunk
        return "left"
    return one


def keep_alive(port):
    """Three requests on one connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        out = []
        for method, path, body in (("GET", "/healthz", None), ("POST", CHAT, json.dumps(chat_body("hi"))),
                                   ("GET", "/v1/models", None)):
            conn.request(method, path, body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            out.append(answer(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()))
        return "200" if out == ["200"] * 3 else " ".join(out)
    finally:
        conn.close()


WEATHER = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
CALLED = [{"role": "user", "content": "weather?"},
          {"role": "assistant", "content": None, "reasoning_content": "I will look.", "tool_calls": [
              {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
          {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]
A_TOOLS = [{"name": "get_weather", "input_schema": {"type": "object"}}]
A_CALLED = [{"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                               "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]}]
STREAM_OPTS = {"stream_options": {"include_usage": True}}
SLOW = json.dumps(chat_body("slow 60")).encode()   # 3 s upstream: the client leaves long before

# (kind, request, outcomes it may have). The fake answers "retry-after 1" with a 429 the first
# time only.
KINDS = [
    ("chat", chat("hi"), {"200"}),
    ("chat stream", chat("hi", True, **STREAM_OPTS), {"200"}),
    ("chat stream, thinking", chat("think", True), {"200"}),
    ("chat tool call", chat("tool", tools=WEATHER), {"200"}),
    ("chat tool call stream", chat("tool", True, tools=WEATHER), {"200"}),
    ("chat two tool calls stream", chat('multi {"a": 1} ;; {"b": 2}', True, tools=WEATHER * 2), {"200"}),
    ("chat tool result", lambda port: ask(port, "POST", CHAT, {"model": "kimi-for-coding", "stream": True,
                                                                "messages": CALLED, "tools": WEATHER}), {"200"}),
    ("chat 1 MiB line stream", chat("long 1", True), {"200"}),
    ("chat 100 KB stream", chat("flood 50", True), {"200"}),
    ("chat openai provider", chat("hi", True, "openai/echo"), {"200"}),
    ("chat messages-only provider", chat("hi", False, "claude/claude-fake-1"), {"200"}),
    ("chat messages-only stream", chat("tool", True, "claude/claude-fake-1", tools=WEATHER), {"200"}),
    ("messages", msgs("hi"), {"200"}),
    ("messages stream", msgs("hi", True), {"200"}),
    ("messages tool call stream", msgs("tool", True, tools=A_TOOLS), {"200"}),
    ("messages tool result", lambda port: ask(port, "POST", MESSAGES, {
        "model": "kimi-for-coding", "max_tokens": 64, "messages": A_CALLED, "tools": A_TOOLS}, ANTHROPIC), {"200"}),
    ("messages translated", msgs("hi", False, "openai/json"), {"200"}),
    ("messages translated stream", msgs("hi", True, "openai/echo"), {"200"}),
    ("messages translated tool call", msgs("weather?", True, "openai/tool", tools=A_TOOLS), {"200"}),
    ("messages count_tokens", lambda port: ask(port, "POST", MESSAGES + "/count_tokens",
                                                {"model": "kimi-for-coding", "messages": A_CALLED}, ANTHROPIC), {"200"}),
    ("models", get("/v1/models"), {"200"}),
    ("models, Anthropic's shape", get("/v1/models", ANTHROPIC), {"200"}),
    ("healthz", get("/healthz"), {"200"}),
    ("keep-alive, three requests", keep_alive, {"200"}),
    # upstream faults
    ("upstream 500 burst", chat("burst 500 1000000", True), {"500"}),
    ("upstream 502 page", chat("burst 502 1000000"), {"502"}),
    ("upstream 503 burst", chat("burst 503 1000000", True), {"503"}),
    ("upstream 429, Retry-After 0", chat("busy", True), {"429"}),
    ("upstream 429, Retry-After 1", chat("retry-after 1", True), {"429", "200"}),
    ("upstream reset before answer", chat("reset 1000000", True), {"502"}),
    ("upstream reset mid-stream", chat("cut", True), {"200 error event"}),
    ("upstream junk between events", chat("garbage", True), {"200"}),
    ("upstream truncated chunk", chat("truncated", True), {"200 error event"}),
    ("upstream truncated body", chat("truncated"), {"502"}),
    ("upstream without [DONE]", chat("nodone", True), {"200"}),
    ("upstream silent after answer", chat("hang", True), {"200"}),
    ("upstream drip (idle timeout)", chat("drip", True), {"504"}),
    ("upstream 500, translated", msgs("hi", True, "openai/error500"), {"500"}),
    ("upstream cut, translated", msgs("hi", True, "openai/cut"), {"200 error event"}),
    ("upstream junk, translated", msgs("hi", True, "openai/garbage"), {"200 error event"}),
    ("upstream error event, translated", msgs("hi", True, "openai/failing"), {"200 error event"}),
    ("upstream error event, messages-only", chat("overload", True, "claude/claude-fake-1"), {"200 error event"}),
    ("a user.lua error (500)", chat("boom", False, "openai/echo"), {"500"}),
    # bad client input
    ("malformed JSON", lambda port: ask(port, "POST", CHAT, b"{not json", {"Content-Type": "application/json"}),
     {"400"}),
    ("a JSON array", lambda port: ask(port, "POST", MESSAGES, b"[1, 2]", ANTHROPIC), {"400"}),
    ("no model", lambda port: ask(port, "POST", CHAT, {"messages": []}), {"400"}),
    ("messages not a list", lambda port: ask(port, "POST", MESSAGES, {"model": "openai/echo", "messages": "nope"},
                                             ANTHROPIC), {"400"}),
    ("wrong path", get("/v1/nope"), {"404"}),
    ("wrong method", lambda port: ask(port, "DELETE", "/v1/models"), {"405"}),
    ("body over --max-body", lambda port: ask(port, "POST", CHAT, chat_body("x" * (MAX_BODY + 4096))), {"413"}),
    ("headers too large", get("/v1/models", {"X-Big": "a" * 17000}), {"431"}),
    ("not HTTP", send_raw(b"NOT HTTP AT ALL\r\n\r\n"), {"400"}),
    ("foreign Host", get("/v1/models", {"Host": "evil.example"}), {"403"}),
    ("foreign Origin", lambda port: ask(port, "POST", CHAT, chat_body(), {"Origin": "http://evil.example"}), {"403"}),
    ("CORS preflight", lambda port: ask(port, "OPTIONS", CHAT, headers={
        "Origin": APP, "Access-Control-Request-Method": "POST"}), {"204"}),
    # clients that leave
    ("left mid-stream, chat", leave(raw_post(CHAT, SLOW)), {"left"}),
    ("left after the first event, messages", leave(raw_post(MESSAGES, json.dumps(
        {"model": "kimi-for-coding", "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    ).encode(), "anthropic-version: 2023-06-01\r\n"), b"event:"), {"left"}),
    ("left mid-stream, translated", leave(raw_post(MESSAGES, json.dumps(
        {"model": "openai/gate", "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    ).encode(), "anthropic-version: 2023-06-01\r\n"), b"content_block_delta"), {"left"}),
    ("left before the answer", leave(raw_post(CHAT, json.dumps(chat_body("slow 20", False)).encode()), b""),
     {"left"}),
    ("left mid-body", leave(raw_post(CHAT, SLOW)[:-20], b""), {"left"}),
]


def run_one(name, fn, port):
    try:
        return name, fn(port)
    except (OSError, http.client.HTTPException) as e:
        return name, "no answer (%s)" % type(e).__name__


# --- serve under valgrind ---------------------------------------------------------------------

class Served:
    """valgrind kimictl serve: the port from its banner (valgrind starts slowly: 120 s), stdout
    drained in a thread, stderr (the request log) in build/valgrind/serve.stderr."""

    def __init__(self, env, *args):
        for old in glob.glob(os.path.join(OUT, "serve.*.log")):
            os.remove(old)
        self.err = open(os.path.join(OUT, "serve.stderr"), "wb")
        self.proc = subprocess.Popen(VALGRIND + ["--log-file=" + os.path.join(OUT, "serve.%p.log"),
                                                 KIMICTL, "serve", "--listen", "127.0.0.1:0", *args],
                                     env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.err)
        self.log = os.path.join(OUT, "serve.%d.log" % self.proc.pid)
        try:
            self.port = self._banner_port()
        except BaseException:
            self.stop()
            raise
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()   # a full pipe never blocks it

    def _banner_port(self):
        out, fd, deadline = b"", self.proc.stdout.fileno(), time.time() + 120
        while b"\n" not in out and time.time() < deadline and self.proc.poll() is None:
            if select.select([fd], [], [], 1)[0]:
                data = os.read(fd, 4096)
                if not data:
                    break
                out += data
        m = re.search(rb"http://127\.0\.0\.1:(\d+)/v1", out)
        if not m:
            raise RuntimeError("serve announced no port within 120 s: %r (see %s and %s)" % (
                out[:200], os.path.relpath(self.err.name, ROOT), os.path.relpath(self.log, ROOT)))
        return int(m.group(1))

    def stop(self, seconds=120):
        """SIGTERM (a graceful stop: valgrind checks for leaks at exit) -> exit status, or None
        after the deadline (then it is killed). Again, once stopped: the same status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(seconds)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        finally:
            self.err.close()


SUMMARY_KEYS = ("in use at exit", "total heap usage", "definitely lost", "indirectly lost", "possibly lost",
                "ERROR SUMMARY")


def figures(log):
    """valgrind's summary lines of one log -> {name: text}; None for a line it lacks (a log
    without "ERROR SUMMARY" is one whose process never finished)."""
    with open(log, errors="replace") as f:
        text = f.read()
    out = {}
    for key in SUMMARY_KEYS:
        m = re.search(r"==\d+== +%s: (.*)" % re.escape(key), text)
        out[key] = m.group(1).strip() if m else None
    if "All heap blocks were freed" in text:
        for key in ("definitely lost", "indirectly lost", "possibly lost"):
            out[key] = "0 bytes in 0 blocks"
    return out


def number(text):
    m = re.match(r"([\d,]+)", text or "")
    return int(m.group(1).replace(",", "")) if m else None


def total(figs, key):
    """The sum over every log; None when a log lacks the line."""
    ns = [number(f[key]) for f in figs]
    return None if None in ns else sum(ns)


# --- the run ----------------------------------------------------------------------------------

def drive(port, srv):
    """Every kind ROUNDS times, WORKERS at a time; between rounds every access token the fake
    issued dies (/_expire), so the next requests get 401 and the gateway refreshes."""
    results = []
    rng = random.Random(7)
    with ThreadPoolExecutor(WORKERS) as pool:
        for r in range(ROUNDS):
            if r:
                call(srv, "/_expire")
            kinds = KINDS[:]
            rng.shuffle(kinds)
            results += list(pool.map(lambda k: run_one(k[0], k[1], port), kinds))
    return results


def until_closed(sock, started=None):
    """Everything the server sends until it closes; started is set at the first event."""
    got = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return got
        got += chunk
        if started and b"data:" in got:
            started.set()


# Work in flight when SIGTERM comes: serve drains for 10 s, then closes what is left.
AT_SIGTERM = [
    ("SIGTERM: a stream outliving the drain", {"cut when the drain ended"}),
    ("SIGTERM: a connection that sent nothing", {"closed"}),
    ("SIGTERM: half a request's headers", {"closed"}),
]


def stop_in_flight(served):
    """SIGTERM with a 20 s stream under way and two connections waiting for their request ->
    [(kind, outcome)], serve's exit status."""
    started = threading.Event()

    def stream(port):
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
            s.sendall(raw_post(CHAT, json.dumps(chat_body("slow 400")).encode()))
            got = until_closed(s, started)
        if b"[DONE]" in got:
            return "ended with [DONE]"
        return "cut when the drain ended" if started.is_set() else "no event: %r" % got[:60]

    def closed(sock):
        got = until_closed(sock)
        return "closed" if not got else "answered %r" % got[:40]
    socks = [socket.create_connection(("127.0.0.1", served.port), timeout=TIMEOUT) for _ in AT_SIGTERM[1:]]
    try:
        socks[1].sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(run_one, AT_SIGTERM[0][0], stream, served.port)
            started.wait(60)
            code = served.stop()
            out = [first.result(TIMEOUT)]
        for (name, _), sock in zip(AT_SIGTERM[1:], socks):
            out.append(run_one(name, lambda _: closed(sock), served.port))
    finally:
        for sock in socks:
            sock.close()
    return out, code


def report(results, took, st, served, code, alive):
    expected = dict([(name, ok) for name, _, ok in KINDS] + AT_SIGTERM)
    by_kind = collections.defaultdict(collections.Counter)
    for name, outcome in results:
        by_kind[name][outcome] += 1
    surprises = [(n, o) for n, o in results if o not in expected[n]]
    print("kimictl serve under valgrind: %d requests in %.0f s, %d at a time" % (len(results), took, WORKERS))
    for name in expected:
        outcomes = ", ".join("%s x%d" % (o, c) for o, c in sorted(by_kind[name].items()))
        mark = "" if all(o in expected[name] for o in by_kind[name]) else "   <- unexpected"
        print("  %-40s %s%s" % (name, outcomes, mark))
    print("refreshes: %d by the fake's token endpoint (%d asked); every token was made to expire %d times"
          % (st["refresh_ok"], st["refresh_calls"], ROUNDS - 1))
    workers = sorted(set(glob.glob(os.path.join(OUT, "serve.*.log"))) - {served.log})
    figs = [figures(served.log)] + [figures(w) for w in workers]
    print("valgrind log: %s" % os.path.relpath(served.log, ROOT))
    for key in SUMMARY_KEYS:
        print("  %s: %s" % (key, figs[0][key]))
    unread = [os.path.basename(w) for w, f in zip(workers, figs[1:]) if f["ERROR SUMMARY"] is None]
    if unread:
        print("refresh workers under valgrind: %d logs beside it; %d never finished (no summary): %s"
              % (len(workers), len(unread), ", ".join(unread[:5])))
    else:
        print("refresh workers under valgrind: %d logs beside it, %s bytes definitely lost, %s errors in all"
              % (len(workers), total(figs[1:], "definitely lost"), total(figs[1:], "ERROR SUMMARY")))
    checks = [
        (total(figs, "definitely lost") == 0, "no byte definitely lost"),
        (total(figs, "indirectly lost") == 0, "no byte indirectly lost"),
        (total(figs, "possibly lost") == 0, "no byte possibly lost (a block only an inner pointer reaches)"),
        (total(figs, "ERROR SUMMARY") == 0, "no invalid read, write or free, no jump on an uninitialised value"),
        (code == 0, "serve exited 0 after SIGTERM (exit %s; 99 is valgrind's)" % code),
        (alive, "the gateway answered /healthz after the load"),
        (not surprises, "every request ended as its kind may (%d did not%s)" % (
            len(surprises), ": " + "; ".join("%s: %s" % s for s in surprises[:5]) if surprises else "")),
        (st["refresh_ok"] >= 3 and len(workers) >= 3, "the login was refreshed at least 3 times"),
    ]
    for ok, what in checks:
        print("%s - %s" % ("ok" if ok else "not ok", what))
    failed = sum(1 for ok, _ in checks if not ok)
    print("%d passed, %d failed" % (len(checks) - failed, failed))
    return 1 if failed else 0


def main():
    if not shutil.which("valgrind"):
        sys.exit("tests/leaks.py: valgrind is not installed: run ./build.sh (or apt-get install valgrind)")
    if not os.access(KIMICTL, os.X_OK):
        sys.exit("tests/leaks.py: no %s: run make leaks, which builds it" % KIMICTL)
    socket.setdefaulttimeout(60)   # the fakes' helpers (call) wait no longer than this
    os.makedirs(OUT, exist_ok=True)
    with Home() as home, Server("fake_kimi.py", "--expires-in", str(EXPIRES_IN)) as srv, \
            Server("fake_openai.py") as oai, Server("fake_anthropic.py") as ant:
        lua_dir = os.path.join(home.path, "lua")
        readme_claude_provider(lua_dir, ant.url())
        env = kimi_env(home, srv, OPENAI_BASE_URL=oai.url() + "/v1", OPENAI_API_KEY="test-key",
                       ANTHROPIC_API_KEY="test-key")
        with open(os.path.join(lua_dir, "user.lua"), "w") as f:   # after kimi_env, which writes FAST
            f.write(USER_LUA % ant.url())
        tok = call(srv, "/_seed")
        write_kimi_cli_file(home, tok, time.time() + 290)   # due at once: the first refresh is by time
        served = Served(env, "--max-body", str(MAX_BODY), "--allow-origin", APP)
        try:
            t0 = time.time()
            results = drive(served.port, srv)
            alive = ask(served.port, "GET", "/healthz") == "200"
            st = call(srv, "/_stats")
            stopped, code = stop_in_flight(served)
            results += stopped
            took = time.time() - t0
        finally:
            served.stop()   # at once when stop_in_flight did; else after a failure
        return report(results, took, st, served, code, alive)


if __name__ == "__main__":
    sys.exit(main())
