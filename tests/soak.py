"""make soak: `kimictl serve` for SOAK_MINUTES (default 30, fractional allowed) under a paced,
mixed load against the fake Kimi (tests/e2e/fake_kimi.py), with a Kimi Code login whose access
token dies every minute (sooner in a run shorter than 6 minutes), so the gateway refreshes it,
in its detached worker, all through the run: the first time ahead of expiry, as the credential
file asks, then after a 401 each time (the new tokens claim 15 minutes).

The load, about RATE requests a second from WORKERS threads, all on 127.0.0.1: OpenAI chat
completions and Anthropic messages, streamed and not, tool calls and their results, thinking,
keep-alive connections, clients that leave mid-stream, /v1/models, /healthz, count_tokens,
and a small share of upstream faults (5xx bursts, 429 with Retry-After, resets before and
during an answer, junk lines, truncated JSON, streams without [DONE], a silent or dripping
upstream, a 1 MiB line). Each request ends as expected (an answer), as a failure the fake
caused on purpose (which must be a clear error status or error event, never a hang), or as
an unexpected error: counted, the first few kept with their details. Before the load, each
kind runs once, then serve's idle descriptors are counted.

Every 10 s (more often in a short run) serve's RSS, descriptors and CPU go to
build/soak/soak-STAMP.csv, and its request log to serve-STAMP.log. Verdicts, after a warm-up
(the first 20% of the run or 3 minutes, whichever is less, and at least one token lifetime and
a half, so a refresh has happened):
- no unexpected errors, and no Lua traceback in serve's log;
- RSS flat: the floor of RSS (the lowest sample) in the last window exceeds the floor in the
  first window after the warm-up by at most RSS_GROWTH_KIB (2 MiB). Each window is a tenth
  of the measured time (at least 3 samples). Floors, not medians: a 1 MiB answer lifts RSS
  by 5 MiB until Lua's collector has been round, often for a third of the samples, while a
  leak lifts the floor. 2 MiB is half of what the gateway holds under this load (about
  4 MiB) and many times the sway of the floor (under 0.2 MiB, also at 120 requests a second),
  yet in 30 minutes some 40,000 requests lie between the windows: a leak of 50 bytes each
  crosses it;
- descriptors: after the load stops and settles, every descriptor that is not a kept-alive
  upstream connection is back to the idle count, no client connection is left, no refresh
  worker is left behind, and the upstream connections are within libcurl's idle pool (4 per
  transfer; one plain request at a time trims a larger pool to that, a leaked one never);
- refreshes: at least 80% of one per token lifetime, one of them in the warm-up;
- serve answers a plain request at the end, then exits 0 on SIGTERM within its drain time.
The last line reads "N passed, N failed"; the exit status is 1 when a verdict fails."""
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "e2e"))
from harness import KIMICTL, ROOT, Home, Server, wait_for                        # noqa: E402
from test_auth import call, write_kimi_cli_file                                 # noqa: E402
from test_faults import patched_env                                            # noqa: E402
from test_messages import ANTHROPIC, MESSAGES, sse                              # noqa: E402
from test_serve import (CHAT, Gateway, chat_body, data_events, error_of, first_token, raw_exchange,  # noqa: E402
                        request, rss_kib, text_of)

RATE = 30                  # requests a second, all kinds together
WORKERS = 8
IDLE_MS = 2000             # the provider's idle timeout: ends "drip" (504) and "hang" ([DONE])
TOKEN_LIFETIME_S = 60      # the access token dies this long after it was issued,
CLAIMED_S = 900            # though the token endpoint says it lasts this long
RSS_GROWTH_KIB = 2048
POOL_IDLE_MAX = 4          # libcurl keeps 4 idle connections per transfer in its multi handle
KEPT_ERRORS = 5
OUT_DIR = os.path.join(ROOT, "build", "soak")
TOKEN = re.compile(r"\b(at|rt)-\d+-[xy]{8,}")
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "The weather", "parameters": CITY}}]
ATOOLS = [{"name": "get_weather", "description": "The weather", "input_schema": CITY}]
PARIS = {"city": "Paris"}
JSON = {"Content-Type": "application/json"}
MSG = {"model": "kimi-for-coding", "max_tokens": 64}
HI = [{"role": "user", "content": "hi"}]


