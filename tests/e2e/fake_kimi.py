"""A fake Kimi: the OAuth service (device login, refresh) and the coding API, on one port.
It behaves as KIMI-API.md describes: refresh tokens rotate and the old one dies at once,
access tokens expire, an unknown or expired token gets 401, and it can refuse clients.

Options:
  --interval S           poll interval it tells clients (seconds, may be fractional)
  --device-script S      answers to polls, per device code: "pending,slow_down,ok;pending,expired"
                         (words: pending, slow_down, expired, denied, ok; ok after the list)
  --ttl S                access token lifetime it enforces (default 900)
  --expires-in S         expires_in it announces (default: the ttl)
  --refresh-delay S      time each refresh takes (lets concurrent clients pile up)
  --refresh-fail N       the first N refresh calls answer 503
  --allowed-agents A,B   only these User-Agent prefixes may use the coding API (else 403)
  --api-error KIND       every coding API call fails: 401, 402, 403-weekly, 429-balance, 429, 500
  --token-interval-ms N  time between the tokens of "slow N" (default 50)
  --leak-tools           "tool" answers with the call leaked into content as Kimi's markup
                         (<|tool_calls_section_begin|>...), split across chunks mid-marker
  --refresh-hang N       the first N refresh calls are read and never answered (the refresh
                         token is not rotated); /_stats counts them in refresh_hung
  --drip-interval-ms N   time between the bytes of "drip" (default 1000)
Like the real API, the chat endpoint answers 400 to an assistant message with tool calls that
lacks reasoning_content when thinking is enabled, and to one whose content is "" beside tool calls.
Test endpoints: POST /_seed -> a valid token pair; POST /_revoke {"refresh_token"};
POST /_expire -> every access token issued so far expires now; GET /_stats -> counters.

The chat endpoint answers according to the last user message (a string or {type:"text"} parts):
  slow N   N tokens "t0 " .. "tN-1 ", one per token interval, then stop and [DONE]
  cut      two tokens, then the connection is reset: no [DONE], no final chunk
  flood N  N tokens of 2,000 bytes each, as fast as the client takes them
  tool     a call of the request's first tool (else get_weather) with {"city": "Paris"}, the
           arguments streamed in two fragments; finish_reason "tool_calls"
  think    reasoning_content "Let me ", "think." then content "Answer."
  multi A ;; B   calls the request's first two tools at once, with the JSON arguments A and B:
           reasoning_content "I will look." first, then both calls' fragments (a few bytes
           each) interleaved, ids and names in one chunk; finish_reason "tool_calls"
  flaky N  the first N calls with this prompt answer 503 (then "Hello from Kimi")
  busy     429 with Retry-After: 0, every time
  empty    a stream that ends (stop, [DONE]) without a word
Fault injection (each a prompt; N counts the calls with that very prompt):
  burst C N      the first N calls answer C (500 or 503: a JSON error; 502: nginx's HTML page)
  retry-after N  the first call answers 429 with Retry-After: N (seconds)
  reset N        the first N calls: the request is read, then the connection is reset before
                 a byte of the answer (no status line)
  drip           the answer's stream one byte at a time, a drip interval before each byte
  garbage        "Hello from Kimi" with junk between the events: a comment, unknown fields,
                 a line without a colon, bytes that are not UTF-8, an event with no data
  truncated      streamed: the second chunk's JSON cut in half (its event otherwise well
                 formed); not streamed: the body's JSON cut in half (Content-Length matches)
  truncated body the cut JSON body, even when a stream was asked for
  long N         one chunk whose content is N MiB of "x", in a single data line (sent in 1 MiB
                 HTTP chunks)
  nodone         "Hello from Kimi" and finish_reason stop, then the body ends, no [DONE]
  hang           as nodone, but the connection then stays open, silent, until the client leaves
  other    "Hello", " from", " Kimi", stop, [DONE]; not streamed: "OK" (finish_reason "length")
A role "tool" message anywhere in the request wins: the answer is "tool said: <its content>"
(the last one's). /_stats counts calls per prompt in "prompts".
The Anthropic endpoint (POST /coding/v1/messages?beta=true, anthropic-version required) answers
the same prompts in Messages' shape: "tool" calls the first tool with {"city": "Paris"} (its
input streamed as two input_json_delta fragments), a tool_result block wins as above, and any
other prompt is "Hello from Kimi" (three text deltas when streamed); usage is always given.
stream_options.include_usage puts usage in the final chunk. Every answer has x-request-id: fake-N.
/_stats also counts: chat_calls (requests to the chat endpoint, refused ones included),
streams_started, streams_finished ([DONE] sent), streams_broken (a write failed: the client went
away), streams_cut, streams_active, max_concurrent_streams, and client_keys_forwarded (coding
API requests carrying x-api-key, or a bearer token the fake never issued)."""
import json
import re
import threading
import time
import urllib.parse

