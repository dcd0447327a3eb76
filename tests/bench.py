"""make bench: start-up time, the cost of new HTTP(S) connections, and what `kimictl serve`
adds in front of a fast upstream, beside a peer gateway (claude-code-router) in front of the
same upstream, measured in one run. Prints tables, then one table of ratios; keeps the raw
figures in build/bench/. Not a test: nothing here passes or fails.

python3 tests/bench.py [gateway]   (gateway: skip the process and connection rows)"""
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "e2e"))
from harness import KIMICTL, Server, certs  # noqa: E402

UPSTREAM = os.path.join(ROOT, "build", "tests", "upstream")
STREAMS = os.path.join(HERE, "bench", "streams.py")
RAW = os.path.join(ROOT, "build", "bench")
CCR_VERSION = "1.0.73"
CCR_DIR = os.path.join(ROOT, "build", "ccr")
CCR = os.path.join(CCR_DIR, "node_modules", ".bin", "ccr")
R = {}   # every figure of this run, by name: printed as ratios at the end and kept in RAW

REQUESTS = r'''
local core = require "core"
local url, n, close = ...
local times = {}
for i = 1, tonumber(n) do
  local t0 = core.proc.now()
  local res, err = core.http.request{ url = url, headers = { ["X-Close"] = close == "1" and "1" or false } }
  assert(res and res.status == 200, err)
  times[i] = (core.proc.now() - t0) * 1000
end
print(table.concat(times, " "))
'''


def med(xs):
    return statistics.median(xs)


