"""Helpers for the end-to-end tests: a real mdmd in its own temp dir, a small
HTTP client on http.client, read-only views of its SQLite database, and JWT
pieces for forging bad tokens.  Standard library only.

conftest.py turns these into pytest fixtures; test files import the helpers
they need (`from mdmtest import ...`).
"""
import base64
import datetime
import hashlib
import http.client
import json
import os
import queue
import re
import signal
import socket
import sqlite3
import stat
import subprocess
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MDM_BIN = os.environ.get("MDM_BIN") or os.path.join(REPO, "build", "bin")
MDM_FIXTURES = os.environ.get("MDM_FIXTURES") or os.path.join(REPO, "tests",
                                                              "fixtures")
MDMD = os.path.join(MDM_BIN, "mdmd")
AGENT = os.path.join(MDM_BIN, "mdm-agent")
MDMCTL = os.path.join(MDM_BIN, "mdmctl")

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")


def _is_sanitized(path):
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


# ASan/UBSan builds run ~3x slower: stretch every wait (never the 10 s
# shutdown bound, which is part of the contract).
SLOW = 3.0 if _is_sanitized(MDMD) else 1.0
HTTP_TIMEOUT = 30 * SLOW

UUID_RE = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
API_TOKEN_RE = re.compile(r"^mdm_at_[A-Za-z0-9_-]{43}$")
RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")

DEFAULT = object()  # "use the server's owner token"


def check_sanitizer_output(text, what):
    """Fail if a sanitizer reported anything in text."""
    for m in SANITIZER_MARKERS:
        assert m not in text, "%s: sanitizer report:\n%s" % (what, text[-8000:])


def clean_env(extra=None):
    """os.environ without the user's MDM_* settings (MDM_DB, MDM_LISTEN...),
    which would otherwise reach the programs under test."""
    e = {k: v for k, v in os.environ.items()
         if not k.startswith("MDM_") or k in ("MDM_BIN", "MDM_FIXTURES")}
    e.update(extra or {})
    return e


def run(argv, timeout=None, check_sanitizers=True, **kw):
    """Run a program to completion; returns CompletedProcess (text)."""
    kw.setdefault("env", clean_env())
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout or 60 * SLOW, **kw)
    if check_sanitizers:
        check_sanitizer_output(p.stderr, " ".join(argv))
    return p


def wait_for(cond, timeout=10.0, interval=0.02, what="condition"):
    """Poll cond() until it returns a true value; return that value."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(interval)


# ---- times and JWTs ------------------------------------------------------

def parse_time(s):
    """RFC 3339 UTC ('...Z') -> POSIX seconds (float)."""
    assert isinstance(s, str) and RFC3339_RE.match(s), "not RFC 3339 UTC: %r" % (s,)
    d = datetime.datetime.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")
    frac = float("0" + s[19:-1]) if s[19] == "." else 0.0
    return d.replace(tzinfo=datetime.timezone.utc).timestamp() + frac


def now_rfc3339(offset=0):
    t = datetime.datetime.now(datetime.timezone.utc) + \
        datetime.timedelta(seconds=offset)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jwt_parts(token):
    """(header dict, payload dict, signature str) of a compact JWS."""
    h, p, s = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p)), s


def jwt_forge(header, payload, signature):
    """Reassemble a token from (possibly altered) parts."""
    return "%s.%s.%s" % (b64url(json.dumps(header, separators=(",", ":"))),
                         b64url(json.dumps(payload, separators=(",", ":"))),
                         signature)


def jwt_swap_payload(token, **changes):
    """The same header and signature with payload claims changed."""
    h, p, s = jwt_parts(token)
    p.update(changes)
    raw_h = token.split(".")[0]
    return "%s.%s.%s" % (raw_h, b64url(json.dumps(p, separators=(",", ":"))), s)


# ---- facts ---------------------------------------------------------------

def make_facts(i=0, platform="linux", **over):
    """A device's facts in the CONTRACT §4 shape; i makes it unique."""
    f = {
        "serial": "SN-%06d" % i,
        "platform": platform,
        "hostname": "host-%d" % i,
        "model": "ThinkPad X1 Carbon Gen 11",
        "os": {"name": "Debian GNU/Linux", "version": "12", "build": None,
               "kernel": "6.1.0-18-amd64"},
        "encryption": {"root_encrypted": True, "method": "luks2"},
        "integrity": {"rooted": False, "secure_boot": True},
        "security": {"firewall_enabled": True, "screen_lock_enabled": True,
                     "password_age_days": 12},
        "network": {"ssid": None, "vpn_connected": False},
        "agent": {"version": "0.1.0"},
    }
    f.update(over)
    return f


