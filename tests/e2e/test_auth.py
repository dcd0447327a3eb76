"""Kimi login, the token store shared with Kimi CLI, profiles, doctor and usage, against
the fake Kimi (tests/e2e/fake_kimi.py)."""
import fcntl
import json
import os
import stat
import subprocess
import time
import urllib.request

from harness import closed_port, KIMICTL, Home, Server, check, run, test

# Make kimictl's waits short for tests; everything else is the embedded provider as shipped.
FAST = """return { providers = { kimi = { oauth = {
  slow_down_ms = 300, reread_ms = 50, retry_delays_ms = { 50, 100 } } } } }
"""


def kimi_env(home, srv, **extra):
    lua = os.path.join(home.path, "lua")
    os.makedirs(lua, exist_ok=True)
    with open(os.path.join(lua, "user.lua"), "w") as f:
        f.write(FAST)
    env = dict(KIMI_CODE_OAUTH_HOST=srv.url(), KIMI_CODE_BASE_URL=srv.url() + "/coding/v1", KIMICTL_LUA_DIR=lua)
    env.update(extra)
    return home.env(**env)


def call(srv, path, doc=None):
    data = json.dumps(doc).encode() if doc is not None else (b"" if path != "/_stats" else None)
    with urllib.request.urlopen(urllib.request.Request(srv.url() + path, data=data)) as r:
        return json.loads(r.read())


def creds_path(home):
    return os.path.join(home.path, ".kimi", "credentials", "kimi-code.json")


def write_kimi_cli_file(home, tok, expires_at):
    """As Kimi CLI writes it: Python's json.dumps, float times, 0600 in 0700."""
    path = creds_path(home)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    doc = {"access_token": tok["access_token"], "refresh_token": tok["refresh_token"],
           "expires_at": float(expires_at), "scope": tok["scope"], "token_type": tok["token_type"],
           "expires_in": float(tok["expires_in"])}
    with open(path, "w") as f:
        f.write(json.dumps(doc))
    os.chmod(path, 0o600)
    return path


def read_like_kimi_cli(path):
    """Kimi CLI's reader: the six fields with their types, or it fails."""
    with open(path) as f:
        doc = json.load(f)
    for k in ("access_token", "refresh_token", "scope", "token_type"):
        check(isinstance(doc.get(k), str), "%s is not a string: %r" % (k, doc.get(k)))
    for k in ("expires_at", "expires_in"):
        check(isinstance(doc.get(k), float), "%s is not a float: %r" % (k, doc.get(k)))
    return doc


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@test
def device_login_through_pending_and_slow_down():
    with Home() as home, Server("fake_kimi.py", "--interval", "0.1", "--device-script", "pending,slow_down,ok") as srv:
        r = run(["login", "--no-browser"], kimi_env(home, srv))
        check(r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr))
        check("USER-0001" in r.stderr and "authorize_device?user_code=USER-0001" in r.stderr, r.stderr)
        check("kimi-for-coding" in r.stdout, "models not listed: " + r.stdout)
        doc = read_like_kimi_cli(creds_path(home))
        check(doc["access_token"].startswith("at-"), doc)
        check(mode(creds_path(home)) == 0o600 and mode(os.path.dirname(creds_path(home))) == 0o700, "modes")
        polls = [q for q in srv.requests() if q["path"] == "/api/oauth/token"]
        check(len(polls) == 3, "%d polls" % len(polls))
        check(call(srv, "/_stats")["device_polls"] == 3, "stats")
        h = polls[0]["headers"]
        check(h.get("x-msh-platform") == "kimictl" and "authorization" not in h, h)


@test
def slow_down_lengthens_the_poll_interval():
    with Home() as home, Server("fake_kimi.py", "--interval", "0.1", "--device-script", "slow_down,pending,ok") as srv:
        t0 = time.time()
        r = run(["login", "--no-browser"], kimi_env(home, srv))
        check(r.returncode == 0, r.stderr)
        # 0.1 s, then 0.4 s twice after slow_down: at least 0.9 s in all.
        check(time.time() - t0 >= 0.9, "polled too fast after slow_down")


