#!/usr/bin/python3
"""A minimal Splunk HEC stand-in for the event-stream benchmark.

    hec-receiver.py --port-file FILE [--mode-file FILE] [--count-file FILE]

Listens on a free loopback port (written to --port-file), answers every
POST to /services/collector/event with 200 {"text":"Success","code":0}
and counts the events (lines) it got.  While --mode-file holds "stall" it
reads each request and never answers (a SIEM that hangs); "ok" again
answers.  Every second the count goes to --count-file.  SIGTERM stops it.
"""
import argparse
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--mode-file")
    ap.add_argument("--count-file")
    a = ap.parse_args()
    state = {"events": 0, "requests": 0, "stalled": 0}
    lock = threading.Lock()
    release = threading.Event()

    def mode():
        if not a.mode_file:
            return "ok"
        try:
            with open(a.mode_file) as f:
                return f.read().strip() or "ok"
        except OSError:
            return "ok"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            # No Nagle: the answer's two writes must not wait for the
            # client's delayed ACK (40 ms a request is not what we measure).
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY,
                                       1)

        def log_message(self, *args):
            pass

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n)
            if mode() == "stall":
                with lock:
                    state["stalled"] += 1
                release.wait(3600)
                self.close_connection = True
                return
            with lock:
                state["events"] += body.count(b"\n") + (
                    1 if body and not body.endswith(b"\n") else 0)
                state["requests"] += 1
            out = b'{"text":"Success","code":0}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    with open(a.port_file + ".tmp", "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(a.port_file + ".tmp", a.port_file)

    def writer():
        while True:
            if a.count_file:
                with lock:
                    line = "%d %d %d\n" % (state["events"], state["requests"],
                                           state["stalled"])
                with open(a.count_file + ".tmp", "w") as f:
                    f.write(line)
                os.rename(a.count_file + ".tmp", a.count_file)
            time.sleep(0.2)

    threading.Thread(target=writer, daemon=True).start()

    def stop(*_):
        release.set()
        threading.Thread(target=srv.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