class Unexpected(Exception):
    """An outcome the gateway should not have given."""


def expect(cond, what):
    if not cond:
        raise Unexpected(what)


def redact(text):
    """No token is ever printed, even one a broken answer might echo."""
    return TOKEN.sub("[token]", str(text))


def brief(status, body):
    return "%s %r" % (status, body[:300])


def plan(minutes):
    """The run's timings, scaled down for a short run (SOAK_MINUTES=0.5) so that it still sees
    refreshes within its warm-up and enough samples in each window."""
    run_s = minutes * 60
    lifetime = min(TOKEN_LIFETIME_S, max(5.0, run_s / 6))
    warmup = max(min(0.2 * run_s, 180), 1.5 * lifetime)
    sample = min(10.0, max(1.0, run_s / 30))
    window = (run_s - warmup) / 10
    return dict(run=run_s, lifetime=lifetime, warmup=warmup, sample=sample, window=window,
                progress=min(60.0, run_s / 4))


# --- what the clients do; each returns "ok" (the answer expected) or "fault" (a clear error
# for a failure the fake caused on purpose); anything else raises -----------------------------

def chat(gw, prompt, stream, **extra):
    return request(gw, "POST", CHAT, dict(chat_body(prompt, stream=stream), **extra), timeout=30)


def streamed_text(status, body, want):
    ev = data_events(body)
    expect(status == 200 and ev and ev[-1] == "[DONE]" and text_of(ev) == want and
           not any('"error"' in e for e in ev), brief(status, body))
    return "ok"


def answered(gw, prompt, want):
    """A streamed chat whose answer must be want, ended by [DONE], with no error event."""
    status, _, body = chat(gw, prompt, True)
    return streamed_text(status, body, want)


def chat_stream(gw, i):
    return answered(gw, "hi", "Hello from Kimi")


def chat_plain(gw, i):
    status, _, body = chat(gw, "hi", False)
    expect(status == 200 and json.loads(body)["choices"][0]["message"]["content"] == "OK", brief(status, body))
    return "ok"


def chat_think(gw, i):
    status, _, body = chat(gw, "think", True)
    ev = data_events(body)
    reasoning = "".join((c.get("delta", {}).get("reasoning_content") or "")
                        for e in ev[:-1] for c in json.loads(e).get("choices") or [])
    expect(reasoning == "Let me think.", brief(status, body))
    return streamed_text(status, body, "Answer.")


def chat_slow(gw, i):
    return answered(gw, "slow 5", "t0 t1 t2 t3 t4 ")


def tool_call(gw, i):
    stream = i % 2 == 0
    status, _, body = chat(gw, "tool", stream, tools=TOOLS)
    expect(status == 200, brief(status, body))
    if stream:
        ev = data_events(body)
        args = "".join(tc["function"].get("arguments") or "" for e in ev[:-1] for c in json.loads(e)["choices"]
                       for tc in c.get("delta", {}).get("tool_calls") or [])
        finish = [c.get("finish_reason") for e in ev[:-1] for c in json.loads(e)["choices"] if c.get("finish_reason")]
        expect(ev[-1] == "[DONE]" and json.loads(args) == PARIS and finish == ["tool_calls"], brief(status, body))
    else:
        choice = json.loads(body)["choices"][0]
        call_ = choice["message"]["tool_calls"][0]["function"]
        expect(choice["finish_reason"] == "tool_calls" and json.loads(call_["arguments"]) == PARIS, brief(status, body))
    return "ok"


def tool_result(gw, i):
    messages = [{"role": "user", "content": "weather in Paris?"},
                {"role": "assistant", "content": None, "reasoning_content": "I will look.", "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": json.dumps(PARIS)}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]
    status, _, body = request(gw, "POST", CHAT, {"model": "kimi-for-coding", "stream": True, "tools": TOOLS,
                                                 "messages": messages}, timeout=30)
    return streamed_text(status, body, "tool said: sunny")


