"""Crash safety of the token store and of sessions (issue 10, item 5): kimictl processes
killed with SIGKILL at random moments, hundreds of times, while others keep working, never
leave a credential file that does not parse or holds a refresh token the login service no
longer accepts, nor a session that does not load. The one kill that does lose a login, that of
the detached refresh worker while the server answers it, leaves the file as it was and the
lock free for the next process.

The kill moments come from a seeded generator: CRASH_SEED=N replays a run's schedule (the
seed is in every failure message, and each test prints its own), CRASH_KILLS=N the number of
kills in the refresh storm (200; half as many in kimi-code's store), CRASH_SESSION_KILLS=N
those of the session (50). The module takes about 40 s on two cores."""
import hashlib
import json
import os
import random
import signal
import subprocess
import threading
import time

from harness import KIMICTL, Home, Server, check, run, test, wait_for
from test_auth import call, creds_path, kimi_env, read_like_kimi_cli, write_kimi_cli_file

KILLS = int(os.environ.get("CRASH_KILLS") or 200)
SESSION_KILLS = int(os.environ.get("CRASH_SESSION_KILLS") or 50)


def new_seed():
    return int(os.environ.get("CRASH_SEED") or random.SystemRandom().randrange(1 << 32))


def fp(secret):
    """A secret as it may appear in a message: its length and a short hash."""
    return "<%d chars, sha256 %s>" % (len(secret), hashlib.sha256(secret.encode()).hexdigest()[:10])


