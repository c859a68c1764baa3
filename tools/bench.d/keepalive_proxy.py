#!/usr/bin/env python3
"""A keep-alive HTTP/1.1 front for moto_server, for tools/bench.d/stream (BENCH_KEEPALIVE=1).

    keepalive_proxy.py UPSTREAM_PORT

moto_server (werkzeug) answers every request with `Connection: close`, so a client pays a TCP
connect and close per call (in its own thread, in the kernel, loopback included); DynamoDB keeps
connections open. This front keeps the client's connections open and forwards each request to
moto as it is (headers and body unchanged, so routing by X-Amz-Target and Authorization works),
opening the upstream connection itself: the per-request connection cost moves out of the
process under test. Prints its port on its first stdout line once listening.
"""
import http.client
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM = int(sys.argv[1])
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def forward(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        upstream = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body,
                             headers={k: v for k, v in self.headers.items() if k.lower() not in HOP})
            answer = upstream.getresponse()
            data = answer.read()
            self.send_response(answer.status, answer.reason)
            for k, v in answer.getheaders():
                if k.lower() not in HOP:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        finally:
            upstream.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a clean stop for tools/lib.sh's hs_stop_all
srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
srv.daemon_threads = True
print(srv.server_address[1], flush=True)
srv.serve_forever()