def keepalive(gw, i):
    """Three plain requests on one connection."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    try:
        for _ in range(3):
            conn.request("POST", CHAT, json.dumps(chat_body("hi", stream=False)), JSON)
            r = conn.getresponse()
            body = r.read()
            answer = json.loads(body)["choices"][0]["message"]["content"] if r.status == 200 else None
            expect(answer == "OK", brief(r.status, body))
    finally:
        conn.close()
    return "ok"


def disconnect(gw, i):
    """A client that leaves after the first token of a 20-token stream."""
    conn, r, seen = first_token(gw, "slow 20")
    conn.close()
    expect(r.status == 200 and b"t0 " in seen, brief(r.status, seen))
    return "ok"


def leave_early(gw, i):
    """A client that leaves before a non-streamed answer (half a second away) arrives."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    try:
        conn.request("POST", CHAT, json.dumps(chat_body("slow 10", stream=False)), JSON)
        time.sleep(0.05)
    finally:
        conn.close()
    return "ok"


def models(gw, i):
    headers = ANTHROPIC if i % 2 else {}
    status, _, body = request(gw, "GET", "/v1/models", headers=headers, timeout=30)
    ids = [m.get("id") for m in json.loads(body).get("data") or []] if status == 200 else []
    expect(any("kimi-for-coding" in (m or "") for m in ids), brief(status, body))
    return "ok"


def refused(gw, i):
    """A client the gateway must refuse (its expected answer): a foreign Host, bytes that are
    not HTTP, headers over 16 KiB, an unknown route, a body that is not JSON, or a connection
    that closes before a byte."""
    which = i % 6
    if which == 0:
        error_of(*request(gw, "GET", "/v1/models", headers={"Host": "evil.example"}, timeout=30)[::2], want=403)
    elif which == 1:
        answer = raw_exchange(gw.port, b"NOT HTTP AT ALL\r\n\r\n")
        expect(answer.startswith(b"HTTP/1.1 400 "), "malformed request: %r" % answer[:200])
    elif which == 2:
        error_of(*request(gw, "GET", "/v1/models", headers={"X-Big": "a" * 17000}, timeout=30)[::2], want=431)
    elif which == 3:
        error_of(*request(gw, "GET", "/v1/nope", timeout=30)[::2], want=404)
    elif which == 4:
        error_of(*request(gw, "POST", CHAT, b"{not json", JSON, timeout=30)[::2], want=400)
    else:
        socket.create_connection(("127.0.0.1", gw.port), timeout=30).close()
    return "ok"


def healthz(gw, i):
    status, _, body = request(gw, "GET", "/healthz", timeout=30)
    expect(status == 200, brief(status, body))
    return "ok"


def messages(gw, body):
    return request(gw, "POST", MESSAGES, dict(MSG, **body), ANTHROPIC, timeout=30)


def msg_stream(gw, i):
    status, _, body = messages(gw, {"stream": True, "messages": HI})
    events = sse(body)
    text = "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")
    expect(status == 200 and events and events[-1][0] == "message_stop" and text == "Hello from Kimi",
           brief(status, body))
    return "ok"


def msg_disconnect(gw, i):
    """A client that leaves after the first event of a messages stream."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    try:
        conn.request("POST", MESSAGES, json.dumps(dict(MSG, stream=True, messages=HI)),
                     dict(ANTHROPIC, **JSON))
        r = conn.getresponse()
        first = r.readline()
        expect(r.status == 200 and first.startswith(b"event: "), brief(r.status, first))
    finally:
        conn.close()
    return "ok"


def msg_plain(gw, i):
    status, _, body = messages(gw, {"messages": HI})
    content = json.loads(body)["content"] if status == 200 else None
    expect(content == [{"type": "text", "text": "Hello from Kimi"}], brief(status, body))
    return "ok"


def msg_tool(gw, i):
    stream = i % 2 == 0
    status, _, body = messages(gw, {"stream": stream, "tools": ATOOLS,
                                    "messages": [{"role": "user", "content": "tool"}]})
    expect(status == 200, brief(status, body))
    if stream:
        events = sse(body)
        parts = "".join(d["delta"].get("partial_json", "") for n, d in events if n == "content_block_delta")
        expect(events[-1][0] == "message_stop" and json.loads(parts) == PARIS, brief(status, body))
    else:
        doc = json.loads(body)
        expect(doc["stop_reason"] == "tool_use" and doc["content"][0]["input"] == PARIS, brief(status, body))
    return "ok"


def msg_tool_result(gw, i):
    msgs = [{"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                               "input": PARIS}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]}]
    status, _, body = messages(gw, {"tools": ATOOLS, "messages": msgs})
    expect(status == 200 and json.loads(body)["content"][0].get("text") == "tool said: sunny", brief(status, body))
    return "ok"


def count_tokens(gw, i):
    status, _, body = request(gw, "POST", MESSAGES + "/count_tokens", {"model": "kimi-for-coding",
                              "messages": [{"role": "user", "content": "x" * 400}]}, ANTHROPIC, timeout=30)
    expect(status == 200 and 50 <= json.loads(body)["input_tokens"] <= 200, brief(status, body))
    return "ok"


# --- faults the fake injects (a unique count keeps each prompt failing every time) ----------

def clear_error(status, body, want, code=None, words=None):
    """A refusal in OpenAI's shape with the wanted status (and code, and words)."""
    doc = json.loads(body) if body[:1] == b"{" else {}
    err = doc.get("error") if isinstance(doc, dict) else None
    expect(status == want and isinstance(err, dict) and isinstance(err.get("message"), str) and err["message"] and
           (code is None or err.get("code") == code) and (words is None or words in err["message"]) and
           "<html>" not in err["message"], brief(status, body))
    return "fault"


