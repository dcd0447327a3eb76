"""kimictl chat against the fake Kimi: thinking kept off stdout, the tool loop (fragmented and
interleaved calls, reasoning replayed, leaked markup recovered), sessions saved and resumed
(also after SIGKILL), json and stream-json output, retries and exit 75."""
import json
import os
import signal
import subprocess
import time

from harness import KIMICTL, Home, Server, check, run, test
from test_auth import call, kimi_env, write_kimi_cli_file


def logged_in(home, srv, **extra):
    """An environment with a fresh Kimi login (as Kimi CLI would have left it)."""
    write_kimi_cli_file(home, call(srv, "/_seed"), time.time() + 900)
    return kimi_env(home, srv, **extra)


def chat(env, *args, input=None, cwd=None):
    return subprocess.run([KIMICTL, "chat", *args], env=env, input=input, capture_output=True, text=True,
                          timeout=60, cwd=cwd)


def posts(srv):
    return [json.loads(q["body"]) for q in srv.requests()
            if q["method"] == "POST" and q["path"].startswith("/coding/v1/chat/completions")]


def lines_of(stdout):
    out = []
    for n, line in enumerate(stdout.splitlines(), 1):
        try:
            out.append(json.loads(line))
        except ValueError:
            check(False, "line %d of the output is not JSON: %r" % (n, line))
    return out


def stats(srv):
    return call(srv, "/_stats")


@test
def thinking_goes_to_stderr_never_to_stdout():
    with Home() as home, Server("fake_kimi.py") as srv:
        env = logged_in(home, srv)
        r = chat(env, "--thinking", "-p", "think")
        check(r.returncode == 0, r.stderr)
        check(r.stdout == "Answer.\n", "stdout: %r" % r.stdout)
        check("Let me think." in r.stderr, "thinking not shown on stderr: %r" % r.stderr)
        check(posts(srv)[-1]["thinking"] == {"type": "enabled"}, posts(srv)[-1])
        r = chat(env, "--no-thinking", "think")   # the prompt as an argument
        check(r.returncode == 0 and r.stdout == "Answer.\n", (r.stdout, r.stderr))
        check("think" not in r.stderr, "hidden thinking shown: %r" % r.stderr)
        check(posts(srv)[-1]["thinking"] == {"type": "disabled"}, posts(srv)[-1])
        r = chat(env, "-p", "hi")   # neither: the provider's default, nothing sent
        check("thinking" not in posts(srv)[-1], posts(srv)[-1])


@test
def tool_loop_with_interleaved_fragments_and_replayed_reasoning():
    with Home() as home, Server("fake_kimi.py") as srv:
        work = os.path.join(home.path, "work")
        os.makedirs(os.path.join(work, "sub"))
        with open(os.path.join(work, "a.txt"), "w") as f:
            f.write("alpha line\nbeta line\n")
        a, b = {"path": "a.txt", "limit": 1}, {"path": "."}
        r = chat(logged_in(home, srv), "--tools", "read_file,list_dir", "--output-format", "json",
                 "-p", "multi %s ;; %s" % (json.dumps(a), json.dumps(b)), cwd=work)
        check(r.returncode == 0, r.stdout + r.stderr)
        result = json.loads(r.stdout)
        first, second = posts(srv)
        check([t["function"]["name"] for t in first["tools"]] == ["read_file", "list_dir"], first["tools"])
        check(first["prompt_cache_key"] == result["session_id"], (first.get("prompt_cache_key"), result))
        assistant = second["messages"][1]
        check(assistant["role"] == "assistant" and "content" not in assistant, assistant)
        check(assistant["reasoning_content"] == "I will look.", assistant)
        calls = assistant["tool_calls"]
        check([c["id"][:7] for c in calls] == ["call_a_", "call_b_"], calls)
        check([c["function"]["name"] for c in calls] == ["read_file", "list_dir"], calls)
        check([json.loads(c["function"]["arguments"]) for c in calls] == [a, b], calls)
        results = second["messages"][2:]
        check([m["tool_call_id"] for m in results] == [c["id"] for c in calls], results)
        check("alpha line" in results[0]["content"] and "beta" not in results[0]["content"], results[0])
        check(results[1]["content"].split("\n") == ["a.txt", "sub/"], results[1])
        check(result["result"] == "tool said: a.txt\nsub/" and result["is_error"] is False, result)
        check(result["num_turns"] == 2, result)


