"""make bench: start-up time and the cost of new HTTP(S) connections, measured in one run
and printed as a table. Not a test: nothing here passes or fails."""
import os
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


if __name__ == "__main__":
    main()