def stream_error(status, body, text, code):
    """An error event inside a stream that began (after text), then [DONE]."""
    ev = data_events(body)
    errors = [json.loads(e)["error"] for e in ev[:-1] if '"error"' in e]
    expect(status == 200 and ev and ev[-1] == "[DONE]" and len(errors) == 1 and errors[0].get("code") == code and
           text_of([e for e in ev if '"error"' not in e]) == text, brief(status, body))
    return "fault"


def burst(gw, i):
    code = (500, 502, 503)[i % 3]
    status, _, body = chat(gw, "burst %d %d" % (code, 10 ** 9 + i), i % 2 == 0)
    return clear_error(status, body, code, words="HTTP %d" % code)


def retry_after(gw, i):
    wait = 1000 + i
    status, headers, body = chat(gw, "retry-after %d" % wait, i % 2 == 0)
    expect(headers.get("retry-after") == str(wait), "Retry-After not passed on: %r" % headers)
    return clear_error(status, body, 429)


def reset(gw, i):
    status, _, body = chat(gw, "reset %d" % (10 ** 9 + i), i % 2 == 0)
    return clear_error(status, body, 502, code="reset")


def cut(gw, i):
    status, _, body = chat(gw, "cut", i % 2 == 0)
    if i % 2 == 0:
        return stream_error(status, body, "Hello from", "reset")
    return clear_error(status, body, 502)


def truncated(gw, i):
    status, _, body = chat(gw, "truncated", i % 2 == 0)
    if i % 2 == 0:
        return stream_error(status, body, "Hello", "bad_answer")
    return clear_error(status, body, 502, code="bad_answer")


def drip(gw, i):
    status, _, body = chat(gw, "drip", True)
    return clear_error(status, body, 504, code="timeout")


def garbage(gw, i):
    status, _, body = chat(gw, "garbage", True)
    expect(not any(junk in body for junk in (b"\xff", b"colon", b"keep-alive", b"retry:")), brief(status, body))
    return streamed_text(status, body, "Hello from Kimi")


def nodone(gw, i):
    return answered(gw, "nodone", "Hello from Kimi")


def hang(gw, i):
    return answered(gw, "hang", "Hello from Kimi")


def long_line(gw, i):
    return answered(gw, "long 1", "x" * (1 << 20))


# (kind, weight, function, HTTP requests it makes)
KINDS = [("chat_stream", 20, chat_stream, 1), ("chat_plain", 14, chat_plain, 1), ("chat_think", 4, chat_think, 1),
         ("chat_slow", 5, chat_slow, 1), ("tool_call", 5, tool_call, 1), ("tool_result", 4, tool_result, 1),
         ("keepalive", 3, keepalive, 3), ("disconnect", 3, disconnect, 1), ("leave_early", 2, leave_early, 1),
         ("models", 3, models, 1), ("healthz", 1, healthz, 1), ("refused", 1.5, refused, 1),
         ("msg_stream", 10, msg_stream, 1),
         ("msg_disconnect", 2, msg_disconnect, 1), ("msg_plain", 8, msg_plain, 1),
         ("msg_tool", 4, msg_tool, 1), ("msg_tool_result", 2, msg_tool_result, 1), ("count_tokens", 1, count_tokens, 1),
         ("f_burst_5xx", 1.5, burst, 1), ("f_retry_after", 1, retry_after, 1), ("f_reset", 0.7, reset, 1),
         ("f_cut", 1, cut, 1), ("f_truncated", 1, truncated, 1), ("f_garbage", 0.8, garbage, 1),
         ("f_nodone", 0.8, nodone, 1), ("f_hang", 0.3, hang, 1), ("f_drip", 0.3, drip, 1),
         ("f_long_1mib", 0.2, long_line, 1)]


