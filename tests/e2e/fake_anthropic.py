"""A fake of Anthropic's own API (a service with Messages and no chat completions), for the
providers that speak only Messages. Like the real one it wants `x-api-key: test-key` (else 401),
`anthropic-version` and `max_tokens` (else 400), and answers in Messages' shape.
POST /v1/messages answers according to the text of the last user turn:
  tool       a thinking block ("I should look."), then a call of the request's first tool with
             {"city": "Paris"} (streamed: its input in two input_json_delta fragments)
  overload   streamed: "Hel", then an `error` event (overloaded_error) and the end
  other      "Hello from Anthropic" (three text deltas when streamed)
A tool_result block in that turn wins: "tool said: <its content>".
GET /v1/models lists two models in Anthropic's list shape."""
import json

from fakeserver import Handler, serve

USAGE = {"input_tokens": 20, "output_tokens": 4, "cache_read_input_tokens": 5}


def error(kind, message):
    return {"type": "error", "error": {"type": kind, "message": message}}


def text_of(content):
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or [] if b.get("type") == "text")


class Anthropic(Handler):
    def refused(self):
        if self.headers.get("x-api-key") != "test-key":
            return 401, error("authentication_error", "invalid x-api-key")
        if not self.headers.get("anthropic-version"):
            return 400, error("invalid_request_error", "anthropic-version: header is required")

    def do_GET(self):
        self.record(b"")
        bad = self.refused()
        if bad:
            return self.send_json(*bad)
        if self.route == "/v1/models":
            return self.send_json(200, {"data": [
                {"type": "model", "id": "claude-fake-1", "display_name": "Claude Fake", "created_at": "2026-01-01T00:00:00Z"},
                {"type": "model", "id": "claude-fake-2", "display_name": "Claude Fake 2", "created_at": "2026-02-01T00:00:00Z"}],
                "has_more": False, "first_id": "claude-fake-1", "last_id": "claude-fake-2"})
        self.send_json(404, error("not_found_error", "no such path"))

    def do_POST(self):
        body = self.read_body()
        self.record(body)
        bad = self.refused()
        if bad:
            return self.send_json(*bad)
        if self.route != "/v1/messages":
            return self.send_json(404, error("not_found_error", "no such path: " + self.route))
        req = json.loads(body or b"{}")
        if not isinstance(req.get("max_tokens"), int):
            return self.send_json(400, error("invalid_request_error", "max_tokens: Field required"))
        last = (req.get("messages") or [{}])[-1]
        content = last.get("content")
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content or ""}]
        results = [b for b in blocks if b.get("type") == "tool_result"]
        prompt = text_of(blocks).strip()
        if results:
            out, stop = [{"type": "text", "text": "tool said: " + text_of(results[-1].get("content"))}], "end_turn"
        elif prompt == "tool":
            name = ((req.get("tools") or [{}])[0]).get("name") or "get_weather"
            out = [{"type": "thinking", "thinking": "I should look.", "signature": "sig-1"},
                   {"type": "tool_use", "id": "toolu_fake_1", "name": name, "input": {"city": "Paris"}}]
            stop = "tool_use"
        else:
            out, stop = [{"type": "text", "text": "Hello from Anthropic"}], "end_turn"
        message = {"id": "msg_fake_1", "type": "message", "role": "assistant", "model": req.get("model", ""),
                   "content": out, "stop_reason": stop, "stop_sequence": None, "usage": USAGE}
        if not req.get("stream"):
            return self.send_json(200, message)
        self.start_stream()

        def ev(name, **doc):
            self.chunk("event: %s\ndata: %s\n\n" % (name, json.dumps(dict(doc, type=name))))
        ev("message_start", message=dict(message, content=[], stop_reason=None,
                                         usage={"input_tokens": 20, "output_tokens": 0, "cache_read_input_tokens": 5}))
        ev("ping")
        if prompt == "overload" and not results:
            ev("content_block_start", index=0, content_block={"type": "text", "text": ""})
            ev("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hel"})
            ev("error", error=error("overloaded_error", "Overloaded")["error"])
            return self.end_stream()
        for i, b in enumerate(out):
            if b["type"] == "text":
                ev("content_block_start", index=i, content_block={"type": "text", "text": ""})
                pieces = ["Hello", " from", " Anthropic"] if b["text"] == "Hello from Anthropic" else [b["text"]]
                for piece in pieces:
                    ev("content_block_delta", index=i, delta={"type": "text_delta", "text": piece})
            elif b["type"] == "thinking":
                ev("content_block_start", index=i, content_block={"type": "thinking", "thinking": "", "signature": ""})
                ev("content_block_delta", index=i, delta={"type": "thinking_delta", "thinking": b["thinking"]})
                ev("content_block_delta", index=i, delta={"type": "signature_delta", "signature": b["signature"]})
            else:
                ev("content_block_start", index=i, content_block=dict(b, input={}))
                for piece in ['{"city": ', '"Paris"}']:
                    ev("content_block_delta", index=i, delta={"type": "input_json_delta", "partial_json": piece})
            ev("content_block_stop", index=i)
        ev("message_delta", delta={"stop_reason": stop, "stop_sequence": None}, usage={"output_tokens": 4})
        ev("message_stop")
        self.end_stream()


if __name__ == "__main__":
    serve(Anthropic)