# ---- HTTP ----------------------------------------------------------------

class Response(tuple):
    """(status, headers, parsed JSON body or None); .raw holds the bytes."""

    def __new__(cls, status, headers, body, raw):
        self = super().__new__(cls, (status, headers, body))
        self.raw = raw
        return self

    status = property(lambda self: self[0])
    headers = property(lambda self: self[1])
    body = property(lambda self: self[2])


def raise_nofile(n):
    """Let this process hold n more descriptors (soft RLIMIT_NOFILE up to
    4096, within the hard limit)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (4096 if hard == resource.RLIM_INFINITY
                            else min(hard, 4096), hard))


def recv_until_closed(sock, got=b""):
    """What sock sends until the peer closes it, after got."""
    while True:
        d = sock.recv(65536)
        if not d:
            return got
        got += d


def http_request(host, port, method, path, body=None, token=None,
                 headers=None, raw_body=None, timeout=None, context=None):
    """One request on its own connection.  body is sent as JSON; raw_body
    (bytes or str) is sent as is, with no Content-Type unless headers say so.
    A header given as None in headers is not sent.  With context (an
    ssl.SSLContext) the request goes over TLS."""
    hdrs = {}
    data = None
    if token is not None:
        hdrs["Authorization"] = "Bearer " + token
    if raw_body is not None:
        data = raw_body.encode() if isinstance(raw_body, str) else raw_body
    elif body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    for k, v in (headers or {}).items():
        if v is None:
            hdrs.pop(k, None)
        else:
            hdrs[k] = v
    if context is not None:
        conn = http.client.HTTPSConnection(host, port, context=context,
                                           timeout=timeout or HTTP_TIMEOUT)
    else:
        conn = http.client.HTTPConnection(host, port,
                                          timeout=timeout or HTTP_TIMEOUT)
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        status, rh = resp.status, resp.headers
    finally:
        conn.close()
    parsed = None
    ctype = (rh.get("Content-Type") or "").split(";")[0].strip()
    if raw and ctype in ("application/json", "application/problem+json"):
        parsed = json.loads(raw)
    return Response(status, rh, parsed, raw)


def assert_checkin_answer(resp, interval=5, compliance="unknown"):
    """resp is a 200 check-in answer (docs/api.md): policy_etag is the
    quoted ETag of the device's bundle."""
    st, hdrs, body = resp
    assert st == 200, resp.raw
    assert hdrs.get("Content-Type") == "application/json"
    assert set(body) == {"compliance", "policy_etag", "pending_commands",
                         "checkin_interval_s"}, body
    assert body["compliance"] == compliance
    assert body["pending_commands"] == 0
    assert body["checkin_interval_s"] == interval
    etag = body["policy_etag"]
    assert isinstance(etag, str) and re.match(r'^"[^"]+"$', etag), etag
    return body


def assert_problem(resp, status):
    """resp is an RFC 9457 problem with this status."""
    st, hdrs, body = resp
    assert st == status, "expected %d, got %d: %r" % (status, st, resp.raw)
    assert hdrs.get("Content-Type") == "application/problem+json", \
        hdrs.get("Content-Type")
    assert isinstance(body, dict), resp.raw
    assert set(body) == {"type", "title", "status", "detail"}, body
    assert body["status"] == status, body
    assert isinstance(body["type"], str) and body["type"].startswith("https://"), body
    assert isinstance(body["title"], str) and body["title"], body
    assert isinstance(body["detail"], str) and body["detail"], body
    return body


# ---- the server ------------------------------------------------------------

