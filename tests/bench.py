"""make bench: start-up time, the cost of new HTTP(S) connections, and what `kimictl serve`
adds in front of a fast upstream, measured in one run and printed as tables. Not a test:
nothing here passes or fails."""
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "e2e"))
from harness import KIMICTL, Server, certs  # noqa: E402

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


def spawn_ms(cmd, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL)
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
    print("| %-44s | %8.2f | %8.2f | %s" % (name, statistics.median(ms), q[8], note))


def main():
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
    true_ms = spawn_ms(["/bin/true"], 200)
    version_ms = spawn_ms([KIMICTL, "--version"], 200)
    row("start a process: /bin/true (baseline)", true_ms)
    row("kimictl --version", version_ms,
        "%.2f ms over baseline" % (statistics.median(version_ms) - statistics.median(true_ms)))
    with Server("fake_openai.py") as plain, Server("fake_openai.py", tls=c["server"]) as tls:
        http_url = plain.url() + "/v1/models"
        https_url = tls.url("https", "localhost") + "/v1/models"
        reuse_http = requests_ms(script, http_url, 200, False, env)[1:]
        new_http = requests_ms(script, http_url, 200, True, env)
        reuse_https = requests_ms(script, https_url, 200, False, env)[1:]
        new_https = requests_ms(script, https_url, 200, True, env)
        row("HTTP request, reused connection", reuse_http)
        row("HTTP request, new connection each time", new_http)
        row("HTTPS request, reused connection", reuse_https)
        row("HTTPS request, new connection each time", new_https,
            "new TLS connection costs %.2f ms" % (statistics.median(new_https) - statistics.median(new_http)))
        first_small = [requests_ms(script, https_url, 1, True, env)[0] for _ in range(20)]
        first_bundle = [requests_ms(script, https_url, 1, True, dict(env, SSL_CERT_FILE=bundle))[0]
                        for _ in range(20)]
        row("first HTTPS request, 1 CA in SSL_CERT_FILE", first_small)
        row("first HTTPS request, %d-cert SSL_CERT_FILE" % open(bundle).read().count("BEGIN CERT"), first_bundle,
            "decoding it once: %.2f ms (the built-in roots need none)" % (statistics.median(first_bundle) - statistics.median(first_small)))
    print("\nThe fake servers are Python: their own time is inside every request figure.")


# --- the gateway: kimictl serve in front of build/tests/upstream (C, libuv), driven by wrk

UPSTREAM = os.path.join(os.path.dirname(HERE), "build", "tests", "upstream")
STREAMS = os.path.join(HERE, "bench", "streams.py")
WRK_POST = """wrk.method = "POST"
wrk.body = '{"model":"m","messages":[{"role":"user","content":"hi"}]}'
wrk.headers["Content-Type"] = "application/json"
"""
# Time to the first event of a stream, seen by kimictl's own client, for each URL in turn.
TTFB = r'''
local core = require "core"
local args = { ... }
local n, urls = tonumber(args[1]), { table.unpack(args, 2) }
local body = '{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}'
local out = {}
for i = 1, #urls do out[i] = {} end
for _ = 1, n do
  for i, url in ipairs(urls) do
    local t0, first = core.proc.now(), nil
    local res, err = core.http.request { method = "POST", url = url, body = body,
      headers = { ["Content-Type"] = "application/json" },
      on_event = function() first = first or core.proc.now() end }
    assert(res and res.status == 200 and first, err)
    out[i][#out[i] + 1] = (first - t0) * 1e6
  end
end
for i = 1, #urls do print(table.concat(out[i], " ")) end
'''