def kimictl_pids(home):
    """The live kimictl processes running with this HOME: the commands the test started and
    the detached refresh workers they left behind (zombies are finished, not counted)."""
    exe, want = os.path.realpath(KIMICTL), b"HOME=" + home.path.encode()
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.readlink("/proc/%s/exe" % name) != exe:
                continue
            with open("/proc/%s/stat" % name, "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue
            with open("/proc/%s/environ" % name, "rb") as f:
                if want in f.read().split(b"\0"):
                    pids.append(int(name))
        except OSError:   # gone meanwhile, or not ours to read
            pass
    return pids


def children(pid):
    """The pids of a process's children (its detached refresh worker, while it runs)."""
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def write_store(home, kind, tok, expires_at):
    """A login in Kimi CLI's store (kind "kimi-cli") or kimi-code's ("kimi-code"), each in
    its own format; returns the file's path."""
    if kind == "kimi-cli":
        return write_kimi_cli_file(home, tok, expires_at)
    path = os.path.join(home.path, ".kimi-code", "credentials", "kimi-code.json")
    os.makedirs(os.path.dirname(path), mode=0o700)
    with open(path, "w") as f:
        f.write(json.dumps(dict(tok, expires_at=int(expires_at)), indent=2) + "\n")
    os.chmod(path, 0o600)
    return path


def check_store(kind, path, where):
    """What the store's own client checks when it reads the file: it parses, with the six
    fields and their types in that store's format, and it is a login (no empty tokens)."""
    try:
        if kind == "kimi-cli":
            doc = read_like_kimi_cli(path)
        else:
            with open(path) as f:
                text = f.read()
            doc = json.loads(text)
            check(text.endswith("}\n") and isinstance(doc.get("expires_at"), int) and
                  all(isinstance(doc.get(k), str) for k in ("access_token", "refresh_token", "scope", "token_type")),
                  "not in kimi-code's format")
    except (OSError, ValueError, AssertionError) as e:
        raise AssertionError("%s: the credential file does not load: %s" % (where, e))
    check(doc["access_token"] and doc["refresh_token"], "%s: the credential file holds empty tokens" % where)
    return doc


def litter(home, kind):
    """Files in the store's directories besides the login, its lock file and kimi-code's
    lock sentinel: temporary files of a write, a lock directory never released."""
    if kind == "kimi-cli":
        d = os.path.dirname(creds_path(home))
        return sorted(set(os.listdir(d)) - {"kimi-code.json", "kimi-code.lock"})
    top = os.path.join(home.path, ".kimi-code")
    return sorted(set(os.listdir(os.path.join(top, "credentials"))) - {"kimi-code.json"}) + \
        sorted(set(os.listdir(os.path.join(top, "oauth"))) - {"kimi-code"})


# Commands that need a fresh token: with --expires-in 60 (under kimictl's 300 s margin) every
# one of them refreshes, in a detached `kimictl auth refresh --worker`.
REFRESHERS = (["auth", "token"], ["auth", "refresh"], ["chat", "-p", "hi"])


def refresh_storm(kind, kills):
    """kills commands that refresh, each SIGKILLed at a random moment (before, while or after
    its detached worker refreshes), while two other loops of such commands run to the end;
    the file is checked after every kill, the login itself after the last."""
    seed = new_seed()
    rng = random.Random(seed)
    with Home() as home, Server("fake_kimi.py", "--refresh-delay", "0.04", "--expires-in", "60") as srv:
        path = write_store(home, kind, call(srv, "/_seed"), time.time() - 60)
        env = kimi_env(home, srv)
        stop, failures, done = threading.Event(), [], [0]

        def keep_refreshing(k):
            i = k
            while not stop.is_set():
                args = REFRESHERS[i % len(REFRESHERS)]
                i += 1
                try:
                    r = run(args, env, timeout=90)
                except subprocess.TimeoutExpired:
                    failures.append((args, "no exit in 90 s"))
                    continue
                done[0] += 1
                if r.returncode != 0 or (args[0] != "auth" or args[1] == "token") != bool(r.stdout.strip()):
                    failures.append((args, r.returncode, r.stderr.strip()[-300:]))

        others = [threading.Thread(target=keep_refreshing, args=(k,), daemon=True) for k in range(2)]
        for t in others:
            t.start()
        alive = orphaned = 0
        try:
            for i in range(kills):
                if i % 25 == 24:
                    call(srv, "/_expire")   # chat then meets a 401 and refreshes from there
                args = rng.choice(REFRESHERS)
                # a third before or while the worker starts, the rest spread over the refresh
                delay = rng.uniform(0, 0.015) if rng.random() < 1 / 3 else rng.uniform(0, 0.2)
                where = "%s store, seed %d, kill %d of %d (%s, %.3f s in)" % (
                    kind, seed, i + 1, kills, " ".join(args), delay)
                p = subprocess.Popen([KIMICTL, *args], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
                time.sleep(delay)                  # the random moment of the kill
                worker = children(p.pid)
                if p.poll() is None:
                    alive += 1
                    orphaned += bool(worker)
                p.send_signal(signal.SIGKILL)
                p.wait(timeout=30)
                check_store(kind, path, where)
                check(not failures, "%s: a command that was not killed failed: %s" % (where, failures[:3]))
        finally:
            stop.set()
            for t in others:
                t.join(120)
        where = "%s store, seed %d: %d kills (%d mid-run, %d with a refresh worker running), %d background runs" % (
            kind, seed, kills, alive, orphaned, done[0])
        check(not any(t.is_alive() for t in others), "%s: a background kimictl did not finish" % where)
        check(not failures, "%s: a command that was not killed failed: %s" % (where, failures[:3]))
        # The workers of killed commands go on in their own sessions: wait for the last ones.
        wait_for(lambda: not kimictl_pids(home), 60, "the detached refresh workers to finish (%s)" % where)
        doc = check_store(kind, path, where + ", after the storm")
        stats = call(srv, "/_stats")
        # Every refresh used the token saved by the one before: a lost answer would make
        # the next refresh send a dead token, which the fake refuses.
        check(stats["refresh_calls"] == stats["refresh_ok"], "%s: refreshes refused: %s" % (where, stats))
        check(alive >= kills // 2 and orphaned >= kills // 5, "%s: too few kills landed in a refresh" % where)
        check(os.stat(path).st_mode & 0o777 == 0o600, "%s: the file's mode changed" % where)
        check(not litter(home, kind), "%s: left in the store's directories: %s" % (where, litter(home, kind)))
        check(not os.path.exists(os.path.join(home.path, ".local", "state", "kimictl", "rejected-refresh.json")),
              "%s: a refresh token was refused and remembered" % where)
        # The saved refresh token still works: a real refresh with it, then a chat.
        r = run(["auth", "token"], env)
        after = check_store(kind, path, where + ", after the last refresh")
        check(r.returncode == 0 and r.stdout.strip() == after["access_token"],
              "%s: auth token after the storm: exit %d, %s" % (where, r.returncode, r.stderr.strip()))
        check(after["refresh_token"] != doc["refresh_token"],
              "%s: no refresh happened: %s" % (where, fp(doc["refresh_token"])))
        stats2 = call(srv, "/_stats")
        check(stats2["refresh_ok"] == stats["refresh_ok"] + 1 == stats2["refresh_calls"], "%s: %s" % (where, stats2))
        call(srv, "/_expire")
        r = run(["chat", "-p", "hi"], env)
        check(r.returncode == 0 and r.stdout == "Hello from Kimi\n", "%s: chat after the storm: %s" % (where, r.stderr))
        if kind == "kimi-code":
            check(not os.path.exists(creds_path(home)), "%s: the login was copied into Kimi CLI's store" % where)
        print("#   %s, %d refreshes" % (where, stats2["refresh_ok"]), flush=True)


@test
def sigkill_during_refreshes_never_loses_the_login():
    refresh_storm("kimi-cli", KILLS)


@test
def the_same_in_kimi_codes_store_with_its_lock_directory():
    refresh_storm("kimi-code", KILLS // 2)


def worker_killed_mid_refresh(kind):
    """The worst kill: the detached worker itself (an OOM kill, a shutdown) while its refresh
    is at the server. The server retires the old refresh token as it answers the dead worker,
    so this login is gone (nothing can keep an answer no process is left to read); what must
    hold is that the file is left as it was, the command says what happened, and the lock
    held by the dead worker stops no one: released by the kernel (flock), or taken over once
    its heartbeat stops (kimi-code's lock directory, stale after 5 s), not after 60 s."""
    with Home() as home, Server("fake_kimi.py", "--refresh-delay", "1") as srv:
        path = write_store(home, kind, call(srv, "/_seed"), time.time() - 60)
        with open(path, "rb") as f:
            before = f.read()
        env = kimi_env(home, srv)
        p = subprocess.Popen([KIMICTL, "auth", "token"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: call(srv, "/_stats")["refresh_calls"] == 1, 30, "the refresh request")
        workers = children(p.pid)
        check(len(workers) == 1, "%s store: workers %s" % (kind, workers))
        os.kill(workers[0], signal.SIGKILL)
        out, err = p.communicate(timeout=30)
        check(p.returncode == 1 and "killed by signal 9" in err and not out,
              "%s store: the command whose worker died: exit %d, %s" % (kind, p.returncode, err.strip()))
        wait_for(lambda: call(srv, "/_stats")["refresh_ok"] == 1, 30, "the server to answer the dead worker")
        if kind == "kimi-code":   # the dead worker's lock directory is there to be taken over
            check(os.path.isdir(os.path.join(home.path, ".kimi-code", "oauth", "kimi-code.lock")), "no lock directory left")
        with open(path, "rb") as f:
            check(f.read() == before, "%s store: the file changed" % kind)
        t0 = time.time()
        r = run(["auth", "token"], env, timeout=60)
        took = time.time() - t0   # the lock timeout is 60 s
        check(r.returncode == 1 and "expired or was revoked" in r.stderr and "kimictl login" in r.stderr,
              "%s store: after the worker died: exit %d, %s" % (kind, r.returncode, r.stderr.strip()))
        check(took < 15, "%s store: the next command waited %.1f s for the dead worker's lock" % (kind, took))
        with open(path, "rb") as f:
            check(f.read() == before, "%s store: the file changed after the refused refresh" % kind)
        check(not litter(home, kind), "%s store: left behind: %s" % (kind, litter(home, kind)))
        wait_for(lambda: not kimictl_pids(home), 30, "every kimictl to end")


@test
def a_worker_killed_mid_refresh_leaves_the_file_and_blocks_no_one():
    worker_killed_mid_refresh("kimi-cli")
    worker_killed_mid_refresh("kimi-code")


def answer(n):
    """What the fake streams for "slow n"."""
    return "".join("t%d " % i for i in range(n))


def session_records(data, where, torn=None):
    """The records of a session file's bytes: every line ended by a newline is one whole JSON
    object, except a line that is, unchanged, one seen before as a torn last line (torn maps
    line numbers to their bytes: the loader skips them); a last line without a newline (torn
    by a crash mid-write) is returned apart."""
    lines = data.split(b"\n")
    records = []
    for n, line in enumerate(lines[:-1], 1):
        try:
            doc = json.loads(line)
        except ValueError as e:
            if (torn or {}).get(n) == line:
                continue
            raise AssertionError("%s: line %d of the session file is not whole JSON (%s): %r" % (where, n, e, line[:80]))
        check(isinstance(doc, dict) and isinstance(doc.get("type"), str), "%s: line %d is not a record" % (where, n))
        records.append(doc)
    return records, lines[-1]


@test
def sigkill_mid_answer_never_damages_a_session():
    seed = new_seed()
    rng = random.Random(seed)
    with Home() as home, Server("fake_kimi.py", "--token-interval-ms", "8") as srv:
        write_kimi_cli_file(home, call(srv, "/_seed"), time.time() + 900)
        env = kimi_env(home, srv)
        sid = "crash-%d" % seed
        path = os.path.join(home.path, ".local", "share", "kimictl", "sessions", sid + ".jsonl")
        r = run(["chat", "--session", sid, "-p", "slow 3"], env)
        check(r.returncode == 0 and r.stdout == answer(3) + "\n", "the first turn: %s" % r.stderr)
        with open(path, "rb") as f:
            before = f.read()
        mid_answer = completed = 0   # kills that left a question alone, or a whole turn
        torn = {}                    # the lines seen torn, by number
        for i in range(SESSION_KILLS):
            n = rng.randint(5, 40)
            delay = rng.uniform(0, (8 * n * 1.25 + 30) / 1000)
            where = "seed %d, kill %d of %d (slow %d, %.3f s in)" % (seed, i + 1, SESSION_KILLS, n, delay)
            p = subprocess.Popen([KIMICTL, "chat", "--session", sid, "-p", "slow %d" % n], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)                      # the random moment of the kill
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=30)
            with open(path, "rb") as f:
                data = f.read()
            check(data.startswith(before), "%s: what the session held before was changed" % where)
            records, last = session_records(data, where, torn)
            new = records[len(session_records(before, where, torn)[0]):]
            if last:
                torn[data.count(b"\n") + 1] = last
            roles = [x["message"]["role"] for x in new if x["type"] == "message"]
            mid_answer += roles == ["user"]        # killed after the question was saved, before the answer
            completed += "assistant" in roles
            r = run(["sessions", "show", sid, "--json"], env)
            check(r.returncode == 0, "%s: sessions show: exit %d, %s" % (where, r.returncode, r.stderr.strip()))
            shown = json.loads(r.stdout)["messages"]
            want = [x["message"] for x in records if x["type"] == "message"]
            check(shown[:len(want)] == want and len(shown) - len(want) <= (last != b""),
                  "%s: sessions show differs from the file's whole lines" % where)
            for k, m in enumerate(shown):
                if m["role"] == "assistant":
                    asked = shown[k - 1]["content"] if k and shown[k - 1]["role"] == "user" else ""
                    check(asked.startswith("slow ") and m["content"] == answer(int(asked[5:])),
                          "%s: message %d is a partial or misplaced answer: %r" % (where, k + 1, m["content"][:60]))
            before = data
        where = "seed %d: %d kills (%d between question and answer, %d after the answer, %d torn lines)" % (
            seed, SESSION_KILLS, mid_answer, completed, len(torn))
        check(mid_answer >= SESSION_KILLS // 3 and completed >= 1, "%s: the kills missed the answers" % where)
        r = run(["chat", "--session", sid, "-p", "hi"], env)
        check(r.returncode == 0 and r.stdout == "Hello from Kimi\n", "%s: the turn after: %s" % (where, r.stderr))
        sent = [json.loads(q["body"])["messages"] for q in srv.requests()
                if q["method"] == "POST" and q["path"].endswith("/chat/completions")][-1]
        turns = [m for m in sent if m["role"] in ("user", "assistant")]
        check(turns == shown + [{"role": "user", "content": "hi"}],
              "%s: the request did not carry the session's turns (%d sent, %d saved)" % (where, len(turns), len(shown)))
        answered = [m["content"] for m in sent if m["role"] == "assistant"]
        check(len(answered) == completed + 1,
              "%s: %d answers sent, %d turns completed" % (where, len(answered), completed + 1))
        print("#   " + where, flush=True)
