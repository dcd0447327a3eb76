"""A small harness for end-to-end tests: the real kimictl binary, fake servers it starts
and stops itself, a throw-away HOME per test, and one "ok"/"not ok" line per test."""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
KIMICTL = os.environ.get("KIMICTL") or os.path.join(ROOT, "kimictl")
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


class Server:
    """A fake server script from this folder, on a free loopback port."""

    def __init__(self, script, *args, tls=None):
        self.tmp = tempfile.mkdtemp(prefix="kimictl-fake-")
        self.log = os.path.join(self.tmp, "requests.jsonl")
        cmd = [sys.executable, os.path.join(HERE, script), "--log", self.log, *args]
        if tls:
            cmd += ["--tls", tls[0], tls[1]]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError("fake server %s did not start" % script)
        self.port = int(line)

    def url(self, scheme="http", host="127.0.0.1"):
        return "%s://%s:%d" % (scheme, host, self.port)

    def requests(self):
        import json
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [json.loads(l) for l in f if l.strip()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


SANITIZER_OPTIONS = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")


class Home:
    """A fresh HOME (and XDG dirs) so a test never sees the developer's files."""

    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="kimictl-home-")

    def env(self, **extra):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.path,
               "LANG": "C.UTF-8", "NO_COLOR": "1"}
        env.update({k: v for k, v in os.environ.items() if k in SANITIZER_OPTIONS})   # make test-asan
        env.update({k: v for k, v in extra.items() if v is not None})
        return env

    def config(self, text):
        """Write $HOME/.config/kimictl/config.lua."""
        d = os.path.join(self.path, ".config", "kimictl")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.lua"), "w") as f:
            f.write(text)

    def quick_retries(self, retries=1):
        """chat retries after 10 ms instead of Kimi CLI's 300 ms and more."""
        self.config("return { chat = { retries = %d, retry_first_ms = 10, retry_max_ms = 20 } }\n" % retries)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)


def closed_port():
    """A loopback port nothing listens on: bound by us a moment ago, then released."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(args, env, input=None, timeout=60):
    return subprocess.run([KIMICTL, *args], env=env, input=input, capture_output=True,
                          text=True, timeout=timeout)


def certs(tmp):
    """A test CA, a server certificate for localhost signed by it, a second unrelated CA,
    and a certificate for another name signed by the first CA. Made fresh with openssl."""
    def ossl(*a):
        subprocess.run(["openssl", *a], cwd=tmp, check=True, capture_output=True)
    out = {}
    for ca in ("ca", "otherca"):
        ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca + ".key", "-out", ca + ".pem",
             "-days", "2", "-subj", "/CN=kimictl test " + ca,
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        out[ca] = os.path.join(tmp, ca + ".pem")
    for name, host in (("server", "localhost"), ("wrongname", "elsewhere.example")):
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
             "-subj", "/CN=" + host)
        with open(os.path.join(tmp, name + ".ext"), "w") as f:
            f.write("subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\n" % host)
        ossl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext")
        out[name] = (os.path.join(tmp, name + ".pem"), os.path.join(tmp, name + ".key"))
    return out


def wait_for(cond, seconds=30, what="a condition"):
    """Poll cond every 50 ms until it holds; fail after seconds (a wide margin, not a timing)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("gave up waiting for " + what)


def check(cond, message):
    if not cond:
        raise AssertionError(message)


def main(modules):
    for m in modules:
        __import__(m)
    passed = failed = 0
    only = os.environ.get("TEST_ONLY")
    for fn in TESTS:
        name = "%s.%s" % (fn.__module__, fn.__name__)
        if only and only not in name:
            continue
        start = time.time()
        try:
            fn()
            passed += 1
            print("ok - %s (%.1fs)" % (name, time.time() - start), flush=True)
        except Exception as e:
            failed += 1
            print("not ok - %s" % name, flush=True)
            detail = str(e) if isinstance(e, AssertionError) else traceback.format_exc()
            for line in detail.rstrip().splitlines():
                print("#   " + line, flush=True)
    return 1 if failed else 0
