"""Headless OpenClaw turns (`openclaw agent exec --json`) against `kimictl serve` in front of the
fake Kimi, one in each of OpenClaw's dialects: `openai-completions` (baseUrl .../v1) and
`anthropic-messages` (baseUrl without /v1). Each passes when OpenClaw's result holds the fake's
answer, the fake's endpoint of that dialect was called, and it saw kimictl with the login's
token, never OpenClaw's key. DIRECT=1: OpenClaw talks to the fake itself, in openai-completions
only (which checks the plumbing; in anthropic-messages it sends x-api-key, which the fake refuses).
A third run uses no gateway: OpenClaw runs `kimictl chat --output-format stream-json` through the
CLI-backend plugin in tests/openclaw/kimictl-cli (the README's worked example), two turns of one session.
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


# OpenClaw's dialect -> the path under the gateway (or the fake's base) it is given as baseUrl,
# and the fake's endpoint its requests must reach.
DIALECTS = {"openai-completions": ("/v1", "/coding/v1/chat/completions"),
            "anthropic-messages": ("", "/coding/v1/messages?beta=true")}


def turn(home, api, base_url, api_key):
    """OpenClaw's JSON result for one turn, with its own HOME (it keeps state in ~/.openclaw)."""
    config = os.path.join(home.path, "openclaw-%s.json" % api)
    with open(config, "w") as f:
        json.dump({"models": {"providers": {"kimictl": {
            "baseUrl": base_url, "apiKey": api_key, "api": api,
            "models": [{"id": "kimi-for-coding", "name": "Kimi for coding"}]}}}}, f)
    work = os.path.join(home.path, "work-" + api)
    os.makedirs(work)
    env = home.env(PATH=os.environ["OPENCLAW_NODE_DIR"] + os.pathsep + os.environ.get("PATH", ""))
    r = subprocess.run([os.environ["OPENCLAW_BIN"], "agent", "exec", "--config", config, "--cwd", work,
                        "--model", "kimictl/kimi-for-coding", "--timeout", "120", "--json", "Say hello"],
                       env=env, capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, "openclaw exit %d\nstdout: %s\nstderr: %s" % (r.returncode, r.stdout[-2000:], r.stderr[-2000:]))
    return json.loads(r.stdout)


def one(api, direct):
    start = time.time()
    suffix, endpoint = DIALECTS[api]
    with Home() as home, Server("fake_kimi.py") as srv:
        tok = call(srv, "/_seed")
        if direct:
            doc = turn(home, api, srv.url() + "/coding/v1", tok["access_token"])
        else:
            write_kimi_cli_file(home, tok, time.time() + 900)
            with Gateway(kimi_env(home, srv)) as gw:
                doc = turn(home, api, gw.url + suffix, "local")
        check(doc.get("ok") is True and doc.get("final") == "Hello from Kimi", "OpenClaw's result: %r" % doc)
        calls = [q for q in srv.requests() if q["path"] == endpoint]
        stats = call(srv, "/_stats")
        check(calls, "no request reached %s: %r" % (endpoint, [q["path"] for q in srv.requests()]))
        if not direct:
            check(stats["client_keys_forwarded"] == 0, "OpenClaw's key reached the fake: %r" % stats)
            agent = calls[-1]["headers"]["user-agent"]
            check(agent.startswith("kimictl/"), "upstream saw %r, not kimictl" % agent)
    print("ok - openclaw turn in %s %s (%.1fs)" % (api, "direct to the fake" if direct else "through kimictl serve",
                                                   time.time() - start))


PLUGIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kimictl-cli")
TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli_turn(home, env, work, prompt, session):
    """One OpenClaw turn in a session through the kimictl-cli backend plugin (the README's example)."""
    os.makedirs(os.path.join(home.path, ".openclaw"), exist_ok=True)
    with open(os.path.join(home.path, ".openclaw", "openclaw.json"), "w") as f:
        json.dump({"plugins": {"load": {"paths": [PLUGIN]}},
                   "agents": {"defaults": {"model": "kimictl-cli/kimi-for-coding", "workspace": work}}}, f)
    r = subprocess.run([os.environ["OPENCLAW_BIN"], "agent", "--local", "--session-id", session, "--json",
                        "--timeout", "120", "-m", prompt], env=env, capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, "openclaw exit %d\nstdout: %s\nstderr: %s" % (r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
    return json.loads(r.stdout)


def cli_backend():
    """Two turns of one OpenClaw session through the kimictl-cli plugin: OpenClaw's answer is the
    fake's, the second request carries the first turn (kimictl resumed its session by the id OpenClaw
    bound), the session id is the prompt cache key, and the fake saw kimictl."""
    start = time.time()
    with Home() as home, Server("fake_kimi.py") as srv:
        tok = call(srv, "/_seed")
        write_kimi_cli_file(home, tok, time.time() + 900)
        env = kimi_env(home, srv)
        env["PATH"] = os.environ["OPENCLAW_NODE_DIR"] + os.pathsep + TOP + os.pathsep + env["PATH"]
        work = os.path.join(home.path, "work-cli")
        os.makedirs(work)
        docs = [cli_turn(home, env, work, prompt, "chat-1") for prompt in ("Say hello", "Say hello again")]
        for doc in docs:
            check([p["text"] for p in doc.get("payloads", [])] == ["Hello from Kimi"], "OpenClaw's result: %r" % doc)
        binding = docs[1]["meta"]["agentMeta"]["cliSessionBinding"]["sessionId"]
        check(binding == docs[0]["meta"]["agentMeta"]["cliSessionBinding"]["sessionId"], "a new CLI session each turn")
        sessions = os.path.join(home.path, ".local", "share", "kimictl", "sessions")
        check(os.listdir(sessions) == [binding + ".jsonl"], "kimictl's sessions: %r" % os.listdir(sessions))
        calls = [q for q in srv.requests() if q["path"] == "/coding/v1/chat/completions"]
        check(len(calls) == 2, "%d chat requests" % len(calls))
        for q in calls:
            check(q["headers"]["user-agent"].startswith("kimictl/"), "upstream saw %r" % q["headers"]["user-agent"])
            check(json.loads(q["body"]).get("prompt_cache_key") == binding, "prompt_cache_key is not the session id")
        msgs = json.loads(calls[1]["body"])["messages"]
        roles = [m["role"] for m in msgs]
        check(roles == ["system", "user", "assistant", "user"], "second turn sent %r" % roles)
        check(msgs[2]["content"] == "Hello from Kimi" and "Say hello again" in msgs[3]["content"],
              "second turn sent %r" % msgs[1:])
    print("ok - two openclaw turns of one session through the kimictl-cli backend (%.1fs)" % (time.time() - start))


def main():
    direct = os.environ.get("DIRECT") == "1"
    failed = 0
    runs = [(api, lambda api=api: one(api, direct)) for api in (["openai-completions"] if direct else DIALECTS)]
    if not direct:
        runs.append(("the kimictl-cli backend", cli_backend))
    for name, run in runs:
        try:
            run()
        except AssertionError as e:
            failed += 1
            print("not ok - openclaw turn in %s\n#   %s" % (name, str(e).replace("\n", "\n#   ")))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