from fakeserver import Handler, serve

STATE = {"lock": threading.Lock(), "n": 0, "access": {}, "refresh": set(), "device": {},
         "ids": 0, "stats": {"refresh_calls": 0, "refresh_ok": 0, "device_auth": 0, "device_polls": 0,
                             "chat_calls": 0, "streams_started": 0, "streams_finished": 0, "streams_broken": 0,
                             "streams_cut": 0, "streams_active": 0, "max_concurrent_streams": 0,
                             "client_keys_forwarded": 0, "messages_calls": 0, "prompts": {}}}
OPTS = {}


def issue():
    """A new token pair; the caller holds the lock."""
    STATE["n"] += 1
    n = STATE["n"]
    at, rt = "at-%d-%s" % (n, "x" * 24), "rt-%d-%s" % (n, "y" * 24)
    STATE["access"][at] = time.time() + OPTS["ttl"]
    STATE["refresh"].add(rt)
    return {"access_token": at, "refresh_token": rt, "expires_in": OPTS["expires_in"],
            "scope": "kimi-code", "token_type": "Bearer"}


def text_of(content):
    """A message's text: a string, or the text parts of an array as OpenClaw sends it."""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content if isinstance(content, str) else ""


class Kimi(Handler):
    request_id = "fake-0"

    def parse_request(self):
        with STATE["lock"]:
            STATE["ids"] += 1
            self.request_id = "fake-%d" % STATE["ids"]
        return super().parse_request()

    def end_headers(self):
        self.send_header("x-request-id", self.request_id)
        super().end_headers()

    def form(self, body):
        return {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}

    def do_GET(self):
        self.record(b"")
        if self.route == "/_stats":
            return self.send_json(200, STATE["stats"])
        self.coding_api(None)

    def do_POST(self):
        body = self.read_body()
        self.record(body)
        r = self.route
        if r == "/_seed":
            with STATE["lock"]:
                return self.send_json(200, issue())
        if r == "/_expire":
            with STATE["lock"]:
                for k in STATE["access"]:
                    STATE["access"][k] = 0
            return self.send_json(200, {})
        if r == "/_revoke":
            with STATE["lock"]:
                STATE["refresh"].discard(json.loads(body)["refresh_token"])
            return self.send_json(200, {})
        if r == "/api/oauth/device_authorization":
            return self.device_authorization(self.form(body))
        if r == "/api/oauth/token":
            return self.token(self.form(body))
        self.coding_api(body)

    def device_authorization(self, f):
        if f.get("client_id") != "17e5f671-d194-4dfb-9706-5516cb48c098":
            return self.send_json(400, {"error": "invalid_client"})
        with STATE["lock"]:
            STATE["stats"]["device_auth"] += 1
            k = STATE["stats"]["device_auth"]
            scripts = OPTS["device_script"]
            steps = scripts[k - 1] if k - 1 < len(scripts) else []
            code = "dc-%d" % k
            STATE["device"][code] = list(steps)
        self.send_json(200, {"device_code": code, "user_code": "USER-%04d" % k,
                             "verification_uri": "https://www.kimi.com/code/authorize_device",
                             "verification_uri_complete": "https://www.kimi.com/code/authorize_device?user_code=USER-%04d" % k,
                             "expires_in": 600, "interval": OPTS["interval"]})

    def token(self, f):
        grant = f.get("grant_type")
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            with STATE["lock"]:
                STATE["stats"]["device_polls"] += 1
                steps = STATE["device"].get(f.get("device_code"))
                if steps is None:
                    return self.send_json(400, {"error": "invalid_grant"})
                step = steps.pop(0) if steps else "ok"
                if step == "ok":
                    del STATE["device"][f["device_code"]]
                    return self.send_json(200, issue())
            errors = {"pending": "authorization_pending", "slow_down": "slow_down",
                      "expired": "expired_token", "denied": "access_denied"}
            return self.send_json(400, {"error": errors[step], "error_description": step})
        if grant == "refresh_token" and OPTS.get("refresh_hang"):
            with STATE["lock"]:
                hung = STATE["stats"]["refresh_hung"] = STATE["stats"].get("refresh_hung", 0) + 1
            if hung <= OPTS["refresh_hang"]:
                return self.hold(3600)
        if grant == "refresh_token":
            with STATE["lock"]:
                STATE["stats"]["refresh_calls"] += 1
                failing = STATE["stats"]["refresh_calls"] <= OPTS["refresh_fail"]
            if failing:
                return self.send_json(503, {"error": "temporarily_unavailable"})
            time.sleep(OPTS["refresh_delay"])
            with STATE["lock"]:
                rt = f.get("refresh_token")
                if rt not in STATE["refresh"]:
                    return self.send_json(401, {"error": "invalid_grant",
                                                "error_description": "The provided authorization grant is invalid"})
                STATE["refresh"].discard(rt)   # rotation: the old one dies at once
                STATE["stats"]["refresh_ok"] += 1
                return self.send_json(200, issue())
        self.send_json(400, {"error": "unsupported_grant_type"})

    def refuse(self):
        """The coding API's refusals, as Kimi words them."""
        ua = self.headers.get("User-Agent", "")
        allowed = OPTS["allowed_agents"]
        if allowed and not any(ua.startswith(a) for a in allowed):
            return 403, {"error": {"type": "access_terminated_error", "message":
                         "Kimi For Coding is currently only available for Coding Agents such as Kimi CLI, Claude Code, Roo Code, Kilo Code, etc."}}
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        with STATE["lock"]:
            exp = STATE["access"].get(token)
        if exp is None or exp < time.time():
            return 401, {"error": {"type": "invalid_authentication_error",
                                   "message": "The API Key appears to be invalid or may have expired. Please verify your credentials and try again."}}
        kinds = {"402": (402, "Your membership has expired"), "403-weekly": (403, "You have reached your weekly usage limit"),
                 "429-balance": (429, "Insufficient balance"), "429": (429, "Rate limit reached"), "500": (500, "internal error")}
        if OPTS["api_error"] in kinds:
            status, msg = kinds[OPTS["api_error"]]
            return status, {"error": {"type": "api_error", "message": msg}}
        return None

    def coding_api(self, body):
        r = self.route
        if not r.startswith("/coding/v1/"):
            return self.send_json(404, {"error": {"message": "not found: " + r}})
        auth = self.headers.get("Authorization")
        with STATE["lock"]:
            if r == "/coding/v1/chat/completions":
                STATE["stats"]["chat_calls"] += 1
            if r.startswith("/coding/v1/messages"):
                STATE["stats"]["messages_calls"] += 1
            if self.headers.get("x-api-key") is not None or (
                    auth is not None and (auth[7:] if auth.startswith("Bearer ") else "") not in STATE["access"]):
                STATE["stats"]["client_keys_forwarded"] += 1
        refused = self.refuse()
        if refused:
            return self.send_json(*refused)
        if r == "/coding/v1/models":
            return self.send_json(200, {"data": [
                {"id": "kimi-for-coding", "context_length": 262144, "supports_reasoning": True, "display_name": "Kimi for coding"},
                {"id": "kimi-k2.6", "context_length": 262144, "supports_reasoning": True}]})
        if r == "/coding/v1/usages":
            return self.send_json(200, {
                "usage": {"name": "Weekly", "limit": 1000, "used": 250, "reset_at": "2030-01-06T00:00:00Z"},
                "limits": [{"detail": {"limit": 100, "remaining": 40, "reset_in": 3600},
                            "window": {"duration": 300, "timeUnit": "MINUTE"}}]})
        if r == "/coding/v1/chat/completions":
            return self.chat(body)
        if r.startswith("/coding/v1/messages"):
            return self.messages(body)
        self.send_json(404, {"error": {"message": "not found: " + r}})

    def chat(self, body):
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            return self.send_json(400, {"error": {"type": "invalid_request_error", "message": "body is not JSON"}})
        messages = req.get("messages") or []
        thinking = (req.get("thinking") or {}).get("type") == "enabled"
        for m in messages:
            if m.get("role") == "assistant" and m.get("tool_calls"):
                if thinking and "reasoning_content" not in m:
                    return self.send_json(400, {"error": {"type": "invalid_request_error", "message":
                                                          "thinking is enabled but reasoning_content is missing in assistant tool call message"}})
                if m.get("content") == "":
                    return self.send_json(400, {"error": {"type": "invalid_request_error", "message": "text content is empty"}})
        users = [m for m in messages if m.get("role") == "user"]
        tools = [m for m in messages if m.get("role") == "tool"]
        prompt = text_of(users[-1].get("content")).strip() if users else ""
        stream = bool(req.get("stream"))
        self.model = req.get("model", "")
        with STATE["lock"]:
            seen = STATE["stats"]["prompts"]
            seen[prompt] = seen.get(prompt, 0) + 1
            calls = seen[prompt]
        flaky = re.fullmatch(r"flaky (\d+)", prompt)
        multi = re.fullmatch(r"multi (.*) ;; (.*)", prompt)
        slow = re.fullmatch(r"slow (\d+)", prompt)
        flood = re.fullmatch(r"flood (\d+)", prompt)
        interval, finish = 0, "stop"
        if tools:
            words = ["tool said: ", text_of(tools[-1].get("content"))]
        elif prompt == "tool":
            return self.tool_call(req, stream)
        elif multi:
            return self.multi_call(req, json.loads(multi.group(1)), json.loads(multi.group(2)))
        elif flaky and calls <= int(flaky.group(1)):
            return self.send_json(503, {"error": {"type": "engine_overloaded_error", "message": "overloaded, try later"}})
        elif prompt == "busy":
            data = json.dumps({"error": {"type": "rate_limit_reached_error", "message": "slow down"}}).encode()
            self.send_response(429)
            self.send_header("Content-Type", "application/json")
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return self.wfile.write(data)
        elif prompt == "think" and stream:
            usage = (req.get("stream_options") or {}).get("include_usage")
            return self.stream_answer([{"reasoning_content": "Let me "}, {"reasoning_content": "think."},
                                       {"content": "Answer."}], "stop", usage)
        elif prompt == "empty":
            words = []
        elif slow:
            words = ["t%d " % i for i in range(int(slow.group(1)))]
            interval = OPTS["token_interval"]
        elif prompt == "cut":
            return self.cut_answer(stream)
        elif flood:
            words = [("%06d" % i) + "x" * 1994 for i in range(int(flood.group(1)))]
        elif self.fault(prompt, calls, stream):
            return
        elif stream:
            words = ["Hello", " from", " Kimi"]
        else:
            words, finish = ["OK"], "length"
        if not stream:
            time.sleep(interval * len(words))
            return self.send_json(200, self.completion({"role": "assistant", "content": "".join(words)},
                                                       finish, len(words)))
        usage = (req.get("stream_options") or {}).get("include_usage")
        self.stream_answer([{"content": w} for w in words], finish, usage, interval)

    def messages(self, body):
        """Kimi's Anthropic endpoint, in Messages' shape."""
        if self.route != "/coding/v1/messages?beta=true":
            return self.send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": "use ?beta=true"}})
        if not self.headers.get("anthropic-version"):
            return self.send_json(400, {"type": "error", "error": {"type": "invalid_request_error",
                                                                   "message": "anthropic-version header is required"}})
        req = json.loads(body or b"{}")
        msgs = req.get("messages") or []
        last = msgs[-1] if msgs else {}
        content = last.get("content")
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content or ""}]
        results = [b for b in blocks if b.get("type") == "tool_result"]
        prompt = "".join(b.get("text", "") for b in blocks if b.get("type") == "text").strip()
        mid = "msg_" + self.request_id.replace("-", "_")
        usage = {"input_tokens": 12, "output_tokens": 3}
        if results:
            r = results[-1].get("content")
            out = [{"type": "text", "text": "tool said: " + (r if isinstance(r, str) else text_of(r))}]
            stop = "end_turn"
        elif prompt == "tool":
            name = ((req.get("tools") or [{}])[0]).get("name") or "get_weather"
            out = [{"type": "tool_use", "id": "toolu_" + self.request_id.replace("-", "_"), "name": name,
                    "input": {"city": "Paris"}}]
            stop = "tool_use"
        else:
            out = [{"type": "text", "text": "Hello from Kimi"}]
            stop = "end_turn"
        message = {"id": mid, "type": "message", "role": "assistant", "model": req.get("model", ""),
                   "content": out, "stop_reason": stop, "stop_sequence": None, "usage": usage}
        if not req.get("stream"):
            return self.send_json(200, message)
        self.start_stream()

        def ev(name, doc):
            self.chunk("event: %s\ndata: %s\n\n" % (name, json.dumps(doc)))
        ev("message_start", {"type": "message_start", "message": dict(message, content=[], stop_reason=None,
                                                                          usage={"input_tokens": 12, "output_tokens": 0})})
        for i, b in enumerate(out):
            if b["type"] == "text":
                ev("content_block_start", {"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})
                for piece in (["Hello", " from", " Kimi"] if b["text"] == "Hello from Kimi" else [b["text"]]):
                    ev("content_block_delta", {"type": "content_block_delta", "index": i,
                                               "delta": {"type": "text_delta", "text": piece}})
            else:
                ev("content_block_start", {"type": "content_block_start", "index": i,
                                           "content_block": dict(b, input={})})
                for piece in ['{"city": ', '"Paris"}']:
                    ev("content_block_delta", {"type": "content_block_delta", "index": i,
                                               "delta": {"type": "input_json_delta", "partial_json": piece}})
            ev("content_block_stop", {"type": "content_block_stop", "index": i})
        ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                             "usage": {"output_tokens": 3}})
        ev("message_stop", {"type": "message_stop"})
        self.end_stream()

    def completion(self, message, finish, tokens):
        return {"id": "chatcmpl-" + self.request_id, "object": "chat.completion", "created": int(time.time()),
                "model": self.model, "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": 10 + tokens}}

    def chunk_doc(self, delta, finish=None, usage=None):
        doc = {"id": "chatcmpl-" + self.request_id, "object": "chat.completion.chunk", "created": int(time.time()),
               "model": self.model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        if usage:
            doc["usage"] = usage
        return doc

    def stream_answer(self, deltas, finish, usage, interval=0, cut=False):
        """Stream the deltas (a token interval before each when slow), then the final chunk and
        [DONE], or a reset when cut. A failed write means the client went away: stop there."""
        self.start_stream()
        with STATE["lock"]:
            st = STATE["stats"]
            st["streams_started"] += 1
            st["streams_active"] += 1
            st["max_concurrent_streams"] = max(st["max_concurrent_streams"], st["streams_active"])
        outcome = "streams_broken"
        try:
            for d in deltas:
                if interval:
                    time.sleep(interval)
                self.event(self.chunk_doc(d))
            if cut:
                outcome = "streams_cut"
                return self.cut()
            n = len(deltas)
            self.event(self.chunk_doc({}, finish, usage and {"prompt_tokens": 10, "completion_tokens": n,
                                                             "total_tokens": 10 + n}))
            self.event("[DONE]")
            self.end_stream()
            outcome = "streams_finished"
        except ConnectionError:   # BrokenPipeError, ConnectionResetError: the client is gone
            self.close_connection = True
        finally:
            with STATE["lock"]:
                STATE["stats"]["streams_active"] -= 1
                STATE["stats"][outcome] += 1

    def tool_call(self, req, stream):
        fns = [t.get("function", {}).get("name") for t in req.get("tools") or [] if t.get("type") == "function"]
        name = fns[0] if fns and fns[0] else "get_weather"
        call_id = "call_" + self.request_id.replace("-", "_")
        args = ['{"city": ', '"Paris"}']
        if OPTS["leak_tools"]:
            leaked = ("Let me check.<|tool_calls_section_begin|><|tool_call_begin|>functions.%s:0"
                      "<|tool_call_argument_begin|>{\"city\": \"Paris\"}<|tool_call_end|><|tool_calls_section_end|>" % name)
            if not stream:
                return self.send_json(200, self.completion({"role": "assistant", "content": leaked}, "stop", 8))
            cuts = [0, 20, 40, 95, len(leaked)]   # mid-marker, mid-name, mid-arguments
            usage = (req.get("stream_options") or {}).get("include_usage")
            return self.stream_answer([{"content": leaked[a:b]} for a, b in zip(cuts, cuts[1:])], "stop", usage)
        if not stream:
            return self.send_json(200, self.completion(
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": name, "arguments": "".join(args)}}]},
                "tool_calls", 8))
        first = {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        deltas = [{"role": "assistant", "tool_calls": [first]}]
        deltas += [{"tool_calls": [{"index": 0, "function": {"arguments": a}}]} for a in args]
        usage = (req.get("stream_options") or {}).get("include_usage")
        self.stream_answer(deltas, "tool_calls", usage)

    def multi_call(self, req, a, b):
        """Two calls at once, their fragments interleaved, after some reasoning."""
        fns = [t.get("function", {}).get("name") for t in req.get("tools") or [] if t.get("type") == "function"]
        names = (fns + ["first_tool", "second_tool"])[:2] if len(fns) < 2 else fns[:2]
        ids = ["call_a_" + self.request_id.replace("-", "_"), "call_b_" + self.request_id.replace("-", "_")]
        args = [json.dumps(a), json.dumps(b)]
        pieces = [[x[i:i + 5] for i in range(0, len(x), 5)] for x in args]
        deltas = [{"role": "assistant", "reasoning_content": "I will look."},
                  {"tool_calls": [{"index": k, "id": ids[k], "type": "function",
                                   "function": {"name": names[k], "arguments": ""}} for k in (0, 1)]}]
        for i in range(max(len(pieces[0]), len(pieces[1]))):
            for k in (1, 0):   # the second call's pieces first: interleaved, out of order
                if i < len(pieces[k]):
                    deltas.append({"tool_calls": [{"index": k, "function": {"arguments": pieces[k][i]}}]})
        usage = (req.get("stream_options") or {}).get("include_usage")
        self.stream_answer(deltas, "tool_calls", usage)

    def cut_answer(self, stream):
        """Two tokens, then a reset. Not streamed: half of a JSON body, then a reset."""
        if stream:
            return self.stream_answer([{"content": "Hello"}, {"content": " from"}], None, None, cut=True)
        data = json.dumps(self.completion({"role": "assistant", "content": "Hello from Kimi"}, "stop", 3)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[:len(data) // 2])
        self.cut()


    # --- fault injection ---------------------------------------------------------------------

    def fault(self, prompt, calls, stream):
        """Answer a fault-injection prompt (see the docstring): True when answered."""
        burst = re.fullmatch(r"burst (500|502|503) (\d+)", prompt)
        wait = re.fullmatch(r"retry-after (\d+)", prompt)
        reset = re.fullmatch(r"reset (\d+)", prompt)
        long_line = re.fullmatch(r"long (\d+)", prompt)
        if burst:
            if calls > int(burst.group(2)):
                return False
            if burst.group(1) == "502":
                page = ("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
                        "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
                self.send_raw(502, "text/html", page.encode())
            else:
                self.send_json(int(burst.group(1)), {"error": {"type": "engine_overloaded_error" if burst.group(1) == "503"
                                                               else "server_error", "message": "fault injected"}})
        elif wait:
            if calls > 1:
                return False
            self.send_json(429, {"error": {"type": "rate_limit_reached_error", "message": "slow down"}},
                           {"Retry-After": wait.group(1)})
        elif reset:
            if calls > int(reset.group(1)):
                return False
            self.cut()
        elif prompt == "truncated body" or (prompt == "truncated" and not stream):
            data = json.dumps(self.completion({"role": "assistant", "content": "Hello from Kimi"}, "stop", 3)).encode()
            self.send_raw(200, "application/json", data[:len(data) // 2])
        elif not stream:
            return False
        elif prompt == "garbage":
            self.raw_stream([b": keep-alive\n\n", b"foo: bar\n", self.data_line({"content": "Hello"}),
                             b"a line without a colon\n\n", b"\xff\xfe\x00\x80 not text\n\n", b"event: ping\n\n",
                             b"retry: soon\nid: 7\n", self.data_line({"content": " from"}),
                             self.data_line({"content": " Kimi"}), self.data_line({}, "stop"), b"data: [DONE]\n\n"])
        elif prompt == "truncated":
            cut = self.data_line({"content": " from"})
            self.raw_stream([self.data_line({"content": "Hello"}), cut[:len(cut) // 2] + b"\n\n",
                             self.data_line({"content": " Kimi"}), self.data_line({}, "stop"), b"data: [DONE]\n\n"])
        elif long_line:
            line = self.data_line({"content": "x" * (int(long_line.group(1)) << 20)})
            self.raw_stream([line[i:i + (1 << 20)] for i in range(0, len(line), 1 << 20)] +
                            [self.data_line({}, "stop"), b"data: [DONE]\n\n"])
        elif prompt in ("nodone", "hang"):
            self.raw_stream([self.data_line({"content": w}) for w in ("Hello", " from", " Kimi")] +
                            [self.data_line({}, "stop")], end=prompt == "nodone")
            if prompt == "hang":
                self.hold(60)
        elif prompt == "drip":
            whole = b"".join([self.data_line({"content": w}) for w in ("Hello", " from", " Kimi")] +
                             [self.data_line({}, "stop"), b"data: [DONE]\n\n"])
            self.raw_stream([whole[i:i + 1] for i in range(len(whole))], interval=OPTS["drip_interval"])
        else:
            return False
        return True

    def send_raw(self, status, ctype, data, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def data_line(self, delta, finish=None):
        """One event of the stream as bytes: a chunk with this delta."""
        return b"data: " + json.dumps(self.chunk_doc(delta, finish)).encode() + b"\n\n"

    def raw_stream(self, pieces, interval=0, end=True):
        """A 200 event stream of these raw pieces, an HTTP chunk each (an interval before each);
        the body ends after them unless end is false. Stops when the client has gone: /_stats
        then counts it in fault_streams_broken, and fault_bytes_sent is what the client got."""
        self.start_stream()
        sent = 0
        try:
            for piece in pieces:
                if interval:
                    time.sleep(interval)
                self.chunk(piece)
                sent += len(piece)
            if end:
                self.end_stream()
        except ConnectionError:
            self.close_connection = True
            with STATE["lock"]:
                STATE["stats"]["fault_streams_broken"] = STATE["stats"].get("fault_streams_broken", 0) + 1
        with STATE["lock"]:
            STATE["stats"]["fault_bytes_sent"] = sent

    def hold(self, seconds):
        """Keep the connection open and silent until the client closes it (or seconds pass)."""
        import select
        import socket
        deadline = time.time() + seconds
        try:
            while time.time() < deadline:
                if select.select([self.connection], [], [], 0.2)[0] and not self.connection.recv(1, socket.MSG_PEEK):
                    break
        except OSError:
            pass
        self.close_connection = True

def setup(httpd, extra):
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--interval", type=float, default=1)
    ap.add_argument("--device-script", default="")
    ap.add_argument("--ttl", type=float, default=900)
    ap.add_argument("--expires-in", type=float)
    ap.add_argument("--refresh-delay", type=float, default=0)
    ap.add_argument("--refresh-fail", type=int, default=0)
    ap.add_argument("--allowed-agents", default="")
    ap.add_argument("--api-error", default="")
    ap.add_argument("--token-interval-ms", type=float, default=50)
    ap.add_argument("--leak-tools", action="store_true")
    ap.add_argument("--refresh-hang", type=int, default=0)
    ap.add_argument("--drip-interval-ms", type=float, default=1000)
    a = ap.parse_args(extra)
    OPTS.update(interval=a.interval, ttl=a.ttl, expires_in=a.expires_in if a.expires_in is not None else a.ttl,
                refresh_delay=a.refresh_delay, refresh_fail=a.refresh_fail, allowed_agents=[x for x in a.allowed_agents.split(",") if x],
                api_error=a.api_error, token_interval=a.token_interval_ms / 1000, leak_tools=a.leak_tools,
                device_script=[[w for w in s.split(",") if w] for s in a.device_script.split(";")] if a.device_script else [])
    OPTS.update(refresh_hang=a.refresh_hang, drip_interval=a.drip_interval_ms / 1000)


if __name__ == "__main__":
    serve(Kimi, setup=setup)