# --- the load --------------------------------------------------------------------------------

class Load:
    """WORKERS threads sending KINDS, chosen by weight, at about RATE requests a second in all,
    until stop(). Counts requests by kind and outcome; keeps the first unexpected errors."""

    def __init__(self, gw, t0):
        self.gw, self.t0 = gw, t0
        self.lock = threading.Lock()
        self.counts = {name: {"ok": 0, "fault": 0, "unexpected": 0} for name, *_ in KINDS}
        self.requests = self.unexpected = self.seq = 0
        self.kept = []
        self.next_slot = time.monotonic()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.work, args=(k,), daemon=True) for k in range(WORKERS)]

    def start(self):
        for t in self.threads:
            t.start()

    def take_slot(self):
        """Wait for this worker's turn: slots 1/RATE apart, never bunched after a slow spell."""
        with self.lock:
            at = max(self.next_slot, time.monotonic())
            self.next_slot = at + 1 / RATE
            self.seq += 1
            seq = self.seq
        self.stopping.wait(max(0.0, at - time.monotonic()))
        return seq

    def work(self, k):
        rng = random.Random(k)
        weights = [w for _, w, *_ in KINDS]
        while not self.stopping.is_set():
            seq = self.take_slot()
            if self.stopping.is_set():
                break
            self.one(rng.choices(KINDS, weights)[0], seq)

    def tour(self):
        """Each kind once, one after the other: every path has run (and every buffer that is
        kept has grown) before the warm-up starts."""
        for kind in KINDS:
            self.one(kind, self.take_slot())

    def one(self, kind, seq):
        name, _, fn, n = kind
        try:
            outcome, detail = fn(self.gw, seq), None
        except Exception as e:   # every other failure is the gateway's: an unexpected error
            outcome, detail = "unexpected", "%s: %s" % (type(e).__name__, e)
        self.record(name, outcome, n, detail)

    def record(self, name, outcome, n, detail):
        with self.lock:
            self.counts[name][outcome] += n
            self.requests += n
            if outcome == "unexpected":
                self.unexpected += n
                if len(self.kept) < KEPT_ERRORS:
                    self.kept.append("%.1f s, %s: %s" % (time.monotonic() - self.t0, name, redact(detail)[:600]))

    def stop(self, seconds):
        """Stop sending and wait for the requests in flight: the workers still busy after
        seconds (each a request that hung)."""
        self.stopping.set()
        deadline = time.monotonic() + seconds
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return [t.name for t in self.threads if t.is_alive()]


# --- serve as /proc sees it -----------------------------------------------------------------

def tcp_sockets(pid):
    """inode -> (local port, remote port, state) for the TCP sockets of pid's network namespace."""
    out = {}
    for table in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, table)) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            col = row.split()
            out[col[9]] = (int(col[1].rsplit(":", 1)[1], 16), int(col[2].rsplit(":", 1)[1], 16), col[3])
    return out


def descriptors(pid, ports=None):
    """serve's open descriptors: all, and sockets. Given ports (serve's, the fake's), also its
    connections to the upstream (libcurl's, in use or kept alive), those of clients, and the
    rest (listener, loop, pipes, files). The TCP table takes a third of a second to read on a
    machine with a large one: only when serve is at rest, not in every sample."""
    tcp = tcp_sockets(pid) if ports else {}
    n = sockets = upstream = clients = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue   # closed while we looked
        n += 1
        m = re.fullmatch(r"socket:\[(\d+)\]", target)
        sockets += m is not None
        if m and m.group(1) in tcp:
            local, remote, state = tcp[m.group(1)]
            upstream += remote == ports[1]
            clients += local == ports[0] and state != "0A"   # 0A: LISTEN
    return {"total": n, "sockets": sockets, "upstream": upstream, "clients": clients, "other": n - upstream - clients}


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")   # utime + stime


