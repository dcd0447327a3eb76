"""Anthropic's Messages API in `kimictl serve` (issue 8): the official @anthropic-ai/sdk client
to Kimi's own Anthropic endpoint (passed through with fresh auth) and to an OpenAI-only provider
(translated both ways), a streamed tool_use round trip each way, errors in Anthropic's shape
(before and inside a stream), and count_tokens."""
import json
import os
import time

from harness import ROOT, Home, Server, check, run, test
from test_auth import call, kimi_env, write_kimi_cli_file
from test_serve import Gateway, data_events, node_client, node_script, request, serving, stats, text_of

MESSAGES = "/v1/messages"
ANTHROPIC = {"anthropic-version": "2023-06-01"}


def sdk(gw, mode, model, key="local"):
    """tests/node/anthropic_client.mjs against the gateway (no /v1: the SDK adds it)."""
    return node_script("anthropic_client.mjs", gw.url, key, mode, model)


def sse(body):
    """(event name, decoded data) of each event of an Anthropic stream."""
    out = []
    for block in body.decode().split("\n\n"):
        name = data = None
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        if name:
            out.append((name, data))
    return out


def with_openai(home, srv, oai, **env):
    write_kimi_cli_file(home, call(srv, "/_seed"), time.time() + 900)
    return kimi_env(home, srv, OPENAI_BASE_URL=oai.url() + "/v1", OPENAI_API_KEY="test-key", **env)


@test
def the_anthropic_sdk_reaches_kimi_natively():
    with serving() as s:
        r = sdk(s.gw, "plain", "kimi-for-coding")
        check(r == {"text": "Hello from Kimi", "stop_reason": "end_turn", "usage": {"input_tokens": 12, "output_tokens": 3}}, r)
        r = sdk(s.gw, "stream", "kimi-for-coding")
        check(r["text"] == "Hello from Kimi" and r["stop_reason"] == "end_turn" and r["events"] >= 8, r)
        r = sdk(s.gw, "tool", "kimi-for-coding")
        check(r["tool"]["name"] == "get_weather" and r["tool"]["input"] == {"city": "Paris"}, r)
        check(r["blocks"] == 1 and r["stop_reason"] == "tool_use" and r["final"] == "tool said: sunny in Paris", r)
        st = stats(s.srv)
        check(st["messages_calls"] == 4 and st["chat_calls"] == 0 and st["client_keys_forwarded"] == 0, st)
        for q in [q for q in s.srv.requests() if q["path"].startswith("/coding/v1/messages")]:
            h = q["headers"]
            check(q["path"] == "/coding/v1/messages?beta=true", q["path"])
            check(h["authorization"] == "Bearer " + s.tok["access_token"] and "x-api-key" not in h, h)
            check(h["anthropic-version"] == "2023-06-01" and h["user-agent"].startswith("kimictl/"), h)


@test
def the_anthropic_sdk_reaches_an_openai_provider_through_translation():
    with Home() as home, Server("fake_kimi.py") as srv, Server("fake_openai.py") as oai:
        with Gateway(with_openai(home, srv, oai)) as gw:
            r = sdk(gw, "stream", "openai/echo")
            check(r["text"] == "Hello from the fake server" and r["stop_reason"] == "end_turn", r)
            check(r["usage"]["output_tokens"] == 5 and r["usage"]["input_tokens"] == 3, r)
            r = sdk(gw, "plain", "openai/json")
            check(r["text"] == "whole answer" and r["stop_reason"] == "end_turn", r)
            r = sdk(gw, "tool", "openai/tool")
            check(r["tool"] == {"id": "call_fake_1", "name": "get_weather", "input": {"city": "Paris"}}, r)
            check(r["blocks"] == 1 and r["stop_reason"] == "tool_use" and r["final"] == "tool said: sunny in Paris", r)
            posts = [json.loads(q["body"]) for q in oai.requests() if q["method"] == "POST"]
            last = posts[-1]
            check(last["tools"][0]["function"]["name"] == "get_weather", last)
            roles = [m["role"] for m in last["messages"]]
            check(roles == ["user", "assistant", "tool"], roles)
            check(last["messages"][1]["tool_calls"][0]["id"] == "call_fake_1", last["messages"][1])
            check(last["messages"][2] == {"role": "tool", "tool_call_id": "call_fake_1", "content": "sunny in Paris"},
                  last["messages"][2])
            check(stats(srv)["messages_calls"] == 0, "the kimi upstream was called")


