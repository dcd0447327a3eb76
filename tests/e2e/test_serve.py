"""`kimictl serve` (issue 7) in front of the fake Kimi: the official openai client through the
gateway, a token expiring under load, a hundred streams at once, cancel on disconnect, a cut
upstream, the refusals of a localhost API, drain on SIGTERM, logs without secrets, /v1/models
and /healthz. Node tests install the pinned `openai` package with tests/node/setup.sh."""
import contextlib
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import types

from harness import KIMICTL, ROOT, Home, Server, check, run, test, wait_for
from test_auth import call, creds_path, kimi_env, read_like_kimi_cli, write_kimi_cli_file

CHAT = "/v1/chat/completions"
NODE_DIR = os.path.join(ROOT, "tests", "node")
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z POST /v1/chat/completions kimi kimi-for-coding 200 "
                      r"\d+B \d+(\.\d+)?ms ttfb=\d+(\.\d+)?ms id=fake-\d+$")


def first_token(gw, prompt):
    """A streamed chat through the gateway, read up to its first token:
    (connection, response, bytes seen)."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    conn.request("POST", CHAT, json.dumps(chat_body(prompt)), {"Content-Type": "application/json"})
    r = conn.getresponse()
    seen = b""
    while b"t0 " not in seen:
        line = r.readline()
        if not line:
            break
        seen += line
    return conn, r, seen


class Gateway:
    """`kimictl serve --listen 127.0.0.1:0 ARGS` with the given environment. The port comes from
    the first line it prints; the rest of stdout is kept in .out, stderr in a file (.stderr()).
    Leaving the block kills the process if it is still running."""

    def __init__(self, env, *args, exe=KIMICTL):
        self.tmp = tempfile.mkdtemp(prefix="kimictl-serve-")
        self.err_path = os.path.join(self.tmp, "stderr")
        self.err_file = open(self.err_path, "wb")
        self.proc = subprocess.Popen([exe, "serve", "--listen", "127.0.0.1:0", *args], env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.err_file)
        self.out = b""
        fd = self.proc.stdout.fileno()
        deadline = time.time() + 30
        while b"\n" not in self.out and time.time() < deadline:
            if select.select([fd], [], [], 1)[0]:
                data = os.read(fd, 4096)
                if not data:
                    break
                self.out += data
        m = re.search(rb"http://127\.0\.0\.1:(\d+)/v1", self.out.split(b"\n")[0])
        if not m:
            err = self.stderr()
            self.close()
            raise AssertionError("serve announced no port; stdout %r, stderr %r" % (self.out, err))
        self.port = int(m.group(1))
        self.url = "http://127.0.0.1:%d" % self.port
        threading.Thread(target=self._read_rest, args=(fd,), daemon=True).start()

    def _read_rest(self, fd):
        """Keep reading stdout, so a full pipe never blocks the gateway."""
        try:
            for data in iter(lambda: os.read(fd, 4096), b""):
                self.out += data
        except OSError:
            pass

    def stderr(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.err_file.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@contextlib.contextmanager
def serving(*serve_args, fake=(), login=True, config=None, **env):
    """The fake Kimi, a login for it (Kimi CLI's file, valid for 15 minutes) unless login=False,
    config.lua's text if given, and a gateway in front of it."""
    with Home() as home, Server("fake_kimi.py", *fake) as srv:
        tok = call(srv, "/_seed")
        if login:
            write_kimi_cli_file(home, tok, time.time() + 900)
        if config:
            home.config(config)
        with Gateway(kimi_env(home, srv, **env), *serve_args) as gw:
            yield types.SimpleNamespace(home=home, srv=srv, tok=tok, gw=gw)


def stats(srv):
    return call(srv, "/_stats")


def chat_body(prompt="hi", stream=True, model="kimi-for-coding"):
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": prompt}]}


def request(gw, method, path, body=None, headers=None, timeout=60):
    """One request on a new connection: (status, headers with lower-case names, body bytes).
    A chunked body that does not end well-formed raises http.client.IncompleteRead."""
    headers = dict(headers or {})
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def data_events(body):
    """The data of each server-sent event, in order ("[DONE]" included)."""
    out = []
    for line in body.decode().split("\n"):
        if line.startswith("data:"):
            out.append(line[6:] if line.startswith("data: ") else line[5:])
    return out


def text_of(events):
    """The content the chunks of a stream carry, joined."""
    text = ""
    for e in events:
        if e != "[DONE]":
            for c in json.loads(e).get("choices") or []:
                text += c.get("delta", {}).get("content") or ""
    return text


def error_of(status, body, want):
    """The error object of a refusal, after checking the status and the body's shape."""
    check(status == want, "status %d, wanted %d: %r" % (status, want, body))
    err = json.loads(body).get("error")
    check(isinstance(err, dict) and isinstance(err.get("message"), str) and isinstance(err.get("type"), str),
          "error body %r" % body)
    return err


def parallel(n, fn):
    """fn(i) for i in range(n), each in its own thread: the results, or the exceptions raised."""
    results = [None] * n

    def one(i):
        try:
            results[i] = fn(i)
        except Exception as e:  # reported by the caller with the others
            results[i] = e
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


_node_ready = []


def node_script(script, *args):
    """tests/node/SCRIPT ARGS (the pinned npm packages installed first): its one line of JSON."""
    if not shutil.which("node"):
        raise AssertionError("node is needed for this test: apt-get install nodejs")
    if not _node_ready:
        r = subprocess.run([os.path.join(NODE_DIR, "setup.sh")], capture_output=True, text=True, timeout=300)
        check(r.returncode == 0, "tests/node/setup.sh failed: " + r.stderr)
        _node_ready.append(True)
    r = subprocess.run(["node", os.path.join(NODE_DIR, script), *args], capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, "%s %s failed: %s" % (script, " ".join(args[2:]), r.stderr))
    return json.loads(r.stdout)


def node_client(gw, mode, key="local"):
    """tests/node/openai_client.mjs against the gateway."""
    return node_script("openai_client.mjs", gw.url + "/v1", key, mode)


# --- the official client through the gateway ---------------------------------------------

@test
def the_openai_client_works_through_the_gateway():
    with serving() as s:
        check(node_client(s.gw, "plain") == {"content": "OK"}, "plain answer")
        r = node_client(s.gw, "stream")
        check(r["content"] == "Hello from Kimi" and r["chunks"] == 4, r)
        check(r["usage"] == {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}, "usage lost: %r" % r)
        r = node_client(s.gw, "tool")
        check(r == {"tool_name": "get_weather", "arguments": {"city": "Paris"}, "final": "tool said: sunny in Paris"}, r)
        st = stats(s.srv)
        check(st["chat_calls"] == 4 and st["client_keys_forwarded"] == 0, st)
        for q in [q for q in s.srv.requests() if q["path"] == "/coding/v1/chat/completions"]:
            h, body = q["headers"], json.loads(q["body"])
            check(h["authorization"] == "Bearer " + s.tok["access_token"], "upstream got another token")
            check(h["user-agent"].startswith("kimictl/") and h["x-msh-platform"] == "kimictl", h)
            check(body["model"] == "kimi-for-coding" and body.get("prompt_cache_key"), body)


@test
def a_provider_prefix_picks_the_provider():
    with Home() as home, Server("fake_kimi.py") as srv, Server("fake_openai.py") as oai:
        write_kimi_cli_file(home, call(srv, "/_seed"), time.time() + 900)
        env = kimi_env(home, srv, OPENAI_BASE_URL=oai.url() + "/v1", OPENAI_API_KEY="test-key")
        with Gateway(env) as gw:
            status, _, body = request(gw, "POST", CHAT, chat_body(model="openai/echo"))
            check(status == 200 and text_of(data_events(body)) == "Hello from the fake server", (status, body))
            q = [q for q in oai.requests() if q["method"] == "POST"][-1]
            check(json.loads(q["body"])["model"] == "echo" and q["headers"]["authorization"] == "Bearer test-key", q)
            check(stats(srv)["chat_calls"] == 0, "the kimi upstream was called")


# --- tokens -------------------------------------------------------------------------------

@test
def a_token_expiring_mid_run_is_refreshed_once():
    with serving() as s:
        status, _, body = request(s.gw, "POST", CHAT, chat_body())
        check(status == 200 and text_of(data_events(body)) == "Hello from Kimi", (status, body))
        # The server retires the token while the file still says 15 minutes: upstream answers 401.
        call(s.srv, "/_expire")
        results = parallel(8, lambda i: request(s.gw, "POST", CHAT, chat_body(stream=i % 2 == 0)))
        for i, r in enumerate(results):
            check(not isinstance(r, Exception) and r[0] == 200, "request %d: %r" % (i, r))
            answer = text_of(data_events(r[2])) if i % 2 == 0 else json.loads(r[2])["choices"][0]["message"]["content"]
            check(answer == ("Hello from Kimi" if i % 2 == 0 else "OK"), "request %d: %r" % (i, r[2]))
        check(stats(s.srv)["refresh_calls"] == 1, "refresh calls: %d" % stats(s.srv)["refresh_calls"])
        doc = read_like_kimi_cli(creds_path(s.home))
        check(doc["access_token"] != s.tok["access_token"] and doc["refresh_token"] != s.tok["refresh_token"],
              "the refreshed login was not saved")
        status, _, _ = request(s.gw, "POST", CHAT, chat_body())
        check(status == 200 and stats(s.srv)["refresh_calls"] == 1, "the new token was not kept")


# --- streams --------------------------------------------------------------------------------

@test
def tokens_reach_the_client_while_upstream_still_streams():
    with serving() as s:
        conn, r, seen = first_token(s.gw, "slow 40")
        st = stats(s.srv)                     # the first token is here: upstream has 39 to go
        check(b"t0 " in seen and st["streams_active"] == 1 and st["streams_finished"] == 0,
              "the first token came only after the upstream stream ended: %r" % st)
        check(r.getheader("content-type", "").startswith("text/event-stream"), r.getheaders())
        ev = data_events(seen + r.read())
        conn.close()
        check(text_of(ev[:-1]) == "".join("t%d " % i for i in range(40)) and ev[-1] == "[DONE]", ev[-3:])


@test
def a_hundred_streams_at_once_arrive_intact():
    n, tokens = 100, 60                       # 3 s each: they can only all overlap if none waits
    with serving() as s:
        ready = threading.Barrier(n)

        def one(i):
            conn = http.client.HTTPConnection("127.0.0.1", s.gw.port, timeout=60)
            try:
                conn.connect()
                ready.wait(30)                # every client connected: now all ask at once
                conn.request("POST", CHAT, json.dumps(chat_body("slow %d" % tokens)),
                             {"Content-Type": "application/json"})
                r = conn.getresponse()
                return r.status, data_events(r.read())
            finally:
                conn.close()
        results = parallel(n, one)
        want = "".join("t%d " % i for i in range(tokens))
        bad = [r for r in results
               if isinstance(r, Exception) or r[0] != 200 or r[1][-1:] != ["[DONE]"] or text_of(r[1][:-1]) != want]
        check(not bad, "%d of %d streams broken; the first: %r" % (len(bad), n, bad[:1]))
        wait_for(lambda: stats(s.srv)["streams_finished"] == n, 10, "the fake to count %d finished streams" % n)
        st = stats(s.srv)
        check(st["max_concurrent_streams"] == n, "the streams did not all run at once upstream: %r" % st)


@test
def a_client_going_away_cancels_the_upstream_stream():
    with serving() as s:
        body = json.dumps(chat_body("slow 200")).encode()    # 10 s if nobody cancels it
        sock = socket.create_connection(("127.0.0.1", s.gw.port), timeout=30)
        sock.sendall(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (CHAT.encode(), s.gw.port, len(body), body))
        seen = b""
        while b"t1 " not in seen:
            data = sock.recv(4096)
            if not data:
                break
            seen += data
        check(b"t1 " in seen, "the stream did not start: %r" % seen)
        sock.close()
        wait_for(lambda: stats(s.srv)["streams_broken"] == 1, 5, "the upstream stream to be cancelled")
        st = stats(s.srv)
        check(st["streams_active"] == 0 and st["streams_finished"] == 0, st)
        check(request(s.gw, "GET", "/healthz")[0] == 200, "not serving after a disconnect")
        line = s.gw.stderr().splitlines()[0]   # what was sent (200), and that the client left
        check(" 200 " in line and line.endswith(" error=client_gone"), line)


@test
def an_upstream_cut_ends_the_stream_with_an_error_event():
    with serving() as s:
        try:
            status, _, body = request(s.gw, "POST", CHAT, chat_body("cut"))
        except http.client.IncompleteRead as e:
            raise AssertionError("the stream did not end well-formed: %r" % e.partial)
        ev = data_events(body)
        check(status == 200 and len(ev) == 4 and text_of(ev[:2]) == "Hello from", ev)
        err = json.loads(ev[2]).get("error")
        check(isinstance(err, dict) and err.get("type") == "upstream_error" and err.get("message"), ev[2])
        check(ev[3] == "[DONE]", ev)
        check(request(s.gw, "GET", "/healthz")[0] == 200, "not serving after a cut upstream")


@test
def upstream_refusals_keep_their_status():
    for args, want in ((("--api-error", "429"), 429), (("--api-error", "402"), 402),
                       (("--allowed-agents", "KimiCLI/"), 403)):
        with serving(fake=args) as s:
            for stream in (True, False):
                status, _, body = request(s.gw, "POST", CHAT, chat_body(stream=stream))
                error_of(status, body, want)


# --- refusals -------------------------------------------------------------------------------

def raw_exchange(port, data, timeout=10):
    """Send raw bytes; everything the server answers until it closes (timeout s between reads)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(data)
        got = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return got
            got += chunk
    finally:
        sock.close()


@test
def refusals_answer_and_the_server_keeps_serving():
    app = "http://app.example"
    with serving("--allow-origin", app, "--max-body", "4096") as s:
        port = s.gw.port

        def serving_still(after):
            status, _, body = request(s.gw, "GET", "/v1/models")
            check(status == 200, "not serving after %s: %d %r" % (after, status, body))

        for host in ("evil.example", "evil.example:%d" % port, "127.0.0.1.evil.example", "localhost.evil.example"):
            err = error_of(*request(s.gw, "GET", "/v1/models", headers={"Host": host})[::2], want=403)
            check(err["type"] == "forbidden", err)
            serving_still("Host " + host)
        for host in ("localhost", "localhost:%d" % port, "127.0.0.1", "[::1]:%d" % port):
            check(request(s.gw, "GET", "/v1/models", headers={"Host": host})[0] == 200, "Host %s refused" % host)

        status, _, body = request(s.gw, "POST", CHAT, chat_body(), {"Origin": "http://evil.example"})
        error_of(status, body, 403)
        serving_still("a foreign Origin")
        check(request(s.gw, "GET", "/v1/models", headers={"Origin": app})[0] == 200, "allowed origin refused")
        pre = {"Origin": app, "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "authorization, content-type"}
        status, h, _ = request(s.gw, "OPTIONS", CHAT, headers=pre)
        check(status == 204 and h.get("access-control-allow-origin") == app, (status, h))
        check("POST" in h.get("access-control-allow-methods", ""), h)
        status, _, body = request(s.gw, "OPTIONS", CHAT, headers=dict(pre, Origin="http://evil.example"))
        error_of(status, body, 403)

        big = chat_body("x" * 5000)
        error_of(*request(s.gw, "POST", CHAT, big)[::2], want=413)
        serving_still("413")
        error_of(*request(s.gw, "GET", "/v1/models", headers={"X-Big": "a" * 17000})[::2], want=431)
        serving_still("431")

        answer = raw_exchange(port, b"NOT HTTP AT ALL\r\n\r\n")     # ends when the server closes
        check(answer.startswith(b"HTTP/1.1 400 "), "malformed request: %r" % answer[:200])
        serving_still("a malformed request")

        error_of(*request(s.gw, "GET", "/v1/nope")[::2], want=404)
        error_of(*request(s.gw, "GET", "/nope")[::2], want=404)
        error_of(*request(s.gw, "GET", CHAT)[::2], want=405)
        error_of(*request(s.gw, "DELETE", "/v1/models")[::2], want=405)
        error_of(*request(s.gw, "POST", CHAT, b"{not json", {"Content-Type": "application/json"})[::2], want=400)
        serving_still("404, 405 and 400")
        check(stats(s.srv)["chat_calls"] == 0, "a refused request reached upstream")


@test
def an_api_key_is_required_when_set_and_never_forwarded():
    key = "sekrit-key-123"
    with Home() as home:
        key_file = os.path.join(home.path, "key")
        with open(key_file, "w") as f:
            f.write(key + "\n")
        for args in (("--api-key", key), ("--api-key-file", key_file)):
            with serving(*args) as s:
                for h in ({}, {"Authorization": "Bearer wrong"}, {"x-api-key": "wrong"},
                          {"Authorization": "Bearer " + key + "4"}, {"Authorization": "Bearer " + key[:-1]}):
                    error_of(*request(s.gw, "POST", CHAT, chat_body(), h)[::2], want=401)
                for h in ({"Authorization": "Bearer " + key}, {"x-api-key": key}):
                    status, _, body = request(s.gw, "POST", CHAT, chat_body(), h)
                    check(status == 200 and text_of(data_events(body)) == "Hello from Kimi", (args, h, status, body))
                st = stats(s.srv)
                check(st["chat_calls"] == 2 and st["client_keys_forwarded"] == 0, st)
                check(key not in s.gw.stderr(), "the key is in the log")


@test
def start_up_refusals():
    with Home() as home, Server("fake_kimi.py") as srv:
        env = kimi_env(home, srv)
        r = run(["serve", "--listen", "0.0.0.0:0"], env, timeout=20)
        check(r.returncode == 2 and r.stderr.strip(), "non-loopback without a key: exit %d %r" % (r.returncode, r.stderr))
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        try:
            addr = "127.0.0.1:%d" % busy.getsockname()[1]
            r = run(["serve", "--listen", addr], env, timeout=20)
            check(r.returncode == 1 and addr in r.stderr, "port in use: exit %d %r" % (r.returncode, r.stderr))
        finally:
            busy.close()


# --- life cycle and logs ----------------------------------------------------------------------

def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


@test
def sigterm_lets_a_stream_in_flight_finish():
    tokens = 60                               # 3 s: SIGTERM arrives near its start
    with serving() as s:
        conn, r, seen = first_token(s.gw, "slow %d" % tokens)
        check(r.status == 200 and b"t0 " in seen and b"[DONE]" not in seen, (r.status, seen))
        s.gw.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: refused(s.gw.port), 2.5, "the gateway to stop accepting")
        try:
            rest = r.read()
        except http.client.IncompleteRead as e:
            raise AssertionError("the stream was cut at SIGTERM: %r" % e.partial[-200:])
        ev = data_events(seen + rest)
        check(ev[-1:] == ["[DONE]"] and text_of(ev[:-1]) == "".join("t%d " % i for i in range(tokens)), ev[-3:])
        conn.close()
        code = s.gw.proc.wait(timeout=15)
        check(code == 0, "exit %d after SIGTERM: %s" % (code, s.gw.stderr()))


@test
def a_stream_outliving_the_drain_is_cut_and_logged_as_such():
    with serving(config="return { serve = { drain_ms = 300 } }\n") as s:
        conn, r, seen = first_token(s.gw, "slow 200")   # 10 s, far past the drain
        check(r.status == 200 and b"t0 " in seen, (r.status, seen))
        t0 = time.time()
        s.gw.proc.send_signal(signal.SIGTERM)
        code = s.gw.proc.wait(timeout=15)
        check(code == 0 and time.time() - t0 < 5, "exit %d after %.1f s" % (code, time.time() - t0))
        conn.close()
        line = s.gw.stderr().splitlines()[-1]
        check(" 200 " in line and line.endswith(" error=shutdown"), line)


@test
def logs_a_line_per_request_and_no_secret():
    key = "client-key-456"
    with serving("--api-key", key) as s:
        auth = {"Authorization": "Bearer " + key}
        check(request(s.gw, "POST", CHAT, chat_body(), auth)[0] == 200, "first request")
        call(s.srv, "/_expire")                               # the next one refreshes
        check(request(s.gw, "POST", CHAT, chat_body(), auth)[0] == 200, "request after expiry")
        check(request(s.gw, "GET", "/v1/models", headers=auth)[0] == 200, "models")

        def chat_lines():
            return [l for l in s.gw.stderr().splitlines() if " POST /v1/chat/completions " in l]
        wait_for(lambda: len(chat_lines()) == 2, 5, "two log lines for two chat requests")
        for line in chat_lines():
            check(LOG_LINE.match(line), "log line %r" % line)
        new = read_like_kimi_cli(creds_path(s.home))
        check(new["access_token"] != s.tok["access_token"], "no refresh happened")
        err, out = s.gw.stderr(), s.gw.out.decode(errors="replace")
        for secret in (s.tok["access_token"], s.tok["refresh_token"], new["access_token"], new["refresh_token"], key):
            check(secret not in err and secret not in out, "a secret is in serve's output")


@test
def json_logs_name_the_upstream_request():
    with serving("--log-format", "json") as s:
        check(request(s.gw, "POST", CHAT, chat_body())[0] == 200, "request")

        def entries():
            out = []
            for line in s.gw.stderr().splitlines():
                try:
                    doc = json.loads(line)
                except ValueError:
                    continue
                if isinstance(doc, dict) and doc.get("path") == CHAT:
                    out.append(doc)
            return out
        wait_for(lambda: len(entries()) == 1, 5, "a JSON log line for the request")
        e = entries()[0]
        check(e["method"] == "POST" and e["provider"] == "kimi" and e["model"] == "kimi-for-coding", e)
        check(e["status"] == 200 and isinstance(e["bytes"], int) and e["bytes"] > 0, e)
        check(isinstance(e["duration_ms"], (int, float)) and isinstance(e["ttfb_ms"], (int, float)), e)
        check(str(e["upstream_id"]).startswith("fake-") and isinstance(e["time"], str), e)


def with_key(doc, key):
    """Every object in a JSON document that has the key."""
    if isinstance(doc, dict):
        if key in doc:
            yield doc
        for v in doc.values():
            yield from with_key(v, key)
    elif isinstance(doc, list):
        for v in doc:
            yield from with_key(v, key)


@test
def models_healthz_and_the_banner():
    with serving() as s:
        status, _, body = request(s.gw, "GET", "/v1/models")
        doc = json.loads(body)
        check(status == 200 and doc["object"] == "list", doc)
        ids = {m["id"]: m for m in doc["data"]}
        check(ids.get("kimi/kimi-for-coding", {}).get("owned_by") == "kimi", doc)
        check(ids["kimi/kimi-for-coding"]["object"] == "model" and "kimi-for-coding" in ids, doc)
        status, _, body = request(s.gw, "GET", "/healthz")
        check(status == 200 and json.loads(body)["status"] == "ok", body)
        base = s.gw.url + "/v1"
        lines = s.gw.out.decode().split("\n")
        check(lines[0] == "kimictl serve: listening on %s (default provider kimi)" % base, lines[0])

        def entry():
            rest = s.gw.out.decode().split("\n", 2)
            try:
                return rest[1] == "" and json.JSONDecoder().raw_decode(rest[2].strip())[0]
            except (IndexError, ValueError):
                return None
        wait_for(entry, 5, "the OpenClaw provider entry after a blank line")
        providers = list(with_key(entry(), "baseUrl"))
        check(any(p["baseUrl"] == base and p.get("api") == "openai-completions" for p in providers), entry())
    with serving(login=False) as s:
        status, _, body = request(s.gw, "GET", "/healthz")
        doc = json.loads(body)
        check(status == 503 and doc["status"] == "unavailable", (status, doc))
        check(isinstance(doc.get("cause"), str) and doc["cause"], doc)


@test
def an_error_in_a_request_answers_500_and_the_next_one_succeeds():
    # A user.lua mapping that raises on one prompt: that request gets a 500 in OpenAI's shape,
    # the log names the error with its place, and the gateway answers the next request.
    boom = """return { providers = { kimi = { chat_request = function(p, body)
  if body.messages[1].content == "boom" then error("the mapping broke") end
end } } }
"""
    with Home() as home, Server("fake_kimi.py") as srv:
        write_kimi_cli_file(home, call(srv, "/_seed"), time.time() + 900)
        env = kimi_env(home, srv)
        with open(os.path.join(env["KIMICTL_LUA_DIR"], "user.lua"), "w") as f:
            f.write(boom)
        with Gateway(env) as gw:
            status, _, body = request(gw, "POST", CHAT, chat_body("boom", stream=False))
            check(status == 500 and json.loads(body)["error"]["type"] == "server_error", (status, body))
            status, _, body = request(gw, "POST", CHAT, chat_body("hi", stream=False))
            check(status == 200 and json.loads(body)["choices"][0]["message"]["content"] == "OK", (status, body))
            wait_for(lambda: "the mapping broke" in gw.stderr(), 5, "the error in the log")
            err = gw.stderr()
            check("user.lua" in err and "stack traceback" in err, err)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


@test
def headers_that_do_not_arrive_in_time_get_408():
    # serve.header_timeout_ms from config.lua, shortened so the test need not wait 10 s: a
    # client that sends half its headers gets 408 and the connection closes; others are served.
    with Home() as home, Server("fake_kimi.py") as srv:
        write_kimi_cli_file(home, call(srv, "/_seed"), time.time() + 900)
        conf = os.path.join(home.path, ".config", "kimictl")
        os.makedirs(conf, exist_ok=True)
        with open(os.path.join(conf, "config.lua"), "w") as f:
            f.write("return { serve = { header_timeout_ms = 300 } }\n")
        with Gateway(kimi_env(home, srv)) as gw:
            sock = socket.create_connection(("127.0.0.1", gw.port), timeout=20)
            try:
                sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                got = b""
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            finally:
                sock.close()
            check(got.startswith(b"HTTP/1.1 408 "), "half a request: %r" % got[:200])
            check(b"did not arrive within 300 ms" in got, got)
            status, _, body = request(gw, "POST", CHAT, chat_body(stream=False))
            check(status == 200, "not serving after a 408: %d %r" % (status, body))


@test
def a_slow_client_holds_the_upstream_back_instead_of_filling_memory():
    # A 100 MB streamed answer to a client that stops reading: the gateway's queues fill, it
    # pauses the upstream transfer, the fake blocks in its writes, and the gateway's memory
    # stays far below the answer's size. Reading again delivers every event, in order.
    n = 50000
    # Under AddressSanitizer, freed blocks wait in a quarantine (256 MB) before reuse: keep it
    # small here, where the figure is live memory.
    asan = os.environ.get("ASAN_OPTIONS")
    with serving(**({"ASAN_OPTIONS": asan + ":quarantine_size_mb=4"} if asan else {})) as s:
        base = rss_kib(s.gw.proc.pid)
        sock = socket.create_connection(("127.0.0.1", s.gw.port), timeout=60)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        try:
            body = json.dumps(chat_body("flood %d" % n)).encode()
            sock.sendall(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % (CHAT.encode(), len(body)) + body)
            wait_for(lambda: stats(s.srv)["streams_started"] == 1, 30, "the upstream stream to start")
            time.sleep(3)   # not reading: time for the queues to fill and the fake to block
            st = stats(s.srv)
            check(st["streams_active"] == 1 and st["streams_finished"] == 0,
                  "the fake was not held back: %r" % st)
            grown = rss_kib(s.gw.proc.pid) - base
            check(grown < 32 * 1024, "the gateway grew by %d KiB for a client that does not read" % grown)
            got = bytearray()
            while not got.endswith(b"\r\n0\r\n\r\n"):   # the last chunk
                chunk = sock.recv(1 << 20)
                check(chunk, "the stream ended early after %d bytes" % len(got))
                got += chunk
        finally:
            sock.close()
        head, _, chunked = bytes(got).partition(b"\r\n\r\n")
        check(head.startswith(b"HTTP/1.1 200 "), head[:200])
        text = re.sub(rb"\r\n[0-9a-f]+\r\n", b"", b"\r\n" + chunked)
        numbers = re.findall(rb'"content": ?"(\d{6})x', text)
        check(text.rstrip(b"\r\n").endswith(b"data: [DONE]"), text[-200:])
        check(len(numbers) == n and numbers == [b"%06d" % i for i in range(n)],
              "%d of %d tokens arrived, in order: %s" % (len(numbers), n, numbers[:3] == [b"000000", b"000001", b"000002"]))
        wait_for(lambda: stats(s.srv)["streams_finished"] == 1, 30, "the fake to finish its stream")


@test
def a_login_another_program_refreshed_is_used_at_once():
    # The gateway keeps the parsed credential file until the file changes: when Kimi CLI
    # refreshes (a new file), the next request sends the new token, with no refresh of its own.
    with serving() as s:
        check(request(s.gw, "POST", CHAT, chat_body(stream=False))[0] == 200, "first request")
        call(s.srv, "/_expire")                  # the token the gateway read is dead now
        fresh = call(s.srv, "/_seed")
        write_kimi_cli_file(s.home, fresh, time.time() + 900)   # as Kimi CLI saves its refresh
        for _ in range(3):
            status, _, body = request(s.gw, "POST", CHAT, chat_body(stream=False))
            check(status == 200, (status, body))
        st = stats(s.srv)
        check(st["refresh_calls"] == 0, "the gateway refreshed instead of reading the new file: %r" % st)
        check(read_like_kimi_cli(creds_path(s.home))["access_token"] == fresh["access_token"], "the file is ours")


@test
def a_refresh_still_works_after_the_binary_is_replaced():
    # An upgrade replaces the file serve was started from. Its refresh worker must run the
    # binary serve is, not whatever the path names now (here a script that fails) or nothing.
    with Home() as home, Server("fake_kimi.py") as srv:
        tok = call(srv, "/_seed")
        write_kimi_cli_file(home, tok, time.time() + 900)
        exe = os.path.join(home.path, "kimictl")
        shutil.copy(KIMICTL, exe)
        with Gateway(kimi_env(home, srv), exe=exe) as gw:
            check(request(gw, "POST", CHAT, chat_body(stream=False))[0] == 200, "first request")
            with open(exe + ".new", "w") as f:
                f.write("#!/bin/sh\necho 'the replaced file ran' >&2\nexit 3\n")
            os.chmod(exe + ".new", 0o755)
            os.replace(exe + ".new", exe)           # as a package manager or `make` does
            call(srv, "/_expire")
            status, _, body = request(gw, "POST", CHAT, chat_body(stream=False))
            check(status == 200, "after the upgrade: %r %r" % (status, body))
            check(stats(srv)["refresh_calls"] == 1, "refresh calls: %d" % stats(srv)["refresh_calls"])
            check("the replaced file ran" not in gw.stderr(), gw.stderr())
            os.remove(exe)                          # and when the path names nothing at all
            call(srv, "/_expire")
            status, _, body = request(gw, "POST", CHAT, chat_body(stream=False))
            check(status == 200 and stats(srv)["refresh_calls"] == 2, "after removal: %r %r" % (status, body))
