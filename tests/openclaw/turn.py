"""One headless OpenClaw turn (`openclaw agent exec --json`) against `kimictl serve` in front of
the fake Kimi: passes when OpenClaw's result holds the fake's answer and the fake saw kimictl,
with the login's token and never OpenClaw's key. DIRECT=1: OpenClaw talks to the fake itself.
Run by tests/openclaw/run.sh, which installs OpenClaw and sets OPENCLAW_BIN / OPENCLAW_NODE_DIR."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e"))
from harness import Home, Server, check  # noqa: E402
from test_auth import call, kimi_env, write_kimi_cli_file  # noqa: E402
from test_serve import Gateway  # noqa: E402


def turn(home, base_url, api_key):
    """OpenClaw's JSON result for one turn, with its own HOME (it keeps state in ~/.openclaw)."""
    config = os.path.join(home.path, "openclaw.json")
    with open(config, "w") as f:
        json.dump({"models": {"providers": {"kimictl": {
            "baseUrl": base_url, "apiKey": api_key, "api": "openai-completions",
            "models": [{"id": "kimi-for-coding", "name": "Kimi for coding"}]}}}}, f)
    work = os.path.join(home.path, "work")
    os.makedirs(work)
    env = home.env(PATH=os.environ["OPENCLAW_NODE_DIR"] + os.pathsep + os.environ.get("PATH", ""))
    r = subprocess.run([os.environ["OPENCLAW_BIN"], "agent", "exec", "--config", config, "--cwd", work,
                        "--model", "kimictl/kimi-for-coding", "--timeout", "120", "--json", "Say hello"],
                       env=env, capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, "openclaw exit %d\nstdout: %s\nstderr: %s" % (r.returncode, r.stdout[-2000:], r.stderr[-2000:]))
    return json.loads(r.stdout)


def main():
    start = time.time()
    direct = os.environ.get("DIRECT") == "1"
    with Home() as home, Server("fake_kimi.py") as srv:
        tok = call(srv, "/_seed")
        if direct:
            doc = turn(home, srv.url() + "/coding/v1", tok["access_token"])
        else:
            write_kimi_cli_file(home, tok, time.time() + 900)
            with Gateway(kimi_env(home, srv)) as gw:
                doc = turn(home, gw.url + "/v1", "local")
        check(doc.get("ok") is True and doc.get("final") == "Hello from Kimi", "OpenClaw's result: %r" % doc)
        chats = [q for q in srv.requests() if q["path"] == "/coding/v1/chat/completions"]
        stats = call(srv, "/_stats")
        check(chats and stats["client_keys_forwarded"] == 0, "OpenClaw's key reached the fake: %r" % stats)
        if not direct:
            agent = chats[-1]["headers"]["user-agent"]
            check(agent.startswith("kimictl/"), "upstream saw %r, not kimictl" % agent)
    print("ok - openclaw turn %s (%.1fs)" % ("direct to the fake" if direct else "through kimictl serve",
                                            time.time() - start))


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("not ok - openclaw turn\n#   " + str(e).replace("\n", "\n#   "))
        sys.exit(1)
