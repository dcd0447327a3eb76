"""Shared pieces of the fake servers the end-to-end tests start: HTTP/1.1 with chunked
streams, optional TLS, a port announced on stdout, and a log of every request."""
import json
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def is_utf8(data):
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake"

    def log_message(self, *args):  # quiet: tests read the request log instead
        pass

    def setup(self):
        super().setup()
        # Small writes go out at once: without this, Nagle and delayed ACKs add 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def route(self):
        """The path, also when a proxy-style request names the whole URL."""
        if self.path.startswith(("http://", "https://")):
            return "/" + self.path.split("/", 3)[3] if self.path.count("/") >= 3 else "/"
        return self.path

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def record(self, body):
        """Append the request to the log file the test reads (headers and body)."""
        entry = {"method": self.command, "path": self.path,
                 "headers": {k.lower(): v for k, v in self.headers.items()},
                 "body": body.decode("utf-8", "replace"), "peer": self.client_address[1],
                 "utf8": is_utf8(body)}
        log = self.server.request_log
        if log:
            with self.server.lock, open(log, "a") as f:
                f.write(json.dumps(entry) + "\n")

    def send_json(self, status, doc, headers=None):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.headers.get("X-Close"):   # lets a benchmark force a new connection per request
            self.send_header("Connection", "close")
            self.close_connection = True
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self, status=200):
        self.send_response(status)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

    def chunk(self, raw):
        """One HTTP chunk carrying raw bytes of the event stream."""
        if isinstance(raw, str):
            raw = raw.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(raw), raw))
        self.wfile.flush()

    def event(self, data):
        self.chunk("data: %s\n\n" % (data if isinstance(data, str) else json.dumps(data)))

    def end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def cut(self):
        """Drop the connection mid-stream: no final chunk, a reset if the OS allows."""
        self.wfile.flush()
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        self.connection.close()
        self.close_connection = True


class Server(ThreadingHTTPServer):
    """A thread per connection (daemon threads: a stuck stream never blocks exit), and a
    listen backlog deep enough for a hundred clients that connect at the same moment."""
    daemon_threads = True
    request_queue_size = 512


def serve(handler_class, argv=None, setup=None):
    """Parse --tls CERT KEY and --log FILE, bind 127.0.0.1 on a free port, print it, serve."""
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--log")
    ap.add_argument("--port", type=int, default=0)
    args, extra = ap.parse_known_args(argv)
    httpd = Server(("127.0.0.1", args.port), handler_class)
    httpd.request_log = args.log
    httpd.lock = threading.Lock()
    if setup:
        setup(httpd, extra)
    if args.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls[0], args.tls[1])
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    print(httpd.server_address[1], flush=True)
    sys.stdout.close()
    httpd.serve_forever()
