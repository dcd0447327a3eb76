"""kimictl as a process: output it could not write, a reader that went away, detached
children that outlive their parent and inherit nothing, and secrets read from a terminal."""
import fcntl
import os
import pty
import signal
import subprocess
import termios
import time

from harness import KIMICTL, Home, Server, check, run, test
from test_http import lua


def wait_for(path, seconds):
    deadline = time.time() + seconds
    while not os.path.exists(path) and time.time() < deadline:
        time.sleep(0.02)
    return os.path.exists(path)


@test
def output_that_cannot_be_written_fails():
    with Home() as home, open("/dev/full", "w") as full:
        r = subprocess.run([KIMICTL, "--version"], env=home.env(), stdout=full, stderr=subprocess.PIPE,
                           text=True, timeout=60)
        check(r.returncode == 1, "exit %d" % r.returncode)
        check(r.stderr == "kimictl: cannot write the output: No space left on device\n", r.stderr)


@test
def a_reader_that_went_away_is_quiet():
    with Home() as home:
        for ignore_sigpipe in (False, True):
            rd, wr = os.pipe()
            os.close(rd)
            # Python ignores SIGPIPE; restore_signals=False passes that on to kimictl.
            r = subprocess.run([KIMICTL, "--version"], env=home.env(), stdout=wr, stderr=subprocess.PIPE,
                               text=True, timeout=60, restore_signals=not ignore_sigpipe)
            os.close(wr)
            want = 141 if ignore_sigpipe else -signal.SIGPIPE
            check(r.returncode == want and r.stderr == "",
                  "SIGPIPE %s: exit %d, %r" % ("ignored" if ignore_sigpipe else "default", r.returncode, r.stderr))


@test
def a_detached_child_survives_its_parent_killed():
    with Home() as home:
        started, done = os.path.join(home.path, "started"), os.path.join(home.path, "done")
        child = os.path.join(home.path, "child.lua")
        with open(child, "w") as f:
            f.write('local core = require "core"\nlocal started, done = ...\n'
                    'assert(core.fs.write_atomic(started, ""))\ncore.proc.sleep(2000)\n'
                    'assert(core.fs.write_atomic(done, "survived"))\n')
        parent = os.path.join(home.path, "parent.lua")
        with open(parent, "w") as f:
            f.write('local core = require "core"\nio.stdout:write("spawned\\n") io.stdout:flush()\n'
                    'core.proc.spawn_detached { argv = { core.proc.exe(), "lua", ... }, timeout_ms = 60000 }\n')
        # The parent leads a process group, as a shell's job does: Ctrl-C or a hangup would
        # reach all of that group. SIGKILL to the whole group is harsher still.
        p = subprocess.Popen([KIMICTL, "lua", parent, child, started, done], env=home.env(),
                             stdout=subprocess.PIPE, text=True, start_new_session=True)
        try:
            check(p.stdout.readline() == "spawned\n", "the parent did not start")
            check(wait_for(started, 20), "the child did not start")
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=20)
            check(not os.path.exists(done), "the child finished before the kill: the test proves nothing")
            check(wait_for(done, 20), "the child died with its parent")
        finally:
            if p.poll() is None:
                p.kill()
            p.stdout.close()


@test
def a_child_inherits_no_descriptor():
    if not os.path.isdir("/proc/self/fd"):
        return
    with Home() as home, Server("fake_openai.py") as srv:
        r = lua(home, """
local core = require "core"
local url, dir = ...
assert(core.http.request { url = url .. "/v1/models" })   -- a kept-alive connection
local lock <close> = assert(core.lock.take(dir .. "/held.lock", "flock", 1000))
local file <close> = assert(io.open(dir .. "/open.txt", "w"))
local res = assert(core.proc.spawn_detached { argv = { "/bin/sh", "-c", "ls /proc/$$/fd" }, timeout_ms = 20000 })
io.write(res.output)
""", srv.url(), home.path)
        check(r.returncode == 0, r.stderr)
        check(sorted(r.stdout.split()) == ["0", "1", "2"], "the child got: %r" % r.stdout)


@test
def read_secret_reads_a_line_from_a_pipe():
    with Home() as home:
        script = os.path.join(home.path, "read.lua")
        with open(script, "w") as f:
            f.write('print(require("core").proc.read_secret("Key: "))\n')
        r = run(["lua", script], home.env(), input="sk-abc\r\nnext line\n")
        check(r.stdout == "sk-abc\n" and r.stderr == "", repr((r.stdout, r.stderr)))
        r = run(["lua", script], home.env(), input="")
        check(r.stdout.startswith("nil\tno input") and r.returncode == 0, repr(r.stdout))


def on_a_terminal(home, typed):
    """Run read_secret with a terminal as stdin, stdout and stderr; type `typed` once the
    prompt shows. Returns (what the terminal showed, exit status, ECHO on afterwards)."""
    script = os.path.join(home.path, "read.lua")
    with open(script, "w") as f:
        f.write('local s = require("core").proc.read_secret("Key: ")\nprint("got " .. #s .. " bytes")\n')
    master, slave = pty.openpty()
    # Its own session with the terminal as the controlling one, so that ^C is a SIGINT.
    p = subprocess.Popen([KIMICTL, "lua", script], env=home.env(), stdin=slave, stdout=slave,
                         stderr=slave, start_new_session=True,
                         preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    try:
        shown = b""
        deadline = time.time() + 20
        while b"Key: " not in shown and time.time() < deadline:
            shown += os.read(master, 1024)
        os.write(master, typed)
        status = p.wait(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    os.close(slave)
    try:
        while True:
            shown += os.read(master, 1024)
    except OSError:   # EIO: the terminal's other end is closed
        pass
    echo = bool(termios.tcgetattr(master)[3] & termios.ECHO)
    os.close(master)
    return shown.decode(errors="replace"), status, echo


@test
def read_secret_on_a_terminal_hides_the_key_and_restores_echo():
    with Home() as home:
        shown, status, echo = on_a_terminal(home, b"sk-secret-123\n")
        check(status == 0 and "got 13 bytes" in shown, repr(shown))
        check("sk-secret-123" not in shown, "the key was echoed: %r" % shown)
        check(echo, "echo was left off")


@test
def read_secret_interrupted_restores_echo():
    with Home() as home:
        shown, status, echo = on_a_terminal(home, b"sk-par\x03")   # Ctrl-C halfway
        check(status == -signal.SIGINT, "exit %s: %r" % (status, shown))
        check(echo, "Ctrl-C left echo off")