@test
def tool_call_leaked_as_markup_is_recovered_and_run():
    with Home() as home, Server("fake_kimi.py", "--leak-tools") as srv:
        r = chat(logged_in(home, srv), "--tools", "list_dir", "-p", "tool", cwd=home.path)
        check(r.returncode == 0, r.stderr)
        second = posts(srv)[1]
        calls = second["messages"][1]["tool_calls"]
        check(len(calls) == 1 and calls[0]["function"]["name"] == "list_dir", calls)
        check("<|tool_call" not in json.dumps(second), "markup sent back: %s" % second)
        check(second["messages"][2]["role"] == "tool", second["messages"])
        check(r.stdout.startswith("Let me check.") and "tool said:" in r.stdout, r.stdout)


@test
def lua_tools_of_the_user_and_the_shell_tool():
    with Home() as home, Server("fake_kimi.py") as srv:
        env = logged_in(home, srv)
        tools = os.path.join(env["KIMICTL_LUA_DIR"], "tools")
        os.makedirs(tools)
        with open(os.path.join(tools, "shout.lua"), "w") as f:
            f.write('return { description = "upper case", parameters = { type = "object", properties = {'
                    ' text = { type = "string" } } }, run = function(args) return args.text:upper() end }\n')
        with open(os.path.join(tools, "broken.lua"), "w") as f:
            f.write('return {\n  run = function( end,\n}\n')
        shell = {"command": "echo from-the-shell; echo to-stderr >&2; exit 3"}
        prompt = "multi %s ;; %s" % (json.dumps({"text": "quiet"}), json.dumps(shell))
        r = chat(env, "--tools", "shout,shell", "-p", prompt)
        check(r.returncode == 0, r.stderr)
        res = posts(srv)[1]["messages"][2:]
        check(res[0]["content"] == "QUIET", res[0])
        check("did not allow" in res[1]["content"] and "--allow-shell" in res[1]["content"], res[1])
        r = chat(env, "--tools", "shout,shell", "--allow-shell", "-p", prompt)
        check(r.returncode == 0, r.stderr)
        out = posts(srv)[3]["messages"][2:][1]["content"]
        check("from-the-shell" in out and "to-stderr" in out and "[exit status 3]" in out, out)
        started = time.time()
        slow = {"command": "sleep 30", "timeout_s": 1}
        r = chat(env, "--tools", "shout,shell", "--allow-shell", "-p",
                 "multi %s ;; %s" % (json.dumps({"text": "x"}), json.dumps(slow)))
        check(r.returncode == 0 and time.time() - started < 20, (r.returncode, time.time() - started))
        check("was killed" in posts(srv)[5]["messages"][3]["content"], posts(srv)[5]["messages"][3])
        r = chat(env, "--tools", "broken", "-p", "hi")
        check(r.returncode == 1 and "tools/broken.lua:2" in r.stderr, r.stderr)
        r = chat(env, "--tools", "nosuch", "-p", "hi")
        check(r.returncode == 1 and "unknown tool 'nosuch'" in r.stderr, r.stderr)


@test
def builtin_tools_go_out_as_builtin_functions():
    with Home() as home, Server("fake_kimi.py") as srv:
        r = chat(logged_in(home, srv), "--tools", "$web_search,read_file", "-p", "hi")
        check(r.returncode == 0, r.stderr)
        check(posts(srv)[0]["tools"][0] == {"type": "builtin_function", "function": {"name": "$web_search"}},
              posts(srv)[0]["tools"])


