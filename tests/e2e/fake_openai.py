"""A fake OpenAI-compatible server for the tests. The model name picks the behaviour:
  echo     streams "Hello from the fake server" a word per event, then [DONE]
  gate     streams "first", waits until GET /_release, then the rest
  cut      streams two words, then drops the connection mid-stream
  failing  streams two words, then an error object as an event (as some servers report a
           failure mid-stream), then [DONE]
  unended  streams two words, then ends the response cleanly: no finish_reason, no [DONE]
  garbage  streams an event that is not JSON
  json     answers with one JSON completion instead of a stream
  error500 answers 500 with an OpenAI-style error
  slow     sends nothing for 5 s, then the answer
  tool     streams a call of get_weather with {"city": "Paris"}: id and name first, then the
           arguments in two fragments; finish_reason "tool_calls". Not streamed: one JSON answer.
A role "tool" message in the request wins: "tool said: <its content>", streamed as one word.
The key must be "test-key" (else 401, as OpenAI answers).
Some GET paths answer in ways a client must cope with:
  /_dup       a JSON answer with the header X-Dup twice ("a", then "b")
  /_continue  an interim "100 Continue" block, then a 201 answer with X-Final: yes
  /_stall     nothing at all for 30 s (or until the client hangs up)"""
import json
import threading
import time

from fakeserver import Handler, serve

RELEASE = threading.Event()
WORDS = ["Hello", " from", " the", " fake", " server"]


def chunk_doc(model, content=None, finish=None, usage=None):
    doc = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": model,
           "choices": [{"index": 0, "delta": {} if content is None else {"content": content},
                        "finish_reason": finish}]}
    if usage:
        doc["usage"] = usage
    return doc


class OpenAI(Handler):
    def do_GET(self):
        self.record(b"")
        if self.route == "/_release":
            RELEASE.set()
            return self.send_json(200, {"released": True})
        if self.route == "/_dup":
            self.send_response(200)
            self.send_header("X-Dup", "a")
            self.send_header("X-Dup", "b")
            self.send_header("Content-Length", "2")
            self.end_headers()
            return self.wfile.write(b"{}")
        if self.route == "/_continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.wfile.flush()
            return self.send_json(201, {"final": True}, {"X-Final": "yes"})
        if self.route == "/_stall":
            time.sleep(30)
            return self.send_json(200, {"late": True})
        if self.route == "/v1/models":
            return self.send_json(200, {"object": "list", "data": [{"id": "echo", "object": "model"}]})
        self.send_json(404, {"error": {"message": "no such path", "type": "not_found"}})

    def do_POST(self):
        body = self.read_body()
        self.record(body)
        if self.route != "/v1/chat/completions":
            return self.send_json(404, {"error": {"message": "no such path", "type": "not_found"}})
        if self.headers.get("Authorization") != "Bearer test-key":
            return self.send_json(401, {"error": {"message": "Incorrect API key provided",
                                                  "type": "invalid_request_error", "code": "invalid_api_key"}})
        try:
            req = json.loads(body)
        except ValueError:
            return self.send_json(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
        model = req.get("model")
        if model == "error500":
            return self.send_json(500, {"error": {"message": "the fake is having a bad day", "type": "server_error"}})
        if model == "json":
            return self.send_json(200, {"id": "c1", "object": "chat.completion", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "whole answer"}, "finish_reason": "stop"}]})
        if model == "slow":
            time.sleep(5)
        results = [m for m in req.get("messages") or [] if m.get("role") == "tool"]
        if model == "tool" and not results:
            return self.tool_call(req)
        self.start_stream()
        self.chunk(": keep-alive comment\n\n")
        if model == "garbage":
            self.event("this is not json")
            return self.end_stream()
        if model == "gate":
            self.event(chunk_doc(model, "first"))
            RELEASE.wait(20)
            self.event(chunk_doc(model, " second"))
        elif results:
            self.event(chunk_doc(model, "tool said: " + str(results[-1].get("content"))))
        elif model in ("cut", "failing", "unended"):
            self.event(chunk_doc(model, WORDS[0]))
            self.event(chunk_doc(model, WORDS[1]))
            if model == "cut":
                return self.cut()
            if model == "failing":
                self.event({"error": {"message": "the fake fell over", "type": "server_error"}})
                self.event("[DONE]")
            return self.end_stream()
        else:
            for w in WORDS:
                self.event(chunk_doc(model, w))
        self.event(chunk_doc(model, finish="stop",
                             usage={"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}))
        self.event("[DONE]")
        self.end_stream()

    def tool_call(self, req):
        call = {"id": "call_fake_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
        if not req.get("stream"):
            return self.send_json(200, {"id": "c2", "object": "chat.completion", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                 "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 3, "completion_tokens": 7, "total_tokens": 10}})
        self.start_stream()
        first = {"index": 0, "id": call["id"], "type": "function", "function": {"name": "get_weather", "arguments": ""}}
        for delta in [{"role": "assistant", "tool_calls": [first]},
                      {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]},
                      {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}]:
            self.event({"id": "chatcmpl-2", "object": "chat.completion.chunk", "model": "tool",
                        "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        self.event(chunk_doc("tool", finish="tool_calls",
                             usage={"prompt_tokens": 3, "completion_tokens": 7, "total_tokens": 10}))
        self.event("[DONE]")
        self.end_stream()


if __name__ == "__main__":
    serve(OpenAI)