class Server:
    """A running mdmd on 127.0.0.1:<free port> with its own data dir."""

    def __init__(self, workdir, args=(), checkin_interval=5, env=None):
        self.workdir = str(workdir)
        self.data_dir = os.path.join(self.workdir, "data")
        self.db_path = os.path.join(self.data_dir, "mdm.db")
        self.args = list(args)
        self.checkin_interval = checkin_interval
        self.env = clean_env(env)
        self.proc = None
        self.port = None
        self.host = "127.0.0.1"
        self.token = None
        self.starts = 0
        self.logs = []           # stderr files, one per start
        self.stdout_lines = []   # of the current run
        self.bootstrap_token = None
        # An ssl.SSLContext trusting the server when it runs with
        # --tls-cert: api() then speaks HTTPS.
        self.tls_context = None

    # -- life cycle --

    @property
    def url(self):
        return "%s://%s:%d" % ("https" if self.tls_context else "http",
                               self.host, self.port)

    def argv(self):
        return [MDMD, "--listen", "127.0.0.1:0", "--data-dir", self.data_dir,
                "--checkin-interval", str(self.checkin_interval)] + self.args

    def start(self):
        assert self.proc is None, "already running"
        os.makedirs(self.workdir, exist_ok=True)
        log = os.path.join(self.workdir, "mdmd.stderr.%d.log" % self.starts)
        self.starts += 1
        self.logs.append(log)
        errf = open(log, "wb")
        try:
            self.proc = subprocess.Popen(self.argv(), stdout=subprocess.PIPE,
                                         stderr=errf, stdin=subprocess.DEVNULL,
                                         env=self.env)
        finally:
            errf.close()
        lines = queue.Queue()
        self.stdout_lines = []
        self.bootstrap_token = None

        def reader(p=self.proc, out=self.stdout_lines):
            for raw in p.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                out.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=reader, daemon=True).start()
        deadline = time.monotonic() + 20 * SLOW
        port = None
        while port is None:
            left = deadline - time.monotonic()
            try:
                line = lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                line = ""
                if left <= 0:
                    self.kill9()
                    raise AssertionError("mdmd did not print 'listening on' "
                                         "in time; stderr:\n" + self.stderr())
            if line is None:
                rc = self.proc.wait()
                self.proc = None
                raise AssertionError("mdmd exited (%d) before listening; "
                                     "stderr:\n%s" % (rc, self.stderr()))
            m = re.match(r"^listening on 127\.0\.0\.1:(\d+)$", line or "")
            if m:
                port = int(m.group(1))
        assert 0 < port < 65536
        self.port = port
        tok_path = os.path.join(self.data_dir, "admin.token")
        st = os.stat(tok_path)
        assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
        with open(tok_path) as f:
            self.token = f.read().strip()
        assert API_TOKEN_RE.match(self.token), self.token
        for i, line in enumerate(self.stdout_lines):
            if line.startswith("owner API token"):
                self.bootstrap_token = self.stdout_lines[i + 1].strip()
        return self

    def _check_exit(self, rc, what):
        check_sanitizer_output(self.stderr(), "mdmd")
        assert rc == 0, "mdmd %s: exit %r; stderr:\n%s" % (what, rc,
                                                           self.stderr()[-4000:])

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signal mdmd and require exit 0 within timeout seconds."""
        p = self.proc
        assert p is not None, "not running"
        p.send_signal(sig)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            self.proc = None
            raise AssertionError("mdmd did not exit within %d s of signal %d"
                                 % (timeout, sig))
        self.proc = None
        self._check_exit(rc, "after signal %d" % sig)
        return rc

    def kill9(self):
        p = self.proc
        if p is None:
            return
        p.kill()
        p.wait()
        self.proc = None

    def restart(self):
        if self.proc is not None:
            self.stop()
        return self.start()

    def close(self):
        """Teardown: stop (exit 0 within 10 s) and scan every log."""
        try:
            if self.proc is not None:
                self.stop()
        finally:
            check_sanitizer_output(self.stderr(), "mdmd")

    def stderr(self, only_current=False):
        out = []
        for log in (self.logs[-1:] if only_current else self.logs):
            try:
                with open(log, "rb") as f:
                    out.append(f.read().decode(errors="replace"))
            except OSError:
                pass
        return "".join(out)

    # -- HTTP --

    def api(self, method, path, body=None, token=DEFAULT, headers=None,
            raw_body=None, timeout=None):
        """(status, headers, JSON or None); token=None sends no credentials."""
        if token is DEFAULT:
            token = self.token
        return http_request(self.host, self.port, method, path, body=body,
                            token=token, headers=headers, raw_body=raw_body,
                            timeout=timeout, context=self.tls_context)

    # -- the database --

    def db_ro(self):
        c = sqlite3.connect("file:%s?mode=ro" % self.db_path, uri=True,
                            timeout=30)
        return c

    def db_rw(self):
        c = sqlite3.connect(self.db_path, timeout=30)
        return c

    def q(self, sql, params=()):
        c = self.db_ro()
        try:
            return c.execute(sql, params).fetchall()
        finally:
            c.close()

    def q1(self, sql, params=()):
        rows = self.q(sql, params)
        assert len(rows) == 1, rows
        return rows[0][0] if len(rows[0]) == 1 else rows[0]

    def execute(self, sql, params=()):
        c = self.db_rw()
        try:
            with c:
                n = c.execute(sql, params).rowcount
            return n
        finally:
            c.close()

    SNAPSHOT_TABLES = ("tenants", "tenant_keys", "api_tokens",
                       "enrollment_tokens", "devices", "device_status",
                       "telemetry", "audit")

    def snapshot(self):
        """Every row of every table: compare two to prove nothing changed."""
        c = self.db_ro()
        try:
            return {t: sorted(c.execute("SELECT * FROM %s" % t).fetchall(),
                              key=repr)
                    for t in self.SNAPSHOT_TABLES}
        finally:
            c.close()

    def counts(self):
        return {t: len(rows) for t, rows in self.snapshot().items()}

    def tenant_id(self, name="default"):
        return self.q1("SELECT id FROM tenants WHERE name = ?", (name,))

    def owner_token_id(self):
        r = self.api("GET", "/v1/tokens")
        assert r.status == 200, r.raw
        owners = [t["id"] for t in r.body["items"] if t["role"] == "owner"]
        return owners[0]

    # -- domain helpers --

    def create_token(self, role, name=None, token=DEFAULT):
        r = self.api("POST", "/v1/tokens",
                     {"name": name or "t-" + role, "role": role}, token=token)
        assert r.status == 201, r.raw
        return r.body["token"]

    def create_etoken(self, token=DEFAULT, **body):
        r = self.api("POST", "/v1/enrollment-tokens", body, token=token)
        assert r.status == 201, r.raw
        return r.body

    def enroll(self, etoken, facts=None, i=0, expect=201):
        r = self.api("POST", "/v1/enroll",
                     {"enrollment_token": etoken,
                      "facts": facts if facts is not None else make_facts(i)},
                     token=None)
        assert r.status == expect, r.raw
        return r.body

    def enroll_many(self, n, labels=None, platform="linux", start=0):
        """n devices through one n-use token; returns their enroll answers."""
        et = self.create_etoken(max_uses=n, labels=labels or {})
        return [self.enroll(et["token"], make_facts(start + i, platform))
                for i in range(n)]

    def mdmd(self, *args, timeout=None):
        """Run `mdmd ARGS --data-dir <this data dir>`."""
        return run([MDMD] + list(args) + ["--data-dir", self.data_dir],
                   timeout=timeout)

    def create_tenant(self, name, region=None):
        """mdmd tenant create NAME; returns (tenant id, owner token)."""
        args = ["tenant", "create", name]
        if region:
            args += ["--region", region]
        p = self.mdmd(*args)
        assert p.returncode == 0, p.stderr
        m = re.search(r"created tenant '%s' \(id ([0-9a-f-]{36})" % name,
                      p.stdout)
        assert m, p.stdout
        toks = re.findall(r"^\s+(mdm_at_\S+)$", p.stdout, re.M)
        assert len(toks) == 1, p.stdout
        return m.group(1), toks[0]


def chain(v):
    """The chain-check part of a /v1/audit/verify answer (which also says
    tenant and head_hash)."""
    return {k: v[k] for k in ("ok", "records", "first_bad")}


def sha256_hex(s):
    return hashlib.sha256(s.encode()).hexdigest()


def free_port_closed():
    """A loopback port nothing listens on (bound and released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def random_uuid():
    return str(uuid.uuid4())


def raw_request(host, port, head, body_chunks=(), expect_continue=False,
                timeout=None):
    """Send a hand-made request: head is the request line and headers
    (without the blank line); body_chunks are sent one by one, stopping
    quietly if the server closes first (as it may after an early 413).
    Returns the Response, read until the server closes."""
    import io
    sock = socket.create_connection((host, port),
                                    timeout=timeout or HTTP_TIMEOUT)
    try:
        sock.sendall(head.rstrip("\r\n").encode() + b"\r\n\r\n")
        got = b""
        if expect_continue:
            # Wait for "100 Continue" or a final answer.
            while b"\r\n\r\n" not in got:
                d = sock.recv(65536)
                if not d:
                    break
                got += d
            if got.startswith(b"HTTP/1.1 100"):
                got = got.split(b"\r\n\r\n", 1)[1]
            else:
                body_chunks = ()
        try:
            for c in body_chunks:
                sock.sendall(c)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            got = recv_until_closed(sock, got)
        except ConnectionResetError:
            pass
    finally:
        sock.close()
    assert got, "no answer"
    head_b, _, body = got.partition(b"\r\n\r\n")
    status_line, _, rest = head_b.partition(b"\r\n")
    status = int(status_line.split()[1])
    hdrs = http.client.parse_headers(io.BytesIO(rest + b"\r\n\r\n"))
    if hdrs.get("Content-Length") is not None:
        body = body[:int(hdrs["Content-Length"])]
    parsed = None
    ctype = (hdrs.get("Content-Type") or "").split(";")[0].strip()
    if body and ctype in ("application/json", "application/problem+json"):
        parsed = json.loads(body)
    return Response(status, hdrs, parsed, body)