@test
def expired_code_restarts_and_denied_stops():
    with Home() as home, Server("fake_kimi.py", "--interval", "0.05", "--device-script", "pending,expired;ok") as srv:
        r = run(["login", "--no-browser"], kimi_env(home, srv))
        check(r.returncode == 0, r.stderr)
        check("USER-0001" in r.stderr and "USER-0002" in r.stderr and "new one" in r.stderr, r.stderr)
    with Home() as home, Server("fake_kimi.py", "--interval", "0.05", "--device-script", "pending,denied") as srv:
        r = run(["login", "--no-browser"], kimi_env(home, srv))
        check(r.returncode == 1 and "refused" in r.stderr, (r.returncode, r.stderr))
        check(not os.path.exists(creds_path(home)), "a file was written after access_denied")


@test
def a_kimi_cli_file_is_used_as_it_is():
    with Home() as home, Server("fake_kimi.py") as srv:
        tok = call(srv, "/_seed")
        path = write_kimi_cli_file(home, tok, time.time() + 900)
        before = open(path).read()
        r = run(["chat", "-p", "hi"], kimi_env(home, srv))
        check(r.returncode == 0 and r.stdout == "Hello from Kimi\n", (r.stdout, r.stderr))
        req = [q for q in srv.requests() if q["path"].endswith("/chat/completions")][-1]
        check(req["headers"]["authorization"] == "Bearer " + tok["access_token"], "not the file's token")
        check(req["headers"]["user-agent"].startswith("kimictl/"), req["headers"]["user-agent"])
        check(open(path).read() == before, "a fresh file was rewritten")
        check(call(srv, "/_stats")["refresh_calls"] == 0, "refreshed a fresh token")


@test
def refresh_writes_kimi_cli_format():
    with Home() as home, Server("fake_kimi.py") as srv:
        tok = call(srv, "/_seed")
        path = write_kimi_cli_file(home, tok, time.time() - 5)
        r = run(["auth", "token"], kimi_env(home, srv))
        check(r.returncode == 0, r.stderr)
        doc = read_like_kimi_cli(path)
        check(doc["refresh_token"] != tok["refresh_token"] and r.stdout.strip() == doc["access_token"], "not rotated")
        check(doc["expires_at"] > time.time() + 800, "expires_at %r" % doc["expires_at"])
        check(mode(path) == 0o600, oct(mode(path)))


@test
def passing_refresh_failures_are_retried():
    with Home() as home, Server("fake_kimi.py", "--refresh-fail", "2") as srv:
        tok = call(srv, "/_seed")
        path = write_kimi_cli_file(home, tok, time.time() - 5)
        r = run(["auth", "token"], kimi_env(home, srv))
        check(r.returncode == 0, r.stderr)
        check(call(srv, "/_stats")["refresh_calls"] == 3, "refresh calls %d" % call(srv, "/_stats")["refresh_calls"])
        check(read_like_kimi_cli(path)["access_token"] == r.stdout.strip(), "file not updated")
    with Home() as home, Server("fake_kimi.py", "--refresh-fail", "9") as srv:
        tok = call(srv, "/_seed")
        path = write_kimi_cli_file(home, tok, time.time() - 5)
        before = open(path).read()
        r = run(["auth", "token"], kimi_env(home, srv))
        check(r.returncode == 1 and "HTTP 503" in r.stderr and "tried 3 times" in r.stderr, r.stderr)
        check(open(path).read() == before, "file changed after failed refreshes")