def start(cmd, env, ready):
    """Start cmd; return (process, seconds until ready(line) held for a line of its stdout)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        m = ready(line)
        if m:
            return proc, time.perf_counter() - t0, m
    raise SystemExit("bench: %s did not start" % cmd[0])


def stop(proc):
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
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


def status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(field + r":\s+(\d+)", f.read()).group(1))


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url, conns, seconds, script):
    """(requests/s, p50 µs, p99 µs, errors) of one wrk run."""
    r = subprocess.run(["wrk", "-t%d" % min(conns, 2), "-c%d" % conns, "-d%ds" % seconds, "--latency",
                        "-s", script, url + "/chat/completions"], capture_output=True, text=True)
    def us(pct):
        v, unit = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % pct, r.stdout, re.M).groups()
        return float(v) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", r.stdout).group(1))
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", r.stdout)
    return rps, us(50), us(99), (int(errs.group(1)) if errs else 0) + (sum(map(int, sock.groups())) if sock else 0)


def side_by_side(direct, gw, conns, rounds, seconds, script):
    """Medians over rounds of direct and gateway runs taken in turn."""
    d, g = [], []
    for _ in range(rounds):
        d.append(wrk(direct, conns, seconds, script))
        g.append(wrk(gw, conns, seconds, script))
    med = lambda runs, i: statistics.median(r[i] for r in runs)
    return {k: (med(d, i), med(g, i)) for i, k in enumerate(("rps", "p50", "p99"))}, sum(r[3] for r in g)


def gateway_rows():
    if not shutil.which("wrk"):
        print("\n(wrk is not installed: ./build.sh installs it; the gateway rows are skipped)")
        return
    tmp = tempfile.mkdtemp(prefix="kimictl-bench-gw-")
    script = os.path.join(tmp, "post.lua")
    with open(script, "w") as f:
        f.write(WRK_POST)
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
        gw, _, gw_url = gateway(up_url, tmp)
        sgw, _, sgw_url = gateway(sup_url, tmp)
        lgw, _, lgw_url = gateway(slow_url, tmp)
        procs += [gw, sgw, lgw]
        wrk(gw_url, 1, 1, script)   # warm both paths
        wrk(up_url, 1, 1, script)

        print("\n| %-50s | %9s | %9s | %9s |" % ("gateway: small chat completion (wrk, µs)", "direct", "gateway", "added"))
        print("|%s|%s|%s|%s|" % ("-" * 52, "-" * 11, "-" * 11, "-" * 11))
        one, errors = side_by_side(up_url, gw_url, 1, 3, 3, script)
        for k in ("p50", "p99"):
            print("| %-50s | %9.0f | %9.0f | %+9.0f |" % ("1 connection, latency " + k, one[k][0], one[k][1], one[k][1] - one[k][0]))
        best = None
        for conns in (4, 32):
            r, e = side_by_side(up_url, gw_url, conns, 2, 3, script)
            errors += e
            added = r["p99"][1] - r["p99"][0]
            print("| %-50s | %9.0f | %9.0f | %+9.0f |" % ("%d connections: req/s; p99 added" % conns, r["rps"][0], r["rps"][1], added))
            if added <= 1000 and (not best or r["rps"][1] > best[1]):
                best = (conns, r["rps"][1], added)
        ttfb = subprocess.run([KIMICTL, "lua", ttfb_script, "300", sup_url + "/chat/completions",
                               sgw_url + "/chat/completions"], capture_output=True, text=True)
        if ttfb.returncode != 0:
            raise SystemExit("bench: the stream client failed: " + ttfb.stderr)
        d, g = ([float(x) for x in line.split()[20:]] for line in ttfb.stdout.splitlines())
        print("| %-50s | %9.0f | %9.0f | %+9.0f |" % ("streamed: time to first event p50", statistics.median(d),
                                                      statistics.median(g), statistics.median(g) - statistics.median(d)))
        cpu0 = cpu_s(lgw.pid)
        streams = subprocess.run([sys.executable, STREAMS, "--n", "1000", "--url", lgw_url + "/chat/completions"],
                                 capture_output=True, text=True)
        cpu = cpu_s(lgw.pid) - cpu0
        print()
        if best:
            print("Highest rate with p99 added <= 1 ms: %.0f req/s at %d connections (p99 +%.0f µs)." % (best[1], best[0], best[2]))
        else:
            print("No concurrency kept the added p99 within 1 ms.")
        print("Failed gateway requests in these runs: %d." % errors)
        print("1,000 streams at once, 50 events 20 ms apart each: %s" % streams.stdout.strip().splitlines()[0]
              if streams.stdout.strip() else "1,000 streams: the client failed: " + streams.stderr[-300:])
        print("  gateway peak RSS %.1f MiB, CPU %.2f s" % (status_kb(lgw.pid, "VmHWM") / 1024, cpu))
        print("Start to ready (banner printed): median %.1f ms of 10; RSS when ready: median %.1f MiB." % (
            statistics.median(starts), statistics.median(idle)))
        print("Upstream, wrk and gateway share this machine's %d cores; the upstream answers in C." % os.cpu_count())
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:] != ["gateway"]:   # `python3 tests/bench.py gateway`: the gateway rows only
        main()
    gateway_rows()