@test
def sessions_are_saved_resumed_listed_and_removed():
    with Home() as home, Server("fake_kimi.py") as srv:
        env = logged_in(home, srv)
        r = chat(env, "--output-format", "json", "-s", "Be brief.", "-p", "hello one")
        check(r.returncode == 0, r.stderr)
        sid = json.loads(r.stdout)["session_id"]
        path = os.path.join(home.path, ".local", "share", "kimictl", "sessions", sid + ".jsonl")
        check(os.path.exists(path), "no session file at %s" % path)
        check(os.stat(path).st_mode & 0o777 == 0o600 and os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o700,
              "session file or directory not private")
        r = chat(env, "--session", sid, "-p", "second")
        check(r.returncode == 0, r.stderr)
        msgs = posts(srv)[-1]["messages"]
        check([(m["role"], m.get("content")) for m in msgs] ==
              [("system", "Be brief."), ("user", "hello one"), ("assistant", "Hello from Kimi"), ("user", "second")], msgs)
        check(posts(srv)[-1]["prompt_cache_key"] == sid, posts(srv)[-1])
        r = chat(env, "--continue", "-p", "third")
        check(len(posts(srv)[-1]["messages"]) == 6, posts(srv)[-1]["messages"])
        r = chat(env, "-p", "another")   # a new session
        other = posts(srv)[-1]["prompt_cache_key"]
        check(other != sid and len(posts(srv)[-1]["messages"]) == 1, posts(srv)[-1])
        r = run(["sessions", "list", "--json"], env)
        listed = json.loads(r.stdout)
        check([s["id"] for s in listed] == [other, sid], listed)
        check(listed[1]["messages"] == 6 and listed[1]["title"] == "hello one", listed[1])
        r = run(["sessions", "show", sid], env)
        check(r.returncode == 0 and "hello one" in r.stdout and "third" in r.stdout, r.stdout)
        r = run(["sessions", "rm", sid], env)
        check(r.returncode == 0 and not os.path.exists(path), r.stderr)
        r = run(["sessions", "show", sid], env)
        check(r.returncode == 1 and "no session" in r.stderr, r.stderr)
        r = chat(env, "--session", "../etc", "-p", "x")
        check(r.returncode == 2 and "bad session name" in r.stderr, r.stderr)