@test
def thirty_two_processes_refresh_once():
    with Home() as home, Server("fake_kimi.py", "--refresh-delay", "0.3") as srv:
        tok = call(srv, "/_seed")
        path = write_kimi_cli_file(home, tok, time.time() - 60)
        env = kimi_env(home, srv)
        procs = [subprocess.Popen([KIMICTL, "auth", "token"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(32)]
        outs = [p.communicate(timeout=120) for p in procs]
        codes = [p.returncode for p in procs]
        check(codes == [0] * 32, "exit codes %s; %s" % (codes, [e for _, e in outs if e][:2]))
        check(call(srv, "/_stats")["refresh_calls"] == 1, "refresh calls: %d" % call(srv, "/_stats")["refresh_calls"])
        doc = read_like_kimi_cli(path)
        check({o.strip() for o, _ in outs} == {doc["access_token"]}, "processes disagree on the token")


@test
def waits_for_a_lock_holder_and_adopts_its_token():
    with Home() as home, Server("fake_kimi.py") as srv:
        tok = call(srv, "/_seed")
        path = write_kimi_cli_file(home, tok, time.time() - 60)
        lock = open(os.path.join(os.path.dirname(path), "kimi-code.lock"), "a+")
        fcntl.flock(lock, fcntl.LOCK_EX)             # as Kimi CLI does while it refreshes
        p = subprocess.Popen([KIMICTL, "auth", "token"], env=kimi_env(home, srv),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.8)
        check(p.poll() is None, "kimictl did not wait for the lock")
        newer = call(srv, "/_seed")                  # "Kimi CLI" refreshed and saves its token
        write_kimi_cli_file(home, newer, time.time() + 900)
        fcntl.flock(lock, fcntl.LOCK_UN)
        out, err = p.communicate(timeout=30)
        check(p.returncode == 0 and out.strip() == newer["access_token"], (out, err))
        check(call(srv, "/_stats")["refresh_calls"] == 0, "refreshed although the holder had")


@test
def revoked_refresh_token_keeps_the_file():
    with Home() as home, Server("fake_kimi.py") as srv:
        tok = call(srv, "/_seed")
        call(srv, "/_revoke", {"refresh_token": tok["refresh_token"]})
        path = write_kimi_cli_file(home, tok, time.time() - 60)
        before = open(path).read()
        env = kimi_env(home, srv)
        r = run(["auth", "token"], env)
        check(r.returncode == 1, "exit %d" % r.returncode)
        check("expired or was revoked" in r.stderr and "kimictl login" in r.stderr, r.stderr)
        check(open(path).read() == before, "the credential file changed")
        r = run(["auth", "token"], env)              # remembered: the server is not asked again
        check(r.returncode == 1 and call(srv, "/_stats")["refresh_calls"] == 1, r.stderr)
        check(tok["refresh_token"] not in r.stderr + r.stdout, "the refresh token was printed")


@test
def damaged_credential_file_is_named_and_left_alone():
    for text in ("{not json", '{"access_token": "at-1", "refresh_tok', '{"access_token": 5, "refresh_token": "x"}'):
        with Home() as home, Server("fake_kimi.py") as srv:
            path = creds_path(home)
            os.makedirs(os.path.dirname(path))
            with open(path, "w") as f:
                f.write(text)
            r = run(["auth", "token"], kimi_env(home, srv))
            check(r.returncode == 1 and "~/.kimi/credentials/kimi-code.json" in r.stderr and "damaged" in r.stderr, r.stderr)
            check(open(path).read() == text, "the damaged file was changed")


@test
def a_401_refreshes_once_and_retries():
    # The file claims 15 minutes, but the server has expired the token: the API says 401.
    with Home() as home, Server("fake_kimi.py") as srv:
        tok = call(srv, "/_seed")
        write_kimi_cli_file(home, tok, time.time() + 900)
        call(srv, "/_expire")
        r = run(["chat", "-p", "hi"], kimi_env(home, srv))
        check(r.returncode == 0 and r.stdout == "Hello from Kimi\n", (r.returncode, r.stdout, r.stderr))
        check(call(srv, "/_stats")["refresh_calls"] == 1, "refresh calls %d" % call(srv, "/_stats")["refresh_calls"])
        chats = [q for q in srv.requests() if q["path"].endswith("/chat/completions")]
        check(len(chats) == 2 and chats[0]["headers"]["authorization"] != chats[1]["headers"]["authorization"],
              "expected the refused request and one retry with the new token")


@test
def successor_store_is_used_with_its_own_format_and_lock():
    with Home() as home, Server("fake_kimi.py") as srv:
        tok = call(srv, "/_seed")
        d = os.path.join(home.path, ".kimi-code", "credentials")
        os.makedirs(d, mode=0o700)
        path = os.path.join(d, "kimi-code.json")
        doc = dict(tok, expires_at=int(time.time()) - 60)
        with open(path, "w") as f:
            f.write(json.dumps(doc, indent=2) + "\n")
        r = run(["auth", "token"], kimi_env(home, srv))
        check(r.returncode == 0, r.stderr)
        text = open(path).read()
        new = json.loads(text)
        check(isinstance(new["expires_at"], int) and text.endswith("}\n") and "\n  " in text, text)
        check(new["access_token"] == r.stdout.strip() != tok["access_token"], "not refreshed")
        check(not os.path.exists(creds_path(home)), "copied the login into Kimi CLI's store")
        check(not os.path.exists(os.path.join(home.path, ".kimi-code", "oauth", "kimi-code.lock")), "lock left behind")


@test
def identity_headers_and_device_id():
    with Home() as home, Server("fake_kimi.py") as srv:
        write_kimi_cli_file(home, call(srv, "/_seed"), time.time() + 900)
        r = run(["chat", "-p", "hi"], kimi_env(home, srv))
        check(r.returncode == 0, r.stderr)
        h = [q for q in srv.requests() if q["path"].endswith("/chat/completions")][-1]["headers"]
        dev = open(os.path.join(home.path, ".kimi", "device_id")).read()
        check(len(dev) == 32 and all(c in "0123456789abcdef" for c in dev) and dev[12] == "4", dev)
        check(mode(os.path.join(home.path, ".kimi", "device_id")) == 0o600, "device_id mode")
        check(h["x-msh-device-id"] == dev and h["x-msh-platform"] == "kimictl", h)
        check(h["user-agent"].startswith("kimictl/") and h.get("x-msh-version") and h.get("x-msh-device-model"), h)


@test
def a_user_patch_changes_a_header():
    with Home() as home, Server("fake_kimi.py") as srv:
        write_kimi_cli_file(home, call(srv, "/_seed"), time.time() + 900)
        env = kimi_env(home, srv)
        with open(os.path.join(env["KIMICTL_LUA_DIR"], "user.lua"), "w") as f:
            f.write('return { providers = { kimi = { headers = { ["X-Msh-Platform"] = "kimictl-test" } } } }\n')
        check(run(["chat", "-p", "hi"], env).returncode == 0, "chat failed")
        h = [q for q in srv.requests() if q["path"].endswith("/chat/completions")][-1]["headers"]
        check(h["x-msh-platform"] == "kimictl-test" and h["user-agent"].startswith("kimictl/"), h)


def doctor(home, srv, *args, **env):
    r = run(["doctor", "--json", *args], kimi_env(home, srv, **env))
    doc = json.loads(r.stdout)
    failed = [c for c in doc["checks"] if c["status"] == "fail"]
    return r, doc, failed


@test
def doctor_healthy_and_401():
    with Home() as home, Server("fake_kimi.py") as srv:
        write_kimi_cli_file(home, call(srv, "/_seed"), time.time() + 900)
        r, doc, failed = doctor(home, srv)
        check(r.returncode == 0 and doc["healthy"] and not failed, r.stdout)
        names = [c["name"] for c in doc["checks"]]
        check(names == ["configuration", "credentials", "clock", "refresh", "network", "models", "chat"], names)
        # A token the API refuses, and a refresh token that is dead: log in again.
        tok = call(srv, "/_seed")
        call(srv, "/_revoke", {"refresh_token": tok["refresh_token"]})
        write_kimi_cli_file(home, dict(tok, access_token="at-unknown"), time.time() + 900)
        r, doc, failed = doctor(home, srv)
        check(r.returncode == 1 and failed and failed[0]["cause"] == "auth_expired", r.stdout)
        check("kimictl login" in failed[0]["fix"], failed[0])
        text = run(["doctor"], kimi_env(home, srv)).stdout
        check("FAIL" in text and "kimictl login" in text, text)


@test
def doctor_names_access_terminated_and_429():
    with Home() as home, Server("fake_kimi.py", "--allowed-agents", "KimiCLI/") as srv:
        write_kimi_cli_file(home, call(srv, "/_seed"), time.time() + 900)
        r, doc, failed = doctor(home, srv)
        check(r.returncode == 1 and failed[0]["cause"] == "access_terminated", r.stdout)
        check("allow-list" in failed[0]["fix"] and "kimictl/" in failed[0]["fix"], failed[0]["fix"])
        c = run(["chat", "-p", "hi"], kimi_env(home, srv))
        check(c.returncode == 1 and "allow-list" in c.stderr and "403" in c.stderr, c.stderr)
        sent = [q["headers"]["user-agent"] for q in srv.requests() if q["path"].startswith("/coding")]
        check(all(u.startswith("kimictl/") for u in sent), "sent another identity: %s" % sent)
    with Home() as home, Server("fake_kimi.py", "--api-error", "429-balance") as srv:
        write_kimi_cli_file(home, call(srv, "/_seed"), time.time() + 900)
        r, doc, failed = doctor(home, srv)
        check(failed[0]["cause"] == "insufficient_balance" and "region" in failed[0]["fix"], failed)
    with Home() as home, Server("fake_kimi.py", "--api-error", "429") as srv:
        write_kimi_cli_file(home, call(srv, "/_seed"), time.time() + 900)
        r, doc, failed = doctor(home, srv)
        check(failed[0]["cause"] == "rate_limited", failed)


@test
def doctor_names_an_unreachable_host():
    port = closed_port()
    with Home() as home, Server("fake_kimi.py") as srv:
        write_kimi_cli_file(home, call(srv, "/_seed"), time.time() + 900)
        r, doc, failed = doctor(home, srv, KIMI_CODE_BASE_URL="http://127.0.0.1:%d/coding/v1" % port)
        check(r.returncode == 1 and failed[0]["name"] == "network" and failed[0]["cause"] == "connect", r.stdout)
        check("refused" in failed[0]["detail"], failed[0])
        r, doc, failed = doctor(home, srv, KIMI_CODE_BASE_URL="http://no-such-host.invalid/coding/v1")
        check(failed[0]["cause"] == "dns", failed)


@test
def usage_shows_windows():
    with Home() as home, Server("fake_kimi.py") as srv:
        write_kimi_cli_file(home, call(srv, "/_seed"), time.time() + 900)
        r = run(["usage"], kimi_env(home, srv))
        check(r.returncode == 0 and "Weekly" in r.stdout and "25% used (250 of 1000)" in r.stdout, r.stdout + r.stderr)
        check("60% used (60 of 100)" in r.stdout and "5 hours window" in r.stdout, r.stdout)
        doc = json.loads(run(["usage", "--json"], kimi_env(home, srv)).stdout)
        w = doc["windows"][0]
        check(w["used"] == 250 and w["limit"] == 1000 and w["resets_at"] == 1893888000, w)


@test
def api_key_profiles_and_status():
    with Home() as home, Server("fake_kimi.py") as srv:
        env = kimi_env(home, srv)
        r = run(["login", "--provider", "moonshot", "--api-key-stdin", "--profile", "work"], env, input="sk-test-moon-123\n")
        check(r.returncode == 0, r.stderr)
        prof = os.path.join(home.path, ".config", "kimictl", "profiles.json")
        check(mode(prof) == 0o600 and mode(os.path.dirname(prof)) == 0o700, "profile modes")
        write_kimi_cli_file(home, call(srv, "/_seed"), time.time() + 900)
        r = run(["auth", "status", "--json"], env)
        check(r.returncode == 0, r.stderr)
        logins = {(l["provider"], l["profile"]): l for l in json.loads(r.stdout)["logins"]}
        check(("moonshot", "work") in logins and ("kimi", "default") in logins, logins)
        check("~/.kimi/credentials/kimi-code.json" in logins[("kimi", "default")]["where"], logins)
        check("sk-test-moon-123" not in r.stdout, "status printed a key")
        text = run(["auth", "status"], env).stdout
        check("expires in" in text and "sk-test" not in text, text)
        check(run(["logout", "--provider", "moonshot", "--profile", "work"], env).returncode == 0, "logout")
        logins = json.loads(run(["auth", "status", "--json"], env).stdout)["logins"]
        check(all(l["provider"] != "moonshot" for l in logins), logins)


@test
def no_secret_in_any_output_even_when_debugging():
    with Home() as home, Server("fake_kimi.py", "--interval", "0.05", "--device-script", "pending,ok") as srv:
        env = kimi_env(home, srv, KIMICTL_LOG="debug")
        outs = [run(["login", "--no-browser"], env)]
        doc = json.load(open(creds_path(home)))
        with open(creds_path(home), "w") as f:      # expire it, so the next run refreshes
            json.dump(dict(doc, expires_at=time.time() - 10.5), f)
        outs += [run(["chat", "-p", "hi"], env), run(["auth", "status"], env), run(["doctor"], env), run(["usage"], env)]
        now = json.load(open(creds_path(home)))
        secrets = [doc["access_token"], doc["refresh_token"], now["access_token"], now["refresh_token"], "dc-1"]
        for r in outs:
            for s in secrets:
                check(s not in r.stdout and s not in r.stderr, "a secret appeared in %s" % r.args)
        check("[redacted]" in outs[1].stderr, "debug output shows no redaction at all")


@test
def region_chosen_at_login_is_kept_for_the_profile():
    # No host variables: the region's hosts (patched to the fake) must be used, for the
    # login, the refresh and the API.
    with Home() as home, Server("fake_kimi.py", "--interval", "0.05", "--device-script", "ok") as srv:
        lua = os.path.join(home.path, "lua")
        os.makedirs(lua)
        with open(os.path.join(lua, "user.lua"), "w") as f:
            f.write('return { providers = { kimi = { regions = { global = { oauth = "%s", api = "%s/coding/v1" } } } } }\n'
                    % (srv.url(), srv.url()))
        env = home.env(KIMICTL_LUA_DIR=lua)
        r = run(["login", "--no-browser", "--region", "global", "--profile", "g"], env)
        check(r.returncode == 0 and "kimi-for-coding" in r.stdout, r.stderr)
        prof = json.load(open(os.path.join(home.path, ".config", "kimictl", "profiles.json")))
        check(prof["providers"]["kimi"]["g"] == {"region": "global"}, prof)
        path = os.path.join(home.path, ".config", "kimictl", "credentials", "kimi-g.json")
        doc = read_like_kimi_cli(path)
        check(mode(path) == 0o600, oct(mode(path)))
        with open(path, "w") as f:
            json.dump(dict(doc, expires_at=time.time() - 1.5), f)
        r = run(["chat", "-p", "hi", "--profile", "g"], env)
        check(r.returncode == 0 and r.stdout == "Hello from Kimi\n", r.stderr)
        check(call(srv, "/_stats")["refresh_calls"] == 1, "no refresh through the region's host")
        r = run(["login", "--region", "mars"], env)
        check(r.returncode == 2 and "global or mainland-cn" in r.stderr, r.stderr)