def children(pid):
    """Processes whose parent is pid (a refresh worker not yet reaped would be one)."""
    found = []
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/stat" % d) as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(d))
        except OSError:
            continue   # it ended while we looked
    return found


class Sampler:
    """serve's RSS, descriptors and CPU every period seconds, each a row of the CSV."""
    FIELDS = ("t_s", "phase", "rss_kib", "fds", "fd_sockets", "cpu_s", "requests", "unexpected")

    def __init__(self, gw, path, t0, warmup, load, period):
        self.gw, self.t0, self.warmup, self.load, self.period = gw, t0, warmup, load, period
        self.rows = []
        self.csv = open(path, "w")
        self.csv.write(",".join(self.FIELDS) + "\n")
        self.done, self.lock = threading.Event(), threading.Lock()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def sample(self):
        pid, t = self.gw.proc.pid, time.monotonic() - self.t0
        fds = descriptors(pid)
        phase = "settle" if self.load.stopping.is_set() else "warmup" if t < self.warmup else "load"
        row = dict(t_s=round(t, 1), phase=phase, rss_kib=rss_kib(pid), fds=fds["total"], fd_sockets=fds["sockets"],
                   cpu_s=round(cpu_seconds(pid), 2), requests=self.load.requests, unexpected=self.load.unexpected)
        with self.lock:   # the thread's samples and the last one, taken by drive()
            self.rows.append(row)
            self.csv.write(",".join(str(row[k]) for k in self.FIELDS) + "\n")
            self.csv.flush()

    def run(self):
        """A sample every period on a fixed schedule (a late one does not delay the rest)."""
        due = time.monotonic()
        while True:
            try:
                self.sample()
            except OSError:   # serve is gone: the verdicts will say so
                return
            due = max(due + self.period, time.monotonic())
            if self.done.wait(due - time.monotonic()):
                return

    def start(self):
        self.thread.start()

    def stop(self):
        self.done.set()
        self.thread.join(30)
        self.csv.close()


# --- the run ---------------------------------------------------------------------------------

def at_rest(gw, srv, seconds=30):
    """Let serve come to rest and count its descriptors: no client connection and no stream at
    the fake, then plain requests one at a time (each must be answered) until libcurl has
    trimmed its pool of kept-alive upstream connections to the idle size."""
    pid, ports = gw.proc.pid, (gw.port, srv.port)
    wait_for(lambda: call(srv, "/_stats")["streams_active"] == 0, seconds, "the fake's streams to end")
    deadline = time.monotonic() + seconds
    while True:
        chat_plain(gw, 0)
        if descriptors(pid, ports)["upstream"] <= POOL_IDLE_MAX or time.monotonic() > deadline:
            break
    wait_for(lambda: descriptors(pid, ports)["clients"] == 0, seconds, "serve to close its client connections")
    return descriptors(pid, ports)


def mib(kib):
    return "%.1f MiB" % (kib / 1024)


def watch(p, gw, srv, load, sampler):
    """Until the run is over (or serve has gone), a progress line now and then -> the
    refreshes seen by the end of the warm-up."""
    t0, next_line, refreshes_warmup = load.t0, p["progress"], None
    while time.monotonic() - t0 < p["run"] and gw.proc.poll() is None:
        t = time.monotonic() - t0
        if refreshes_warmup is None and t >= p["warmup"]:
            refreshes_warmup = call(srv, "/_stats")["refresh_ok"]
        if t >= next_line:
            next_line += p["progress"]
            row = sampler.rows[-1] if sampler.rows else {"rss_kib": 0, "fds": 0}
            print("soak: %5.1f/%g min  %6d requests  %d unexpected  RSS %s  fds %d  refreshes %d" % (
                t / 60, p["run"] / 60, load.requests, load.unexpected, mib(row["rss_kib"]), row["fds"],
                call(srv, "/_stats")["refresh_ok"]), flush=True)
        time.sleep(min(1.0, max(0.0, p["run"] - t)))
    return refreshes_warmup