def spawn_ms(cmd, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def requests_ms(script, url, n, close, env=None):
    r = subprocess.run([KIMICTL, "lua", script, url, str(n), "1" if close else "0"],
                       capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit("bench request failed: " + r.stderr)
    return [float(x) for x in r.stdout.split()]


def row(name, ms, note=""):
    q = statistics.quantiles(ms, n=10) if len(ms) > 1 else ms * 9
    print("| %-44s | %8.2f | %8.2f | %s" % (name, med(ms), q[8], note))


def processes_and_connections():
    tmp = tempfile.mkdtemp(prefix="kimictl-bench-")
    script = os.path.join(tmp, "requests.lua")
    with open(script, "w") as f:
        f.write(REQUESTS)
    c = certs(tmp)
    bundle = os.path.join(tmp, "bundle.pem")
    with open(bundle, "w") as f:
        f.write(open("/etc/ssl/certs/ca-certificates.crt").read() + open(c["ca"]).read())
    env = dict(os.environ, SSL_CERT_FILE=c["ca"])

    print("| %-44s | %8s | %8s |" % ("what (times in ms)", "median", "p90"))
    print("|%s|%s|%s|" % ("-" * 46, "-" * 10, "-" * 10))
    R["true_ms"] = spawn_ms(["/bin/true"], 200)
    R["version_ms"] = spawn_ms([KIMICTL, "--version"], 200)
    row("start a process: /bin/true (baseline)", R["true_ms"])
    row("kimictl --version", R["version_ms"],
        "%.2f ms over baseline" % (med(R["version_ms"]) - med(R["true_ms"])))
    with Server("fake_openai.py") as plain, Server("fake_openai.py", tls=c["server"]) as tls:
        http_url = plain.url() + "/v1/models"
        https_url = tls.url("https", "localhost") + "/v1/models"
        reuse_http = requests_ms(script, http_url, 200, False, env)[1:]
        new_http = requests_ms(script, http_url, 200, True, env)
        reuse_https = requests_ms(script, https_url, 200, False, env)[1:]
        new_https = requests_ms(script, https_url, 200, True, env)
        R["https_new_minus_http_new_ms"] = med(new_https) - med(new_http)
        row("HTTP request, reused connection", reuse_http)
        row("HTTP request, new connection each time", new_http)
        row("HTTPS request, reused connection", reuse_https)
        row("HTTPS request, new connection each time", new_https,
            "new TLS connection costs %.2f ms" % R["https_new_minus_http_new_ms"])
        first_small = [requests_ms(script, https_url, 1, True, env)[0] for _ in range(20)]
        first_bundle = [requests_ms(script, https_url, 1, True, dict(env, SSL_CERT_FILE=bundle))[0]
                        for _ in range(20)]
        R["first_https_ms"] = first_small
        row("first HTTPS request, 1 CA in SSL_CERT_FILE", first_small)
        row("first HTTPS request, %d-cert SSL_CERT_FILE" % open(bundle).read().count("BEGIN CERT"), first_bundle,
            "decoding it once: %.2f ms (the built-in roots need none)" % (med(first_bundle) - med(first_small)))
    print("\nThe fake servers are Python: their own time is inside every request figure.")
    shutil.rmtree(tmp, ignore_errors=True)


# --- the gateways: kimictl serve and claude-code-router in front of build/tests/upstream
# (C, libuv), driven by wrk. Both take OpenAI chat completions and Anthropic messages; the
# baseline is the same OpenAI request sent to the upstream directly.

def wrk_script(tmp, name, body, headers=None):
    path = os.path.join(tmp, name + ".lua")
    with open(path, "w") as f:
        f.write('wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n'
                % json.dumps(json.dumps(body)))
        for k, v in (headers or {}).items():
            f.write('wrk.headers[%s] = %s\n' % (json.dumps(k), json.dumps(v)))
    return path


def chat_body(model, stream=False):
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


def messages_body(model, stream=False):
    return {"model": model, "max_tokens": 64, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


# Time to the first event of a stream, seen by kimictl's own client: URL MODEL pairs, in turn.
TTFB = r'''
local core = require "core"
local args = { ... }
local n, out = tonumber(args[1]), {}
for i = 2, #args, 2 do out[#out + 1] = {} end
for _ = 1, n do
  for i = 2, #args, 2 do
    local body = '{"model":"' .. args[i + 1] .. '","stream":true,"messages":[{"role":"user","content":"hi"}]}'
    local t0, first = core.proc.now(), nil
    local res, err = core.http.request { method = "POST", url = args[i], body = body,
      headers = { ["Content-Type"] = "application/json" },
      on_event = function() first = first or core.proc.now() end }
    assert(res and res.status == 200 and first, err)
    local list = out[i // 2]
    list[#list + 1] = (first - t0) * 1e6
  end
end
for i = 1, #out do print(table.concat(out[i], " ")) end
'''


def start(cmd, env, ready):
    """Start cmd in its own process group; return (process, seconds until ready(line) held for a
    line of its stdout)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    for line in proc.stdout:
        m = ready(line)
        if m:
            return proc, time.perf_counter() - t0, m
    raise SystemExit("bench: %s did not start" % cmd[0])


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def upstream(*args):
    proc, _, port = start([UPSTREAM, "--port", "0", *args], None, lambda l: l.strip().isdigit() and int(l))
    return proc, "http://127.0.0.1:%d/v1" % port


def gateway(up_url, home):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": "C.UTF-8",
           "OPENAI_BASE_URL": up_url, "OPENAI_API_KEY": "bench-key", "KIMICTL_PROVIDER": "openai"}
    find = lambda l: re.search(r"http://127\.0\.0\.1:(\d+)/v1", l)
    proc, secs, m = start([KIMICTL, "serve", "--listen", "127.0.0.1:0"], env, find)
    return proc, secs, "http://127.0.0.1:%s/v1" % m.group(1)


def relay(up_url):
    """socat relaying bytes to the upstream: what any proxy adds at least (two more hops through
    the kernel, two more wake-ups); None without socat."""
    if not shutil.which("socat"):
        return None, None
    port = free_port()
    up = up_url.split("//")[1].split("/")[0]
    proc = subprocess.Popen(["socat", "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork" % port, "TCP:" + up],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, "http://127.0.0.1:%d/v1" % port
        except OSError:
            time.sleep(0.02)
    stop(proc)
    return None, None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def install_ccr():
    """claude-code-router from npm into build/ccr (once); None with the reason if it cannot be."""
    if os.path.exists(CCR):
        return None
    if not shutil.which("npm"):
        return "npm is not installed"
    os.makedirs(CCR_DIR, exist_ok=True)
    print("bench: installing claude-code-router %s into %s (once)" % (CCR_VERSION, CCR_DIR), flush=True)
    r = subprocess.run(["npm", "install", "--prefix", CCR_DIR, "--no-audit", "--no-fund", "--loglevel=error",
                        "@musistudio/claude-code-router@" + CCR_VERSION], capture_output=True, text=True,
                       timeout=600)
    return None if r.returncode == 0 and os.path.exists(CCR) else "npm install failed: " + r.stderr[-300:]


def ccr(up_url, home):
    """claude-code-router in front of up_url, its config in home; (process, seconds to ready, URL)."""
    port = free_port()
    conf = os.path.join(home, ".claude-code-router")
    os.makedirs(conf, exist_ok=True)
    with open(os.path.join(conf, "config.json"), "w") as f:
        json.dump({"LOG": False, "HOST": "127.0.0.1", "PORT": port, "NON_INTERACTIVE_MODE": True,
                   "Providers": [{"name": "up", "api_base_url": up_url + "/chat/completions",
                                  "api_key": "bench-key", "models": ["m"]}],
                   "Router": {"default": "up,m"}}, f)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": "C.UTF-8"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([CCR, "start"], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    body = json.dumps(chat_body("up,m")).encode()
    while time.perf_counter() - t0 < 30:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                          b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return proc, time.perf_counter() - t0, "http://127.0.0.1:%d/v1" % port
        except OSError:
            time.sleep(0.05)
    stop(proc)
    raise SystemExit("bench: claude-code-router did not answer on port %d within 30 s" % port)


def server_pid(proc):
    """The process that serves: ccr's launcher may run node under a shell or a wrapper."""
    try:
        kids = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
    except OSError:
        return proc.pid
    pids = [int(p) for p in kids] or [proc.pid]
    return max(pids, key=lambda p: status_kb(p, "VmRSS"))


def status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(field + r":\s+(\d+)", f.read()).group(1))


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url, conns, seconds, script):
    """(requests/s, p50 µs, p99 µs, errors) of one wrk run."""
    cmd = ["wrk", "-t%d" % min(conns, 2), "-c%d" % conns, "-d%ds" % seconds, "--latency", "-s", script, url]
    for _ in range(3):   # a run that measured nothing (no request finished) is run again
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        if re.search(r"Requests/sec:\s+[\d.]+", r.stdout) and re.search(r"^\s+50%", r.stdout, re.M):
            break
    else:
        raise SystemExit("bench: wrk measured nothing on %s:\n%s%s" % (url, r.stdout, r.stderr))
    def us(pct):
        v, unit = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % pct, r.stdout, re.M).groups()
        return float(v) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", r.stdout).group(1))
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", r.stdout)
    return rps, us(50), us(99), (int(errs.group(1)) if errs else 0) + (sum(map(int, sock.groups())) if sock else 0)