@test
def a_translated_stream_is_well_formed_event_by_event():
    with Home() as home, Server("fake_kimi.py") as srv, Server("fake_openai.py") as oai:
        with Gateway(with_openai(home, srv, oai)) as gw:
            body = {"model": "openai/tool", "max_tokens": 64, "stream": True,
                    "messages": [{"role": "user", "content": "weather?"}],
                    "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}]}
            status, headers, raw = request(gw, "POST", MESSAGES, body, ANTHROPIC)
            check(status == 200 and headers["content-type"] == "text/event-stream", (status, headers))
            names = [n for n, _ in sse(raw)]
            check(names == ["message_start", "ping", "content_block_start", "content_block_delta", "content_block_delta",
                            "content_block_stop", "message_delta", "message_stop"], names)
            events = dict((n, d) for n, d in sse(raw))
            check(events["content_block_start"]["content_block"] == {"type": "tool_use", "id": "call_fake_1",
                                                                     "name": "get_weather", "input": {}}, events)
            parts = [d["delta"]["partial_json"] for n, d in sse(raw) if n == "content_block_delta"]
            check(json.loads("".join(parts)) == {"city": "Paris"}, parts)
            check(events["message_delta"]["delta"]["stop_reason"] == "tool_use", events["message_delta"])


@test
def the_model_list_comes_in_the_dialect_of_the_client():
    with serving() as s:
        r = sdk(s.gw, "models", "-")
        check({"id": "kimi/kimi-for-coding", "display_name": "Kimi for coding"} in r["models"], r)
        check({"id": "kimi-k2.6", "display_name": "kimi-k2.6"} in r["models"], r)
        status, _, raw = request(s.gw, "GET", "/v1/models", headers=ANTHROPIC)
        doc = json.loads(raw)
        check(status == 200 and doc["has_more"] is False and doc["first_id"] == doc["data"][0]["id"], doc)
        check(all(m["type"] == "model" and m["created_at"].endswith("Z") for m in doc["data"]), doc)
        status, _, raw = request(s.gw, "GET", "/v1/models")
        doc = json.loads(raw)
        check(doc["object"] == "list" and all(m["object"] == "model" for m in doc["data"]), doc)


@test
def errors_come_in_anthropic_shape_before_and_inside_a_stream():
    with Home() as home, Server("fake_kimi.py") as srv, Server("fake_openai.py") as oai:
        with Gateway(with_openai(home, srv, oai)) as gw:
            status, _, raw = request(gw, "POST", MESSAGES, {"model": "openai/echo", "messages": "nope"}, ANTHROPIC)
            doc = json.loads(raw)
            check(status == 400 and doc["type"] == "error" and doc["error"]["type"] == "invalid_request_error", doc)
            check("messages" in doc["error"]["message"], doc)
            status, _, raw = request(gw, "POST", MESSAGES, {"model": "openai/error500", "max_tokens": 5,
                                                            "messages": [{"role": "user", "content": "hi"}]}, ANTHROPIC)
            doc = json.loads(raw)
            check(status == 500 and doc["error"]["type"] == "api_error" and "bad day" in doc["error"]["message"], doc)
            status, _, raw = request(gw, "POST", MESSAGES, {"model": "openai/cut", "max_tokens": 5, "stream": True,
                                                            "messages": [{"role": "user", "content": "hi"}]}, ANTHROPIC)
            events = sse(raw)
            check(status == 200 and events[-1][0] == "error", events)
            check(events[-1][1]["type"] == "error" and events[-1][1]["error"]["type"] == "api_error", events[-1])
            texts = [d["delta"]["text"] for n, d in events if n == "content_block_delta"]
            check(texts == ["Hello", " from"], texts)
            # an error told inside the upstream's stream, and a stream that just stops: an error
            # event each, never a message that looks complete
            for model, words in (("failing", "the fake fell over"), ("unended", "ended before the answer was complete")):
                status, _, raw = request(gw, "POST", MESSAGES, {"model": "openai/" + model, "max_tokens": 5, "stream": True,
                                                                "messages": [{"role": "user", "content": "hi"}]}, ANTHROPIC)
                events = sse(raw)
                names = [n for n, _ in events]
                check(status == 200 and names[-1] == "error" and "message_stop" not in names, (model, names))
                check(words in events[-1][1]["error"]["message"], events[-1])
            # the gateway is still serving
            status, _, raw = request(gw, "POST", MESSAGES + "/count_tokens", {"model": "openai/echo",
                                                                            "messages": [{"role": "user", "content": "x" * 400}]}, ANTHROPIC)
            n = json.loads(raw)["input_tokens"]
            check(status == 200 and 100 <= n <= 130, (status, raw))


@test
def a_refused_key_is_an_anthropic_authentication_error():
    with Home() as home, Server("fake_kimi.py") as srv, Server("fake_openai.py") as oai:
        with Gateway(with_openai(home, srv, oai), "--api-key", "right-key") as gw:
            body = {"model": "openai/json", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
            status, _, raw = request(gw, "POST", MESSAGES, body, dict(ANTHROPIC, **{"x-api-key": "wrong"}))
            doc = json.loads(raw)
            check(status == 401 and doc["type"] == "error" and doc["error"]["type"] == "authentication_error", doc)
            status, _, raw = request(gw, "POST", MESSAGES, body, dict(ANTHROPIC, **{"x-api-key": "right-key"}))
            check(status == 200 and json.loads(raw)["content"][0]["text"] == "whole answer", raw)
            # an upstream that streams where a whole answer was asked for: a clear 502
            status, _, raw = request(gw, "POST", MESSAGES, dict(body, model="openai/echo"),
                                     dict(ANTHROPIC, **{"x-api-key": "right-key"}))
            doc = json.loads(raw)
            check(status == 502 and doc["error"]["type"] == "api_error" and "not a JSON" in doc["error"]["message"], doc)


# --- the other way: OpenAI chat completions to a provider that speaks only Messages --------

def user_lua(name, text):
    """A Lua directory build/tests/NAME whose user.lua is TEXT -> its path."""
    lua_dir = os.path.join(ROOT, "build", "tests", name)
    os.makedirs(lua_dir, exist_ok=True)
    with open(os.path.join(lua_dir, "user.lua"), "w") as f:
        f.write(text)
    return lua_dir


def messages_only_lua():
    """A user.lua that tells kimictl the kimi provider has only its Messages endpoint."""
    return user_lua("messages-only-lua", 'return { providers = { kimi = { api = "anthropic" } } }\n')


@test
def the_openai_client_reaches_a_messages_only_provider_through_translation():
    with serving(KIMICTL_LUA_DIR=messages_only_lua()) as s:
        check(node_client(s.gw, "plain") == {"content": "Hello from Kimi"}, "plain answer")
        r = node_client(s.gw, "stream")
        check(r["content"] == "Hello from Kimi" and r["usage"]["prompt_tokens"] == 12, r)
        check(r["usage"]["completion_tokens"] == 3 and r["usage"]["total_tokens"] == 15, r)
        r = node_client(s.gw, "tool")
        check(r == {"tool_name": "get_weather", "arguments": {"city": "Paris"}, "final": "tool said: sunny in Paris"}, r)
        st = stats(s.srv)
        check(st["chat_calls"] == 0 and st["messages_calls"] == 4 and st["client_keys_forwarded"] == 0, st)
        sent = [q for q in s.srv.requests() if q["path"].startswith("/coding/v1/messages")]
        check(all(q["headers"]["anthropic-version"] == "2023-06-01" for q in sent), [q["headers"] for q in sent])
        last = json.loads(sent[-1]["body"])
        check(last["max_tokens"] >= 1 and last["tools"][0]["name"] == "get_weather", last)
        turns = [(m["role"], [b["type"] for b in m["content"]]) for m in last["messages"]]
        check(turns == [("user", ["text"]), ("assistant", ["tool_use"]), ("user", ["tool_result"])], turns)
        check(last["messages"][1]["content"][0]["id"] == last["messages"][2]["content"][0]["tool_use_id"], last)
        # Anthropic's own clients keep reaching the same endpoint as they were
        r = sdk(s.gw, "stream", "kimi-for-coding")
        check(r["text"] == "Hello from Kimi" and r["stop_reason"] == "end_turn", r)


@test
def kimictl_chat_speaks_to_a_messages_only_provider():
    with serving(KIMICTL_LUA_DIR=messages_only_lua()) as s:
        env = kimi_env(s.home, s.srv, KIMICTL_LUA_DIR=messages_only_lua())
        r = run(["chat", "-p", "hi", "--provider", "kimi"], env)
        check(r.returncode == 0 and r.stdout.strip() == "Hello from Kimi", (r.returncode, r.stdout, r.stderr))
        check(stats(s.srv)["chat_calls"] == 0, stats(s.srv))

        # a provider that names a dialect kimictl does not speak is refused with the reason
        user_lua("messages-only-lua", 'return { providers = { kimi = { api = "grpc" } } }\n')
        r = run(["chat", "-p", "hi", "--provider", "kimi"], env)
        check(r.returncode != 0 and 'api must be "openai" or "anthropic", got "grpc"' in r.stderr, (r.returncode, r.stderr))


def readme_claude_provider(lua_dir, base_url):
    """The README's example provider file for Anthropic's API, as written there, in lua_dir;
    user.lua points it at the fake."""
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    start = readme.index("-- ~/.config/kimictl/lua/providers/claude.lua")
    os.makedirs(os.path.join(lua_dir, "providers"), exist_ok=True)
    with open(os.path.join(lua_dir, "providers", "claude.lua"), "w") as f:
        f.write(readme[start:readme.index("```", start)])
    with open(os.path.join(lua_dir, "user.lua"), "w") as f:
        f.write('return { providers = { claude = { base_url = "%s/v1" } } }\n' % base_url)


@test
def the_readme_provider_for_anthropics_api_serves_openai_clients_and_chat():
    with Home() as home, Server("fake_kimi.py") as srv, Server("fake_anthropic.py") as ant:
        lua_dir = os.path.join(home.path, "claude-lua")   # not kimi_env's, which it rewrites
        readme_claude_provider(lua_dir, ant.url())
        env = kimi_env(home, srv, KIMICTL_LUA_DIR=lua_dir, ANTHROPIC_API_KEY="test-key")
        with Gateway(env) as gw:
            def client(mode):
                return node_script("openai_client.mjs", gw.url + "/v1", "local", mode, "claude/claude-fake-1")
            check(client("plain") == {"content": "Hello from Anthropic"}, "plain answer")
            r = client("stream")
            check(r["content"] == "Hello from Anthropic", r)
            check(r["usage"]["prompt_tokens"] == 25 and r["usage"]["completion_tokens"] == 4, r)
            check(r["usage"]["prompt_tokens_details"] == {"cached_tokens": 5}, r)
            r = client("tool")
            check(r == {"tool_name": "get_weather", "arguments": {"city": "Paris"}, "final": "tool said: sunny in Paris"}, r)
            body = {"model": "claude/claude-fake-1", "stream": True, "messages": [{"role": "user", "content": "tool"}]}
            status, _, raw = request(gw, "POST", "/v1/chat/completions", body)
            deltas = [json.loads(e)["choices"][0]["delta"] for e in data_events(raw)[:-1]]
            check(status == 200 and deltas[1] == {"reasoning_content": "I should look."}, deltas)
            check(data_events(raw)[-1] == "[DONE]", raw)
            # an error event mid-stream: OpenAI's error chunk, then [DONE]
            status, _, raw = request(gw, "POST", "/v1/chat/completions", dict(body, messages=[{"role": "user", "content": "overload"}]))
            events = data_events(raw)
            err = json.loads(events[-2])["error"]
            check(status == 200 and events[-1] == "[DONE]" and "Overloaded (overloaded_error)" in err["message"], events)
            check(text_of(events[:-2]) == "Hel", events)
        sent = [q for q in ant.requests() if q["method"] == "POST"]
        check(sent and all(q["headers"].get("x-api-key") == "test-key" and "authorization" not in q["headers"]
                           and q["headers"].get("anthropic-version") for q in sent), [q["headers"] for q in sent])
        check(all(json.loads(q["body"])["max_tokens"] == 8192 for q in sent), "max_tokens from the provider file")
        r = run(["chat", "-p", "hi", "--provider", "claude", "--model", "claude-fake-1"], env)
        check(r.returncode == 0 and r.stdout.strip() == "Hello from Anthropic", (r.returncode, r.stdout, r.stderr))
        r = run(["chat", "-p", "overload", "--provider", "claude", "--model", "claude-fake-1"], env)
        check(r.returncode != 0 and "Overloaded (overloaded_error)" in r.stderr, (r.returncode, r.stderr))


# --- Kimi's quirks, repaired in flight ------------------------------------------------------

@test
def leaked_tool_call_markup_reaches_clients_as_real_tool_calls():
    with serving(fake=("--leak-tools",)) as s:
        r = node_client(s.gw, "tool")   # the openai client: streamed call, result back, final answer
        check(r == {"tool_name": "get_weather", "arguments": {"city": "Paris"}, "final": "tool said: sunny in Paris"}, r)
        status, _, raw = request(s.gw, "POST", "/v1/chat/completions",
                                 {"model": "kimi-for-coding", "messages": [{"role": "user", "content": "tool"}]})
        msg = json.loads(raw)["choices"][0]
        check(status == 200 and msg["finish_reason"] == "tool_calls" and msg["message"]["content"] == "Let me check.", msg)
        check(msg["message"]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}, msg)
        # streamed, every chunk (the one the repair sends last too) is named like the others
        status, _, raw = request(s.gw, "POST", "/v1/chat/completions",
                                 {"model": "kimi-for-coding", "stream": True, "messages": [{"role": "user", "content": "tool"}]})
        chunks = [json.loads(e) for e in data_events(raw)[:-1]]
        check(status == 200 and all(c.get("id") and c.get("object") == "chat.completion.chunk" for c in chunks), chunks)


@test
def old_model_names_are_mapped_on_the_messages_route_too():
    with serving() as s:
        body = {"model": "k2p5", "max_tokens": 100, "thinking": {"type": "enabled", "budget_tokens": 50},
                "messages": [{"role": "user", "content": "hi"}]}
        status, _, raw = request(s.gw, "POST", MESSAGES, body, ANTHROPIC)
        check(status == 200 and json.loads(raw)["content"][0]["text"] == "Hello from Kimi", raw)
        sent = json.loads([q for q in s.srv.requests() if q["path"].startswith("/coding/v1/messages")][-1]["body"])
        check(sent["model"] == "kimi-for-coding" and sent["max_tokens"] == 16000, sent)


@test
def thinking_turns_are_repaired_and_the_repair_can_be_turned_off():
    turn = {"model": "kimi-code", "max_tokens": 1000, "thinking": {"type": "enabled"}, "messages": [
        {"role": "user", "content": "tool"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function",
                                                             "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]}
    with serving() as s:
        status, _, raw = request(s.gw, "POST", "/v1/chat/completions", turn)
        check(status == 200 and json.loads(raw)["choices"][0]["message"]["content"] == "tool said: sunny", raw)
        sent = json.loads([q for q in s.srv.requests() if q["path"] == "/coding/v1/chat/completions"][-1]["body"])
        check(sent["model"] == "kimi-for-coding" and sent["max_tokens"] == 16000, sent)
        check(sent["messages"][1].get("reasoning_content") == "" and "content" not in sent["messages"][1], sent["messages"][1])
    lua_dir = user_lua("no-repair-lua", "return { providers = { kimi = { repair = { reasoning_content = false } } } }\n")
    with serving(KIMICTL_LUA_DIR=lua_dir) as s:
        status, _, raw = request(s.gw, "POST", "/v1/chat/completions", turn)
        doc = json.loads(raw)
        check(status == 400 and "reasoning_content" in doc["error"]["message"], (status, doc))
