"""Hold N chat-completion streams open at once and count those that end with `data: [DONE]`.

One asyncio task per stream, no threads: every stream connects first, then all send their
request together. Prints a summary; exits 1 if any stream failed.
usage: python3 streams.py --n 2000 --url http://127.0.0.1:PORT/v1/chat/completions [--timeout 60] [--model m]"""
import argparse
import asyncio
import collections
import json
import resource
import sys
import time
import urllib.parse

BODY = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


class Run:
    def __init__(self, n):
        self.waiting, self.connected, self.open, self.peak = n, 0, 0, 0
        self.all_connected = asyncio.Event()
        self.done, self.events, self.errors = 0, [], collections.Counter()

    def arrived(self, connected):
        """A barrier: requests go out once every stream has connected or failed to."""
        self.connected += connected
        self.waiting -= 1
        if self.waiting == 0:
            self.all_connected.set()


async def read_chunked(reader):
    body = b""
    while True:
        size = int((await reader.readline()).split(b";")[0], 16)
        data = await reader.readexactly(size + 2)
        if size == 0:
            return body
        body += data[:-2]


async def stream(run, host, port, target, body):
    """Connect, wait until every stream is connected, then send the request and read it all."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except BaseException:  # refused, or cancelled by its deadline: the others must not wait
        run.arrived(0)
        raise
    try:
        run.arrived(1)
        await run.all_connected.wait()
        writer.write(b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % (target.encode(), host.encode(), port, len(body))
                     + body)
        await writer.drain()
        status = await reader.readline()
        if not status.startswith(b"HTTP/1.1 200"):
            raise RuntimeError("status %r" % status.strip())
        headers = (await reader.readuntil(b"\r\n\r\n")).lower()
        if b"transfer-encoding: chunked" not in headers:
            raise RuntimeError("not chunked")
        run.open += 1
        run.peak = max(run.peak, run.open)
        try:
            answer = await read_chunked(reader)
        finally:
            run.open -= 1
        if not answer.endswith(b"data: [DONE]\n\n"):
            raise RuntimeError("no [DONE]")
        run.events.append(answer.count(b"data: ") - 1)
        run.done += 1
    finally:
        writer.close()


async def guarded(run, timeout, *args):
    try:
        await asyncio.wait_for(stream(run, *args), timeout)
    except Exception as e:  # every failure is counted by kind, none stops the others
        run.errors[type(e).__name__ + (": %s" % e if isinstance(e, RuntimeError) else "")] += 1


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--url", required=True)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds for each stream")
    ap.add_argument("--model", default="m")
    args = ap.parse_args()
    url = urllib.parse.urlsplit(args.url)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.n + 16:
        print("streams: only %d descriptors (ulimit -Hn) for %d streams" % (hard, args.n), file=sys.stderr)

    run = Run(args.n)
    t0 = time.perf_counter()
    await asyncio.gather(*(guarded(run, args.timeout, url.hostname, url.port or 80, url.path or "/",
                                   json.dumps(dict(BODY, model=args.model)).encode())
                           for _ in range(args.n)))
    wall = time.perf_counter() - t0
    ev = sorted(run.events) or [0]
    print("streams: %d of %d complete with [DONE], %d errors; %d connected at once, %d streaming "
          "at once at peak; %d-%d events before [DONE]; %.2f s" % (
              run.done, args.n, sum(run.errors.values()), run.connected, run.peak, ev[0], ev[-1],
              wall))
    for kind, count in run.errors.most_common(5):
        print("  %5d  %s" % (count, kind))
    return 0 if run.done == args.n else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