def in_turn(targets, conns, rounds, seconds):
    """targets: name -> (url, wrk script). Runs each in turn, rounds times; name -> {rps, p50,
    p99: median over rounds, errors: sum, runs: every run}."""
    runs = {name: [] for name in targets}
    for _ in range(rounds):
        for name, (url, script) in targets.items():
            runs[name].append(wrk(url, conns, seconds, script))
    out = {}
    for name, rs in runs.items():
        out[name] = {k: med(r[i] for r in rs) for i, k in enumerate(("rps", "p50", "p99"))}
        out[name]["errors"] = sum(r[3] for r in rs)
        out[name]["runs"] = rs
    return out


def streams_run(url, n, timeout, pid, model="m"):
    """n streams at once through url; (summary line, exit status, peak RSS MiB, CPU s)."""
    cpu0 = cpu_s(pid)
    r = subprocess.run([sys.executable, STREAMS, "--n", str(n), "--url", url, "--timeout", str(timeout),
                        "--model", model],
                       capture_output=True, text=True, timeout=timeout + 120)
    lines = r.stdout.strip().splitlines() or ["the client failed: " + r.stderr[-300:]]
    line = lines[0] + "".join("\n           " + l.strip() for l in lines[1:])   # the errors by kind
    return line, r.returncode, status_kb(pid, "VmHWM") / 1024, cpu_s(pid) - cpu0