@test
def sigkill_mid_answer_leaves_a_session_that_loads():
    with Home() as home, Server("fake_kimi.py", "--token-interval-ms", "100") as srv:
        env = logged_in(home, srv)
        p = subprocess.Popen([KIMICTL, "chat", "--session", "killed", "-p", "slow 200"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        seen = b""
        while b"t2 " not in seen:
            chunk = os.read(p.stdout.fileno(), 100)
            check(chunk, "no answer before EOF")
            seen += chunk
        p.send_signal(signal.SIGKILL)
        p.wait()
        path = os.path.join(home.path, ".local", "share", "kimictl", "sessions", "killed.jsonl")
        with open(path, "a") as f:   # and a record torn by a crash mid-write
            f.write('{"type":"message","message":{"role":"assis')
        r = chat(env, "--session", "killed", "-p", "again")
        check(r.returncode == 0, r.stderr)
        msgs = posts(srv)[-1]["messages"]
        check([m["content"] for m in msgs] == ["slow 200", "again"], msgs)
        r = run(["sessions", "show", "killed", "--json"], env)
        check(r.returncode == 0, r.stderr)
        shown = json.loads(r.stdout)
        check([m["content"] for m in shown["messages"]] == ["slow 200", "again", "Hello from Kimi"], shown)
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if not line.startswith('{"type":"message","message":{"role":"assis'):
                    json.loads(line)   # every other line is whole


@test
def stream_json_is_claude_code_shaped_line_by_line():
    with Home() as home, Server("fake_kimi.py") as srv:
        env = logged_in(home, srv)
        a, b = {"path": "."}, {"path": "."}
        r = chat(env, "--output-format", "stream-json", "--tools", "list_dir,read_file", "--thinking",
                 "-p", "multi %s ;; %s" % (json.dumps(a), json.dumps(b)), cwd=home.path)
        check(r.returncode == 0, r.stderr)
        lines = lines_of(r.stdout)
        init, result = lines[0], lines[-1]
        check(init["type"] == "system" and init["subtype"] == "init" and init["tools"] == ["list_dir", "read_file"], init)
        sid = init["session_id"]
        check(all(l.get("session_id") == sid for l in lines), "a line without the session id")
        check(result["type"] == "result" and result["subtype"] == "success" and result["is_error"] is False, result)
        check(result["result"].startswith("tool said:") and result["num_turns"] == 2, result)
        check(result["usage"]["output_tokens"] > 0 and "input_tokens" in result["usage"], result["usage"])
        kinds = [l["type"] for l in lines]
        check(kinds.count("assistant") == 2 and kinds.count("user") == 2, kinds)
        events = [l["event"] for l in lines if l["type"] == "stream_event"]
        check(events[0]["type"] == "message_start", events[0])
        thinking = "".join(e["delta"].get("thinking", "") for e in events if e["type"] == "content_block_delta")
        check(thinking == "I will look.", thinking)
        text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
        check(text == result["result"], (text, result["result"]))
        first = [l for l in lines if l["type"] == "assistant"][0]["message"]
        uses = [c for c in first["content"] if c["type"] == "tool_use"]
        check([u["input"] for u in uses] == [a, b] and first["stop_reason"] == "tool_use", first)
        user = [l for l in lines if l["type"] == "user"][0]["message"]["content"][0]
        check(user["type"] == "tool_result" and user["tool_use_id"] == uses[0]["id"], user)
        # several user messages as JSON lines in, one conversation out
        stdin = "\n".join(json.dumps({"type": "user", "message": {"role": "user", "content": c}})
                          for c in ("first", [{"type": "text", "text": "second"}])) + "\n"
        r = chat(env, "--input-format", "stream-json", "--output-format", "stream-json", input=stdin)
        check(r.returncode == 0, r.stderr)
        check(lines_of(r.stdout)[-1]["type"] == "result", r.stdout)
        check([m["content"] for m in posts(srv)[-1]["messages"]] == ["first", "Hello from Kimi", "second"], posts(srv)[-1])
        r = chat(env, "--input-format", "stream-json", "--output-format", "stream-json", input="not json\n")
        check(r.returncode == 1 and lines_of(r.stdout)[-1]["is_error"] is True, r.stdout)


@test
def retries_then_success_and_exit_75_when_they_run_out():
    with Home() as home, Server("fake_kimi.py") as srv:
        home.quick_retries(3)
        env = logged_in(home, srv)
        r = chat(env, "-p", "flaky 2")
        check(r.returncode == 0 and r.stdout == "Hello from Kimi\n", (r.returncode, r.stdout, r.stderr))
        check(r.stderr.count("retrying in") == 2 and "HTTP 503" in r.stderr, r.stderr)
        check(stats(srv)["prompts"]["flaky 2"] == 3, stats(srv))
        r = chat(env, "-p", "flaky 99")
        check(r.returncode == 75 and "gave up after 3 retries" in r.stderr, (r.returncode, r.stderr))
        check(stats(srv)["prompts"]["flaky 99"] == 4, stats(srv))
        r = chat(env, "-p", "busy", "--output-format", "json")
        doc = json.loads(r.stdout)
        check(r.returncode == 75 and doc["is_error"] is True and doc["error"]["status"] == 429, (r.returncode, doc))
        r = chat(env, "-p", "empty")
        check(r.returncode == 75 and "empty" in r.stderr and stats(srv)["prompts"]["empty"] == 4, r.stderr)
        call(srv, "/_seed")
        r = chat(env, "-p", "hi", "--output-format", "stream-json", "--model", "x", "--provider", "nosuch")
        last = lines_of(r.stdout)[-1]
        check(r.returncode == 1 and last["type"] == "result" and last["is_error"] and "nosuch" in last["result"], last)


@test
def chat_settings_in_config_are_checked():
    with Home() as home, Server("fake_kimi.py") as srv:
        env = logged_in(home, srv)
        home.config("return {\n  chat = { retries = -1 },\n}\n")
        r = chat(env, "-p", "hi")
        check(r.returncode == 1 and "config.lua" in r.stderr and "chat.retries must be a whole number >= 0" in r.stderr,
              r.stderr)
        home.config("return {\n  chat = { retries = 0 },\n  model = = 1,\n}\n")
        r = chat(env, "-p", "hi")
        check(r.returncode == 1 and "config.lua:3" in r.stderr, r.stderr)


@test
def models_lists_only_configured_providers_and_providers_says_where_from():
    with Home() as home, Server("fake_kimi.py") as srv, Server("fake_openai.py") as oai:
        env = logged_in(home, srv)
        home.config('return { aliases = { fast = "kimi/kimi-k2.6" } }\n')
        r = run(["models", "--json"], env)
        check(r.returncode == 0, r.stderr)
        doc = json.loads(r.stdout)
        check([p["name"] for p in doc["providers"]] == ["kimi"], doc)
        ms = doc["providers"][0]["models"]
        check([m["ref"] for m in ms] == ["kimi/kimi-for-coding", "kimi/kimi-k2.6"], ms)
        check(ms[0]["default"] is True and ms[0]["context_length"] == 262144 and ms[0]["thinking"] is True, ms[0])
        check(doc["aliases"] == [{"alias": "fast", "model": "kimi/kimi-k2.6"}], doc["aliases"])
        r = run(["models"], env)
        check("* kimi/kimi-for-coding" in r.stdout and "fast" in r.stdout and "openai" not in r.stdout, r.stdout)
        calls = len([q for q in srv.requests() if q["path"] == "/coding/v1/models"])
        check(calls == 1, "the list was not kept for the second run: %d calls" % calls)
        env2 = dict(env, OPENAI_BASE_URL=oai.url() + "/v1", OPENAI_API_KEY="test-key")
        r = run(["models", "--json", "--refresh"], env2)
        check([p["name"] for p in json.loads(r.stdout)["providers"]] == ["kimi", "openai"], r.stdout)
        mine = os.path.join(env["KIMICTL_LUA_DIR"], "providers")
        os.makedirs(mine)
        with open(os.path.join(mine, "local.lua"), "w") as f:
            f.write('return { auth = "api_key", api_key_env = { "LOCAL_KEY" }, base_url = "http://127.0.0.1:1/v1" }\n')
        with open(os.path.join(mine, "moonshot.lua"), "w") as f:
            f.write('return {\n  auth = ,\n}\n')
        r = run(["providers", "--json"], env)
        check(r.returncode == 1, "a provider that does not load was not reported: %d" % r.returncode)
        by = {p["name"]: p for p in json.loads(r.stdout)}
        check(sorted(by) == ["kimi", "local", "moonshot", "openai"], by)
        check(by["kimi"]["builtin"] and "file" not in by["kimi"] and by["kimi"]["configured"] and by["kimi"]["default"], by["kimi"])
        check(by["kimi"]["patched"] is True, by["kimi"])   # the tests' user.lua shortens its waits
        check(by["local"]["file"].endswith("providers/local.lua") and not by["local"]["builtin"], by["local"])
        check(by["local"]["configured"] is False and by["openai"]["configured"] is False, by)
        check("moonshot.lua:2" in by["moonshot"]["error"], by["moonshot"])
        r = run(["providers"], dict(env, LOCAL_KEY="k"))
        check("local  yours:" in r.stdout and "replaces the built-in one" in r.stdout, r.stdout)


@test
def completions_load_in_bash_and_the_man_page_renders():
    with Home() as home:
        r = run(["completion", "bash"], home.env())
        check(r.returncode == 0, r.stderr)
        script = os.path.join(home.path, "kimictl.bash")
        with open(script, "w") as f:
            f.write(r.stdout)

        def complete(*words):
            probe = 'source "%s"; COMP_WORDS=(%s); COMP_CWORD=%d; _kimictl; printf "%%s\\n" "${COMPREPLY[@]}"' % (
                script, " ".join("'%s'" % w for w in words), len(words) - 1)
            p = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=20)
            check(p.returncode == 0, p.stderr)
            return p.stdout.split()
        check(complete("kimictl", "ch") == ["chat"], complete("kimictl", "ch"))
        check(complete("kimictl", "chat", "--output-format", "") == ["text", "json", "stream-json"], "values")
        check("--allow-shell" in complete("kimictl", "chat", "--al"), complete("kimictl", "chat", "--al"))
        check(complete("kimictl", "sessions", "s") == ["show"], complete("kimictl", "sessions", "s"))
        check(complete("kimictl", "chat", "--model", "") == [], "a free value got option names")
        # every option --help shows is completed
        help_text = run(["serve", "--help"], home.env()).stdout
        for opt in set(w.rstrip(",") for w in help_text.split() if w.startswith("--")):
            check(opt in complete("kimictl", "serve", "--"), "%s missing from the completions" % opt)
        r = run(["completion", "man"], home.env())
        p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=r.stdout, capture_output=True, text=True,
                           timeout=20)
        check(p.returncode == 0 and p.stderr == "", "groff: " + p.stderr)
        check(".SS kimictl chat" in r.stdout and "\\-\\-output\\-format" in r.stdout, r.stdout[:400])
        r = run(["completion", "tcsh"], home.env())
        check(r.returncode == 2 and "unknown shell" in r.stderr, r.stderr)