def drive(p, gw, srv, csv_path):
    """The load for p["run"] seconds with a progress line now and then; the figures the
    verdicts need."""
    r = {"rss_start": rss_kib(gw.proc.pid)}
    load = Load(gw, time.monotonic())
    load.tour()
    r.update(idle=at_rest(gw, srv), cpu_start=cpu_seconds(gw.proc.pid))
    t0 = load.t0 = time.monotonic()
    sampler = Sampler(gw, csv_path, t0, p["warmup"], load, p["sample"])
    r.update(load=load, sampler=sampler)
    try:
        sampler.start()
        load.start()
        r["refreshes_warmup"] = watch(p, gw, srv, load, sampler)
        r["stuck"] = load.stop(60)
        r["alive"] = gw.proc.poll() is None
        if not r["alive"]:
            r["end_error"] = "serve exited with status %s during the run" % gw.proc.returncode
        r["refreshes"] = call(srv, "/_stats")["refresh_ok"]
        if r["alive"]:
            try:
                r["end"] = at_rest(gw, srv)   # its plain requests are the "still answers" check
                r["children"] = children(gw.proc.pid)
                r["cpu_end"] = cpu_seconds(gw.proc.pid)
                sampler.sample()
            except Exception as e:
                r["end_error"] = redact("%s: %s" % (type(e).__name__, e))[:600]
    finally:
        load.stop(5)
        sampler.stop()
    return r


def sigterm(gw, seconds=20):
    """SIGTERM, then the exit status within seconds (None if serve did not exit)."""
    if gw.proc.poll() is None:
        gw.proc.send_signal(signal.SIGTERM)
    try:
        return gw.proc.wait(seconds)
    except subprocess.TimeoutExpired:
        return None


# --- verdicts and the summary ----------------------------------------------------------------

def rss_windows(p, rows):
    """The floor of RSS (its lowest sample) in the first window after the warm-up and in the
    last window of load, each the samples of a window's time (at least 3), counted so a late
    sample costs none."""
    loaded = [row["rss_kib"] for row in rows if row["phase"] == "load"]
    k = max(3, round(p["window"] / p["sample"]))
    if len(loaded) < 2 * k:
        return None, None
    return min(loaded[:k]), min(loaded[-k:])


def verdicts(p, r):
    """(passed, what it says) for each verdict."""
    load, out = r["load"], []
    bad = load.unexpected + r["tracebacks"] + len(r["stuck"]) + r["tokens_logged"]
    out.append((bad == 0, "no unexpected errors: %d requests answered wrongly, %d hung; %d Lua tracebacks and %d "
                          "tokens in serve's log" % (load.unexpected, len(r["stuck"]), r["tracebacks"],
                                                     r["tokens_logged"])))
    first, last = rss_windows(p, r["sampler"].rows)
    if first is None:
        out.append((False, "RSS flat: too few samples after the warm-up to tell"))
    else:
        out.append((last - first <= RSS_GROWTH_KIB, "RSS flat: floor %s after the warm-up, %s at the end (%+d KiB; "
                                                    "at most %+d)" % (
            mib(first), mib(last), last - first, RSS_GROWTH_KIB)))
    idle, end = r["idle"], r.get("end")
    if end is None:
        out.append((False, "descriptors: serve could not be brought to rest to count them"))
    else:
        ok = (end["other"] == idle["other"] and end["clients"] == 0 and end["upstream"] <= POOL_IDLE_MAX
              and not r["children"])
        out.append((ok, "descriptors back to idle: %d then %d (beside kept-alive upstream connections %d then %d, "
                        "at most %d); %d client connections and %d child processes left" % (
                            idle["other"], end["other"], idle["upstream"], end["upstream"], POOL_IDLE_MAX,
                            end["clients"], len(r["children"]))))
    want = max(1, int(0.8 * p["run"] / p["lifetime"]))
    ok = r["refreshes"] >= want and (r["refreshes_warmup"] or 0) >= 1
    out.append((ok, "refreshes: %d (%s in the warm-up; at least %d for a %g s token)" % (
        r["refreshes"], r["refreshes_warmup"], want, p["lifetime"])))
    out.append((r["alive"] and end is not None, "serve still answers at the end" if end is not None else
                "serve does not answer at the end: %s" % (r.get("end_error") or "it exited")))
    out.append((r["exit"] == 0, "SIGTERM: exit status %s" % ("none within 20 s" if r["exit"] is None else r["exit"])))
    return out


