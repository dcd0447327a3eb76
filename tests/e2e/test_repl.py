"""The interactive chat, driven through tmux as a person would: it answers, Ctrl-C stops an
answer and clears a line without leaving, history survives a restart, a resize is harmless,
Ctrl-D leaves with exit 0."""
import os
import shutil
import subprocess
import tempfile
import time

from harness import KIMICTL, Home, Server, check, test
from test_agent import logged_in, stats


class Tmux:
    """A private tmux server (its own socket) running one command in an 80x24 window."""

    def __init__(self, env, command):
        self.dir = tempfile.mkdtemp(prefix="kimictl-tmux-")
        self.sock = os.path.join(self.dir, "sock")
        line = " ".join("%s='%s'" % (k, v) for k, v in env.items())
        self.tmux("new-session", "-d", "-s", "t", "-x", "80", "-y", "24",
                  "env -i %s TERM=xterm-256color %s; echo EXIT=$?; sleep 60" % (line, command))

    def tmux(self, *args):
        return subprocess.run(["tmux", "-S", self.sock, *args], capture_output=True, text=True, timeout=20,
                              check=True).stdout

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "t", *keys)

    def screen(self):
        return self.tmux("capture-pane", "-p", "-J", "-t", "t", "-S", "-200")

    def wait_for(self, text, seconds=20, after=0):
        """The screen once text appears on it (at its after-th occurrence or later)."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            s = self.screen()
            if s.count(text) > after:
                return s
            time.sleep(0.05)
        check(False, "%r did not appear; the screen:\n%s" % (text, self.screen()))

    def close(self):
        subprocess.run(["tmux", "-S", self.sock, "kill-server"], capture_output=True, timeout=20)
        shutil.rmtree(self.dir, ignore_errors=True)


@test
def repl_answers_cancels_keeps_history_and_survives_a_resize():
    with Home() as home, Server("fake_kimi.py", "--token-interval-ms", "100") as srv:
        env = logged_in(home, srv)
        env.pop("NO_COLOR", None)
        t = Tmux(env, KIMICTL + " chat")
        try:
            t.wait_for("/help lists commands")
            t.keys("hello there", "Enter")
            t.wait_for("Hello from Kimi")
            t.keys("slow 300", "Enter")
            t.wait_for("t3 ")
            t.keys("C-c")
            t.wait_for("(stopped)")
            deadline = time.time() + 20
            while stats(srv)["streams_active"] and time.time() < deadline:
                time.sleep(0.05)
            check(stats(srv)["streams_broken"] == 1, "the stream was not cancelled: %s" % stats(srv))
            t.keys("half a line")
            t.wait_for("half a line")
            t.keys("C-c")
            t.wait_for("half a line^C")
            t.keys("/model", "Enter")
            t.wait_for("model: kimi/kimi-for-coding")
            t.tmux("resize-window", "-t", "t", "-x", "50", "-y", "20")
            t.keys("after the resize", "Enter")
            t.wait_for("Hello from Kimi", after=1)
            t.keys("C-d")
            t.wait_for("EXIT=0")
        finally:
            t.close()
        history = os.path.join(home.path, ".local", "state", "kimictl", "history")
        check(os.stat(history).st_mode & 0o777 == 0o600, "history is not private")
        t = Tmux(env, KIMICTL + " chat --continue")
        try:
            t.wait_for("/help lists commands")
            t.keys("Up", "Up")
            t.wait_for("> /model")
            t.keys("C-u", "/session", "Enter")
            t.wait_for("messages")
            check("session" in t.screen(), t.screen())
            t.keys("/exit", "Enter")
            t.wait_for("EXIT=0")
        finally:
            t.close()
        # the second run resumed the first run's conversation, which holds every turn
        r = subprocess.run([KIMICTL, "sessions", "list", "--json"], env=env, capture_output=True, text=True, timeout=20)
        check('"messages":5' in r.stdout.replace(" ", ""), r.stdout)
