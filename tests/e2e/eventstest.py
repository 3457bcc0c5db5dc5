"""Helpers for the event-stream tests (test_events.py): a Splunk HEC
receiver (Python's http.server in a thread), a real rsyslogd on a free
loopback port (plain TCP or TLS through its gtls driver), an RFC 5424
parser, test certificates made with the openssl command, and readers of the
JSON-lines file sink.  Standard library only.
"""
import json
import os
import re
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import mdmtest

RSYSLOGD = "/usr/sbin/rsyslogd"


# ---- the JSON-lines file sink ------------------------------------------------

def read_events(path):
    """Every event in the file sink's file (and nothing torn)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    assert not data or data.endswith(b"\n"), "torn last line in %s" % path
    return [json.loads(line) for line in data.decode().splitlines()]


def wait_events(path, cond, timeout=15, what="events"):
    """Poll the file until cond(events) is true; returns the events."""
    def probe():
        evs = read_events(path)
        return evs if cond(evs) else None
    return mdmtest.wait_for(probe, timeout=timeout, what=what)


# ---- Splunk HEC ----------------------------------------------------------------

def parse_hec_body(body):
    """A HEC request body: JSON objects one after another."""
    dec = json.JSONDecoder()
    text = body.decode()
    out, i = [], 0
    while True:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        if i >= len(text):
            return out
        obj, i = dec.raw_decode(text, i)
        out.append(obj)


class HecReceiver:
    """An HTTP Event Collector stand-in on 127.0.0.1.  mode: "ok" answers
    200 {"text":"Success","code":0}; "fail" answers 503; "stall" reads the
    request and never answers (until stop).  Every request that got a 200
    is kept in .requests as {path, headers, envelopes}."""

    def __init__(self, port=0):
        self.port = port
        self.mode = "ok"
        self.requests = []
        self.n_stalled = 0
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.server = None
        self.conns = set()

    def start(self):
        recv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP,
                                           socket.TCP_NODELAY, 1)
                with recv.lock:
                    recv.conns.add(self.connection)

            def finish(self):
                with recv.lock:
                    recv.conns.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                if recv.mode == "stall":
                    with recv.lock:
                        recv.n_stalled += 1
                    recv.release.wait(120)
                    self.close_connection = True
                    return
                if recv.mode == "fail":
                    out = b'{"text":"Server is busy","code":9}'
                    self.send_response(503)
                else:
                    envs = parse_hec_body(body)
                    with recv.lock:
                        recv.requests.append({"path": self.path,
                                              "headers": dict(self.headers),
                                              "envelopes": envs})
                    out = b'{"text":"Success","code":0}'
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.release.clear()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        """Down like a dead receiver: the listening socket and every
        kept-alive connection closed."""
        self.release.set()
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def envelopes(self):
        with self.lock:
            return [e for r in self.requests for e in r["envelopes"]]

    def events(self):
        return [e["event"] for e in self.envelopes()]

    def wait_ids(self, ids, timeout=30):
        """Wait until every event id in ids has arrived at least once."""
        want = set(ids)
        return mdmtest.wait_for(
            lambda: want <= {e["id"] for e in self.events()},
            timeout=timeout, what="%d events at the HEC receiver" % len(want))


def write_token(path, token="00000000-1111-2222-3333-444444444444",
                mode=0o600):
    with open(path, "w") as f:
        f.write(token + "\n")
    os.chmod(path, mode)
    return token


# ---- rsyslog and RFC 5424 --------------------------------------------------------

def wait_port(port, timeout=15, what="port"):
    def probe():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    mdmtest.wait_for(probe, timeout=timeout, what=what)


class Rsyslog:
    """rsyslogd -n with imtcp on 127.0.0.1:port, writing every message
    received, as received (%rawmsg%), one per line, to .out.  tls: a dict
    {ca, cert, key} for the gtls driver (RFC 5425)."""

    def __init__(self, workdir, port=None, tls=None):
        self.dir = str(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or mdmtest.free_port_closed()
        self.tls = tls
        self.out = os.path.join(self.dir, "received.log")
        self.proc = None
        self.starts = 0

    def conf(self):
        lines = ['global(workDirectory="%s" maxMessageSize="256k"' % self.dir]
        if self.tls:
            lines[0] += (' defaultNetstreamDriver="gtls"'
                         ' defaultNetstreamDriverCAFile="%s"'
                         ' defaultNetstreamDriverCertFile="%s"'
                         ' defaultNetstreamDriverKeyFile="%s"'
                         % (self.tls["ca"], self.tls["cert"], self.tls["key"]))
        lines[0] += ")"
        if self.tls:
            lines.append('module(load="imtcp" streamDriver.name="gtls" '
                         'streamDriver.mode="1" streamDriver.authMode="anon")')
        else:
            lines.append('module(load="imtcp")')
        lines += [
            'input(type="imtcp" address="127.0.0.1" port="%d")' % self.port,
            'template(name="raw" type="string" string="%rawmsg%\\n")',
            '*.* action(type="omfile" file="%s" template="raw")' % self.out,
        ]
        return "\n".join(lines) + "\n"

    def start(self):
        conf = os.path.join(self.dir, "rsyslog.conf")
        with open(conf, "w") as f:
            f.write(self.conf())
        pid = os.path.join(self.dir, "rsyslogd.pid")
        if os.path.exists(pid):
            os.unlink(pid)
        self.errlog = os.path.join(self.dir, "rsyslogd.%d.log" % self.starts)
        self.starts += 1
        with open(self.errlog, "wb") as err:
            self.proc = subprocess.Popen([RSYSLOGD, "-n", "-f", conf, "-i", pid],
                                         stdout=err, stderr=err,
                                         stdin=subprocess.DEVNULL)
        try:
            wait_port(self.port, what="rsyslogd on port %d" % self.port)
        except AssertionError:
            self.stop()
            raise AssertionError("rsyslogd did not listen: " +
                                 open(self.errlog).read())
        return self

    def stop(self):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def lines(self):
        """The complete lines rsyslogd has written: a line it is still
        writing (no newline yet) is left for the next read."""
        try:
            with open(self.out, "rb") as f:
                data = f.read().decode(errors="replace")
        except FileNotFoundError:
            return []
        return [l for l in data.split("\n")[:-1] if l]

    def messages(self):
        return [parse_5424(l) for l in self.lines()]

    def wait_ids(self, ids, timeout=30):
        want = set(ids)
        return mdmtest.wait_for(
            lambda: want <= {json.loads(m["msg"])["id"]
                             for m in self.messages()},
            timeout=timeout, what="%d events at rsyslogd" % len(want))


HEADER_RE = re.compile(r"^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (.*)$",
                       re.S)
SD_PARAM_RE = re.compile(r'\s*([^\s="\]]+)="((?:[^"\\\]]|\\["\\\]])*)"')


def parse_5424(line):
    """RFC 5424: {pri, facility, severity, timestamp, hostname, app, procid,
    msgid, sd: {sd-id: {name: value}}, msg}.  Raises on malformed input."""
    m = HEADER_RE.match(line)
    assert m, "not RFC 5424: %r" % line[:200]
    pri = int(m.group(1))
    out = {"pri": pri, "facility": pri // 8, "severity": pri % 8,
           "timestamp": m.group(2), "hostname": m.group(3),
           "app": m.group(4), "procid": m.group(5), "msgid": m.group(6),
           "sd": {}}
    rest = m.group(7)
    if rest.startswith("-"):
        rest = rest[1:]
    else:
        while rest.startswith("["):
            end_id = re.match(r"\[([^\s\]=\"]+)", rest)
            assert end_id, rest[:100]
            sd_id = end_id.group(1)
            pos = end_id.end()
            params = {}
            while True:
                pm = SD_PARAM_RE.match(rest, pos)
                if not pm:
                    break
                params[pm.group(1)] = re.sub(r'\\(["\\\]])', r"\1",
                                             pm.group(2))
                pos = pm.end()
            assert rest[pos] == "]", "bad SD element: %r" % rest[:200]
            out["sd"][sd_id] = params
            rest = rest[pos + 1:]
    assert rest.startswith(" ") or rest == "", rest[:50]
    out["msg"] = rest[1:]
    return out


# ---- certificates ---------------------------------------------------------------------

def make_certs(d, name="localhost"):
    """A CA and a server certificate for name (and 127.0.0.1) signed by
    it, with the openssl command.  Returns {ca, cert, key}."""
    d = str(d)
    os.makedirs(d, exist_ok=True)
    p = lambda n: os.path.join(d, n)  # noqa: E731

    def ossl(*args):
        r = subprocess.run(["openssl"] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        assert r.returncode == 0, r.stderr
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=mdm test CA", "-keyout", p("ca.key"), "-out",
         p("ca.pem"))
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + name,
         "-keyout", p("key.pem"), "-out", p("req.csr"))
    with open(p("ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:%s,IP:127.0.0.1\n" % name)
    ossl("x509", "-req", "-in", p("req.csr"), "-CA", p("ca.pem"), "-CAkey",
         p("ca.key"), "-CAcreateserial", "-days", "2", "-extfile",
         p("ext.cnf"), "-out", p("cert.pem"))
    return {"ca": p("ca.pem"), "cert": p("cert.pem"), "key": p("key.pem")}