def summary(p, r, csv_path, log_path):
    load, rows = r["load"], r["sampler"].rows
    print("\n%-16s %9s %9s %9s %11s" % ("kind", "requests", "ok", "fault", "unexpected"))
    total = {"ok": 0, "fault": 0, "unexpected": 0}
    for name, *_ in KINDS:
        c = load.counts[name]
        for k in total:
            total[k] += c[k]
        print("%-16s %9d %9d %9d %11d" % (name, sum(c.values()), c["ok"], c["fault"], c["unexpected"]))
    print("%-16s %9d %9d %9d %11d" % ("all", sum(total.values()), total["ok"], total["fault"], total["unexpected"]))
    for line in load.kept:
        print("unexpected: " + line)
    first, last = rss_windows(p, rows)
    peak = max([row["rss_kib"] for row in rows] or [0])
    print("\nrefreshes          %d (token lifetime %g s)" % (r["refreshes"], p["lifetime"]))
    print("RSS                start %s, floor after warm-up %s, floor at the end %s, peak %s" % (
        mib(r["rss_start"]), mib(first or 0), mib(last or 0), mib(peak)))
    end = r.get("end") or {}
    print("descriptors        idle %d, peak %d, end %s (upstream kept alive: idle %d, end %s)" % (
        r["idle"]["total"], max([row["fds"] for row in rows] or [0]), end.get("total", "-"), r["idle"]["upstream"],
        end.get("upstream", "-")))
    if "cpu_end" in r:
        used = r["cpu_end"] - r["cpu_start"]
        print("CPU                %.1f s (%.0f%% of one core)" % (used, 100 * used / p["run"]))
    print("samples            %s" % os.path.relpath(csv_path, ROOT))
    print("serve's log        %s\n" % os.path.relpath(log_path, ROOT))


def main():
    try:
        minutes = float(os.environ.get("SOAK_MINUTES") or 30)
    except ValueError:
        minutes = float("nan")
    if not 0 < minutes < 100000:
        print("soak: SOAK_MINUTES must be a number of minutes above 0 (30, or 0.5 for a quick look), got %r"
              % os.environ.get("SOAK_MINUTES"))
        return 2
    if not os.access(KIMICTL, os.X_OK):
        print("soak: no kimictl at %s: run make first (or set KIMICTL)" % KIMICTL)
        return 2
    p = plan(minutes)
    socket.setdefaulttimeout(60)   # a deadline for every socket without its own (the fake's /_stats)
    os.makedirs(OUT_DIR, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    csv_path, log_path = (os.path.join(OUT_DIR, name % stamp) for name in ("soak-%s.csv", "serve-%s.log"))
    print("soak: kimictl serve for %g min, about %d requests/s from %d workers; the token dies every %g s; "
          "warm-up %g s; a sample every %g s" % (minutes, RATE, WORKERS, p["lifetime"], p["warmup"], p["sample"]),
          flush=True)
    with Home() as home, Server("fake_kimi.py", "--ttl", "%g" % p["lifetime"], "--expires-in", str(CLAIMED_S)) as srv:
        # the login's file says the first token is due for a refresh 2 s before it dies (Kimi
        # CLI's rule: within max(300 s, half the lifetime) of expires_at)
        write_kimi_cli_file(home, call(srv, "/_seed"), time.time() + p["lifetime"] - 2 + max(300, CLAIMED_S / 2))
        gw = Gateway(patched_env(home, srv, idle_ms=IDLE_MS))
        try:
            r = drive(p, gw, srv, csv_path)
            r["exit"] = sigterm(gw)
        except Exception:
            print(redact(traceback.format_exc()).rstrip())
            print("not ok - the soak could not run (above: why)\n0 passed, 1 failed")
            return 1
        finally:
            shutil.copyfile(gw.err_path, log_path)
            gw.close()
    with open(log_path, errors="replace") as f:
        log = f.read()
    r["tracebacks"], r["tokens_logged"] = log.count("stack traceback"), len(TOKEN.findall(log))
    summary(p, r, csv_path, log_path)
    results = verdicts(p, r)
    for ok, what in results:
        print("%s - %s" % ("ok" if ok else "not ok", what))
    passed = sum(1 for ok, _ in results if ok)
    print("%d passed, %d failed" % (passed, len(results) - passed))
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