def raise_descriptors(want):
    """The bench's own limit, inherited by what it starts (not the product's: serve raises its soft
    limit to the hard one itself). Root may raise the hard limit too."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limit in ((want, want), (hard, hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limit)
            return limit[0]
        except (ValueError, OSError):
            pass
    return soft


def gateway_rows():
    if not shutil.which("wrk"):
        print("\n(wrk is not installed: ./build.sh installs it; the gateway rows are skipped)")
        return
    R["descriptors"] = raise_descriptors(65536)
    peer_missing = install_ccr()
    tmp = tempfile.mkdtemp(prefix="kimictl-bench-gw-")
    ttfb_script = os.path.join(tmp, "ttfb.lua")
    with open(ttfb_script, "w") as f:
        f.write(TTFB)
    up, up_url = upstream()
    sup, sup_url = upstream("--tokens", "20", "--interval-ms", "0")
    slow, slow_url = upstream("--tokens", "50", "--interval-ms", "20")
    procs = [up, sup, slow]
    try:
        starts, idle = [], []
        for _ in range(10):
            gw, secs, _ = gateway(up_url, tmp)
            starts.append(secs * 1000)
            idle.append(status_kb(gw.pid, "VmRSS") / 1024)
            stop(gw)
        R["serve_ready_ms"], R["serve_ready_rss_mib"] = starts, idle
        gw, _, gw_url = gateway(up_url, tmp)
        sgw, _, sgw_url = gateway(sup_url, tmp)
        lgw, _, lgw_url = gateway(slow_url, tmp)
        procs += [gw, sgw, lgw]
        names = ["kimictl"]
        model = {"kimictl": "m", "ccr": "up,m"}
        url, surl = {"kimictl": gw_url}, {"kimictl": sgw_url}
        socat, relay_url = relay(up_url)
        if socat:
            procs.append(socat)
        if peer_missing:
            print("\n(claude-code-router is not here: %s; its columns are skipped)" % peer_missing)
        else:
            R["ccr_version_ms"] = spawn_ms([CCR, "-v"], 20)
            home = os.path.join(tmp, "ccr")
            cc, secs, cc_url = ccr(up_url, home)
            R["ccr_ready_ms"] = secs * 1000
            R["ccr_ready_rss_mib"] = status_kb(server_pid(cc), "VmRSS") / 1024
            scc, _, scc_url = ccr(sup_url, os.path.join(tmp, "ccr-s"))
            lcc, _, lcc_url = ccr(slow_url, os.path.join(tmp, "ccr-l"))
            procs += [cc, scc, lcc]
            names.append("ccr")
            url["ccr"], surl["ccr"] = cc_url, scc_url

        # Each case: the direct request and each gateway's, taken in turn.
        cases = [
            ("OpenAI chat, small answer", False, "/chat/completions", chat_body, up_url),
            ("Anthropic messages, small answer", False, "/messages", messages_body, up_url),
            ("OpenAI chat, 20-event stream", True, "/chat/completions", chat_body, sup_url),
            ("Anthropic messages, 20-event stream", True, "/messages", messages_body, sup_url),
        ]
        direct_small = wrk_script(tmp, "direct", chat_body("m"))
        direct_stream = wrk_script(tmp, "direct-s", chat_body("m", True))
        for name in names:   # warm every path once
            wrk(url[name] + "/chat/completions", 1, 1, wrk_script(tmp, "warm-" + name, chat_body(model[name])))
        print("\n| %-48s | %9s |" % ("gateway, 1 connection (wrk, µs)", "direct") +
              "".join(" %11s | %9s |" % (n + " p50", "added") for n in names) +
              "".join(" %11s |" % (n + " p99 +") for n in names))
        print("|%s|%s|" % ("-" * 50, "-" * 11) + ("%s|%s|" % ("-" * 13, "-" * 11)) * len(names) +
              ("%s|" % ("-" * 13)) * len(names))
        R["cases"] = {}
        for title, stream, path, body, direct in cases:
            targets = {"direct": (direct + "/chat/completions", direct_stream if stream else direct_small)}
            if relay_url and path == "/chat/completions" and not stream:
                targets["relay"] = (relay_url + "/chat/completions", direct_small)
            for name in names:
                targets[name] = ((surl if stream else url)[name] + path,
                                 wrk_script(tmp, "%s-%s-%d" % (name, path.split("/")[-1], stream), body(model[name], stream)))
            res = in_turn(targets, 1, 3, 3)
            R["cases"][title] = res
            d = res["direct"]
            print("| %-48s | %9.0f |" % (title, d["p50"]) +
                  "".join(" %11.0f | %+9.0f |" % (res[n]["p50"], res[n]["p50"] - d["p50"]) for n in names) +
                  "".join(" %+11.0f |" % (res[n]["p99"] - d["p99"]) for n in names))
            if "relay" in res:
                R["relay_added_p50_us"] = res["relay"]["p50"] - d["p50"]
                print("| %-48s | %9s | %11.0f | %+9.0f |" % ("  the same through socat, a plain byte relay", "",
                                                              res["relay"]["p50"], R["relay_added_p50_us"]))

        print("\n| %-48s | %9s |" % ("gateway, OpenAI chat under load (wrk)", "direct") +
              "".join(" %13s | %9s |" % (n + " req/s", "p99 added") for n in names))
        print("|%s|%s|" % ("-" * 50, "-" * 11) + ("%s|%s|" % ("-" * 15, "-" * 11)) * len(names))
        R["load"] = {}
        for conns in (4, 32):
            targets = {"direct": (up_url + "/chat/completions", direct_small)}
            for name in names:
                targets[name] = (url[name] + "/chat/completions", wrk_script(tmp, "load-" + name, chat_body(model[name])))
            res = in_turn(targets, conns, 2, 3)
            R["load"][conns] = res
            d = res["direct"]
            print("| %-48s | %9.0f |" % ("%d connections" % conns, d["rps"]) +
                  "".join(" %13.0f | %+9.0f |" % (res[n]["rps"], res[n]["p99"] - d["p99"]) for n in names))
        R["errors"] = {n: sum(c[n]["errors"] for c in list(R["cases"].values()) + list(R["load"].values()))
                       for n in names}

        args = [sup_url + "/chat/completions", "m"]
        for name in names:
            args += [surl[name] + "/chat/completions", model[name]]
        ttfb = subprocess.run([KIMICTL, "lua", ttfb_script, "300", *args], capture_output=True, text=True)
        if ttfb.returncode != 0:
            raise SystemExit("bench: the stream client failed: " + ttfb.stderr)
        lines = [[float(x) for x in line.split()[20:]] for line in ttfb.stdout.splitlines()]
        R["ttfb_us"] = dict(zip(["direct"] + names, lines))
        print("\nTime to the first streamed event, p50 of 280: direct %.0f µs; " % med(lines[0]) +
              "; ".join("%s %+.0f µs" % (n, med(R["ttfb_us"][n]) - med(lines[0])) for n in names) + ".")

        print("\nStreams at once, 50 events 20 ms apart each:")
        R["streams"] = {}
        gws = {"kimictl": (lgw_url, lgw.pid)}
        if "ccr" in names:
            gws["ccr"] = (lcc_url, server_pid(lcc))
        for name, (base, pid) in gws.items():
            line, status, rss, cpu = streams_run(base + "/chat/completions", 1000, 120, pid, model[name])
            R["streams"][name] = {"n": 1000, "line": line, "ok": status == 0, "peak_rss_mib": rss, "cpu_s": cpu}
            print("  %-8s 1,000: %s\n           peak RSS %.1f MiB, CPU %.2f s" % (name, line, rss, cpu))
        # 10,000 at once through a fresh serve: 20,000 descriptors in the gateway alone.
        hgw, _, hgw_url = gateway(slow_url, tmp)
        procs.append(hgw)
        line, status, rss, cpu = streams_run(hgw_url + "/chat/completions", 10000, 300, hgw.pid)
        R["streams"]["kimictl-10k"] = {"n": 10000, "line": line, "ok": status == 0, "peak_rss_mib": rss,
                                       "cpu_s": cpu, "descriptors": R["descriptors"]}
        print("  kimictl 10,000 (descriptor limit %d; the gateway holds two a stream): %s\n"
              "           peak RSS %.1f MiB, CPU %.2f s" % (R["descriptors"], line, rss, cpu))
        print("\nserve, start to ready: median %.1f ms of 10; RSS when ready: median %.1f MiB." % (
            med(starts), med(idle)))
        if "ccr" in names:
            print("claude-code-router %s, start to answering: %.0f ms; RSS then: %.1f MiB (Node %s)." % (
                CCR_VERSION, R["ccr_ready_ms"], R["ccr_ready_rss_mib"],
                subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()))
        print("Upstream, wrk and the gateways share this machine's %d cores; the upstream answers in C." % os.cpu_count())
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


def du(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            p = os.path.join(d, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def ratios():
    """One table: each figure for kimictl and the peer, their ratio, and the goal it is held to."""
    k, c = "kimictl", "ccr"
    has_peer = "ccr_version_ms" in R
    rows = []

    def add(what, kv, cv, fmt, ratio=None, goal=""):
        rows.append((what, fmt % kv if kv is not None else "-", fmt % cv if cv is not None else "-",
                     ("%.0f×" % ratio if ratio >= 10 else "%.1f×" % ratio) if ratio else "-", goal))

    if "version_ms" in R:
        kv = med(R["version_ms"])
        cv = med(R["ccr_version_ms"]) if has_peer else None
        add("start-up: --version / -v (ms)", kv, cv, "%.2f", cv and cv / kv,
            "≥ 100× faster" + (" ✓" if cv and cv / kv >= 100 else " ✗" if cv else ""))
    for title, res in R.get("cases", {}).items():
        kv = res[k]["p50"] - res["direct"]["p50"]
        cv = res[c]["p50"] - res["direct"]["p50"] if c in res else None
        goal = ""
        if not title.endswith("stream"):
            ok = kv <= 100 and (cv is None or cv >= 20 * kv)
            goal = "≥ 20× smaller, ≤ 100 µs" + (" ✓" if ok else " ✗")
        add("added p50, " + title + " (µs)", kv, cv, "%.0f", cv and kv > 0 and cv / kv, goal)
    if "relay_added_p50_us" in R:
        rows.append(("  floor: a plain byte relay (socat) adds (µs)", "%.0f" % R["relay_added_p50_us"], "", "", ""))
    for title, res in R.get("cases", {}).items():
        kv = res[k]["p99"] - res["direct"]["p99"]
        cv = res[c]["p99"] - res["direct"]["p99"] if c in res else None
        add("added p99, " + title + " (µs)", kv, cv, "%.0f", cv and kv > 0 and cv / kv)
    for conns, res in R.get("load", {}).items():
        kv, cv = res[k]["rps"], res[c]["rps"] if c in res else None
        add("requests/s, %d connections" % conns, kv, cv, "%.0f", cv and kv / cv)
    if "ttfb_us" in R:
        d = med(R["ttfb_us"]["direct"])
        kv = med(R["ttfb_us"][k]) - d
        cv = med(R["ttfb_us"][c]) - d if c in R["ttfb_us"] else None
        add("added time to first event (µs)", kv, cv, "%.0f", cv and kv > 0 and cv / kv)
    s = R.get("streams", {})
    if k in s:
        ok = s[k]["ok"] and s[k]["peak_rss_mib"] <= 32
        cv = s[c]["peak_rss_mib"] if c in s else None
        add("1,000 streams: peak RSS (MiB)", s[k]["peak_rss_mib"], cv, "%.1f", cv and cv / s[k]["peak_rss_mib"],
            "0 errors, ≤ 32 MiB" + (" ✓" if ok else " ✗"))
        add("1,000 streams: CPU (s)", s[k]["cpu_s"], s[c]["cpu_s"] if c in s else None, "%.2f",
            c in s and s[k]["cpu_s"] > 0 and s[c]["cpu_s"] / s[k]["cpu_s"])
        rows.append(("1,000 streams: complete", "yes" if s[k]["ok"] else "NO",
                     ("yes" if s[c]["ok"] else "NO") if c in s else "-", "-", ""))
    if "kimictl-10k" in s:
        t = s["kimictl-10k"]
        m = re.match(r"streams: (\d+) of (\d+) complete with \[DONE\], (\d+) errors", t["line"])
        rows.append(("10,000 streams: complete, peak RSS", "%s of %s, %.0f MiB" % (m.group(1), m.group(2),
                     t["peak_rss_mib"]) if m else t["line"][:40], "-", "-",
                     "attempted (%d descriptors)" % t["descriptors"]))
    if "serve_ready_ms" in R:
        kv = med(R["serve_ready_ms"])
        cv = R.get("ccr_ready_ms")
        add("gateway start to ready (ms)", kv, cv, "%.1f", cv and cv / kv)
        kv = med(R["serve_ready_rss_mib"])
        cv = R.get("ccr_ready_rss_mib")
        add("gateway RSS when ready (MiB)", kv, cv, "%.1f", cv and cv / kv)
    if "https_new_minus_http_new_ms" in R:
        add("a new HTTPS connection (ms over HTTP)", R["https_new_minus_http_new_ms"], None, "%.2f")
    size = os.path.getsize(KIMICTL) / 2 ** 20
    peer = None
    if has_peer:
        node = shutil.which("node")
        peer = (du(os.path.join(CCR_DIR, "node_modules")) + (os.path.getsize(os.path.realpath(node)) if node else 0)) / 2 ** 20
    add("on disk (MiB; ccr: its packages + node)", size, peer, "%.1f", peer and peer / size)

    print("\n| %-48s | %14s | %14s | %7s | %s" % ("figure (one run)", "kimictl", "claude-code-router",
                                                  "ratio", "goal"))
    print("|%s|%s|%s|%s|%s" % ("-" * 50, "-" * 16, "-" * 16, "-" * 9, "-" * 24))
    for what, kv, cv, ratio, goal in rows:
        print("| %-48s | %14s | %14s | %7s | %s" % (what, kv, cv, ratio, goal))
    print("Ratios: how many times kimictl is better (faster, smaller or more); added = gateway minus direct.")


def keep_raw():
    os.makedirs(RAW, exist_ok=True)
    path = os.path.join(RAW, time.strftime("bench-%Y%m%d-%H%M%S.json", time.gmtime()))
    with open(path, "w") as f:
        json.dump(R, f, indent=1, default=str)
    print("Raw figures: %s" % os.path.relpath(path, ROOT))


if __name__ == "__main__":
    if sys.argv[1:] != ["gateway"]:
        processes_and_connections()
    gateway_rows()
    ratios()
    keep_raw()
