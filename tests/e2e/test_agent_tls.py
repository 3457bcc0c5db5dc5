"""mdm-agent and zero-trust TLS (issue 5): a real mdmd serving HTTPS
(`--tls-cert`) and a real mdm-agent on tests/fixtures/devices/debian12-luks.

The agent trusts the CA its enrollment token pins ("server_ca") and nothing
else: not the system store, not SSL_CERT_FILE or SSL_CERT_DIR.  It keeps
that CA as <state-dir>/server-ca.pem, presents its device certificate with
every request (the certificate alone is enough once the token is gone),
renews it at two thirds of its lifetime and on the rotate_certificate
command (the old one is then revoked and listed in the CRL), and after a
401 with its certificate falls back to its token once and renews at once.

Certificates are made with the openssl command line; requests as the
"device" outside the agent go through Python's ssl module."""
import http.server
import json
import os
import shutil
import signal
import ssl
import subprocess
import threading
import time

import pytest

import mdmtest
from mdmtest import AGENT, MDM_FIXTURES, clean_env, run, wait_for
from pkitest import (ctx_for, der_sha256, make_ca, make_self_signed,
                     make_server_cert, openssl, pin_of)

FIXTURE_ROOT = os.path.join(MDM_FIXTURES, "devices", "debian12-luks")

pytestmark = pytest.mark.skipif(not shutil.which("openssl"),
                                reason="openssl is not installed")

REFUSED_WARNING = "the server refused this device's certificate"


# ---- certificates: pkitest.py -----------------------------------------------

@pytest.fixture
def pki(tmp_path):
    """Two CAs, a and b, each with a server certificate for 127.0.0.1:
    pki["a"] = {"ca": CA file, "chain": chain file, "key": key file}."""
    d = tmp_path / "pki"
    d.mkdir()
    out = {}
    for name in ("a", "b"):
        ca = make_ca(d, "ca-" + name)
        chain, key = make_server_cert(d, ca, "server-" + name)
        out[name] = {"ca": ca[1], "chain": chain, "key": key}
    return out


def serve_with(srv, pki_set, extra=()):
    """Set srv (stopped) to serve HTTPS with pki_set's certificate, on the
    port it had if it ran before (the agent keeps the server's URL)."""
    srv.args = ["--tls-cert", pki_set["chain"], "--tls-key",
                pki_set["key"]] + list(extra)
    if srv.port:
        srv.args += ["--listen", "127.0.0.1:%d" % srv.port]
    srv.tls_context = ctx_for(pki_set["ca"])
    srv.ca_pem = pki_set["ca"]


@pytest.fixture
def tls_server(server_factory, pki):
    def make(which="a", args=(), extra_tls=(), name="tls"):
        s = server_factory(name=name, start=False)
        serve_with(s, pki[which], extra_tls)
        s.args += list(args)
        s.start()
        return s
    return make


# ---- the device -------------------------------------------------------------

class Agent:
    """mdm-agent with its own state dir, on the debian12-luks fixture."""

    def __init__(self, tmp_path, name="dev"):
        self.state = str(tmp_path / (name + "-state"))
        self.env = clean_env({"HOME": str(tmp_path / "home")})
        self.proc = None
        self.log = str(tmp_path / (name + "-agent.log"))

    def path(self, name):
        return os.path.join(self.state, name)

    def argv(self, *args):
        return [AGENT] + list(args) + ["--state-dir", self.state, "--root",
                                       FIXTURE_ROOT]

    def agent(self, *args, env=None):
        e = dict(self.env)
        e.update(env or {})
        return run(self.argv(*args), env=e)

    def enroll(self, srv, token=None, expect=0, env=None, extra=()):
        if token is None:
            token = srv.create_etoken()["token"]
        p = self.agent("enroll", "--server", srv.url, "--token", token,
                       *extra, env=env)
        assert p.returncode == expect, p.stderr
        return p

    def run_once(self, expect=0, env=None):
        p = self.agent("run", "--once", env=env)
        assert p.returncode == expect, p.stderr
        return p

    def start(self):
        with open(self.log, "wb") as errf:
            self.proc = subprocess.Popen(self.argv("run", "-v"),
                                         stdout=subprocess.DEVNULL,
                                         stderr=errf, env=self.env)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=10)
        self.proc = None
        assert rc == 0, self.stderr()
        mdmtest.check_sanitizer_output(self.stderr(), "mdm-agent")

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stderr(self):
        with open(self.log) as f:
            return f.read()

    def creds(self):
        with open(self.path("credentials.json")) as f:
            return json.load(f)

    def blank_token(self):
        """Only the certificate is left as the device's credential."""
        c = self.creds()
        c["device_token"] = ""
        with open(self.path("credentials.json"), "w") as f:
            json.dump(c, f)
        os.chmod(self.path("credentials.json"), 0o600)

    def read(self, name):
        with open(self.path(name)) as f:
            return f.read()

    def cert_fp(self):
        return der_sha256(self.read("device.crt"))

    def keep_pair(self, dest):
        """Copy device.crt and device.key to dest.crt/dest.key."""
        shutil.copy(self.path("device.crt"), dest + ".crt")
        shutil.copy(self.path("device.key"), dest + ".key")
        return dest + ".crt", dest + ".key"

    @property
    def id(self):
        return self.creds()["device_id"]


@pytest.fixture
def agent(tmp_path):
    a = Agent(tmp_path)
    yield a
    a.kill()


def started_events(srv, dev_id):
    """agent_started events the server took from dev_id: one per run that
    checked in (the queue is flushed after the check-in)."""
    return srv.q1("SELECT count(*) FROM telemetry WHERE device_id = ? AND "
                  "type = 'agent_started'", (dev_id,))


def device_call(srv, cert, key, token=None, path="/v1/agent/checkin"):
    """A check-in as the device with this certificate (and token)."""
    return mdmtest.http_request(srv.host, srv.port, "POST", path,
                                body={"facts": mdmtest.make_facts(0)},
                                token=token, context=ctx_for(srv.ca_pem, cert,
                                                             key))


def certs_of(srv, dev_id):
    """[(fingerprint, serial, revoked)] of the device, oldest first."""
    return [tuple(r) for r in srv.q(
        "SELECT fingerprint, serial, revoked_at IS NOT NULL FROM device_certs"
        " WHERE device_id = ? ORDER BY issued_at, rowid", (dev_id,))]


def crl_serials(srv, tmp_path):
    r = srv.api("GET", "/v1/crl.pem?tenant=default", token=None)
    assert r.status == 200, r.raw
    f = tmp_path / "crl.pem"
    f.write_bytes(r.raw)
    text = openssl("crl", "-in", str(f), "-noout", "-text").decode()
    return [line.split(":", 1)[1].strip().lower().lstrip("0")
            for line in text.splitlines()
            if line.strip().startswith("Serial Number:")]


def assert_old_refused(srv, old, tmp_path, dev_id):
    """The old pair gets 401 (revoked), and its serial is in the CRL."""
    r = device_call(srv, *old)
    p = mdmtest.assert_problem(r, 401)
    assert p["detail"] == "revoked client certificate"
    with open(old[0]) as f:
        fp = der_sha256(f.read())
    serial = [s for f_, s, _ in certs_of(srv, dev_id) if f_ == fp]
    assert len(serial) == 1
    assert serial[0].lower().lstrip("0") in crl_serials(srv, tmp_path)


# ---- 1. enrollment with the pin, then the certificate as the credential -----

def system_store_envs(tmp_path, ca):
    """The agent's environments to try: as it is, and with OpenSSL's
    system store (SSL_CERT_FILE, and SSL_CERT_DIR hashed) trusting ca,
    which the agent must ignore."""
    d = tmp_path / "system-certs"
    d.mkdir()
    shutil.copy(ca, d / "ca.pem")
    openssl("rehash", str(d))
    return ({}, {"SSL_CERT_FILE": ca, "SSL_CERT_DIR": str(d)})


def test_enroll_pins_the_servers_ca(tls_server, agent, pki):
    srv = tls_server("a")
    et = srv.create_etoken()
    assert et["server_ca_fingerprint"] == pin_of(pki["a"]["ca"])
    agent.enroll(srv, et["token"])
    # The CA of the token's pin, from the chain the server presented, kept
    # and named as the only CA of every later run.
    ca = agent.path("server-ca.pem")
    assert os.stat(ca).st_mode & 0o777 == 0o600
    assert der_sha256(agent.read("server-ca.pem")) == \
        der_sha256(open(pki["a"]["ca"]).read())
    creds = agent.creds()
    assert creds["ca_file"] == os.path.realpath(ca)
    assert creds["server"] == srv.url
    for name in ("device.key", "device.crt", "ca.pem"):
        assert os.stat(agent.path(name)).st_mode & 0o777 == 0o600, name
    dev = creds["device_id"]
    assert [(f, rv) for f, _, rv in certs_of(srv, dev)] == [
        (agent.cert_fp(), 0)]

    n = started_events(srv, dev)
    agent.run_once()
    assert started_events(srv, dev) == n + 1

    # Without its token the device still checks in: the certificate alone
    # is the credential (and is not renewed, it is young).  The policy
    # fetch (its own connection) presents it too.
    fp = agent.cert_fp()
    agent.blank_token()
    os.unlink(agent.path("policy_status.json"))
    os.unlink(agent.path("policy.json"))
    p = agent.run_once()
    assert REFUSED_WARNING not in p.stderr
    assert started_events(srv, dev) == n + 2
    assert agent.cert_fp() == fp
    with open(agent.path("policy_status.json")) as f:
        assert json.load(f)["etag"], p.stderr
    assert os.path.exists(agent.path("policy.json"))


def test_self_signed_server_pins_itself(server_factory, agent, tmp_path):
    d = tmp_path / "ss"
    d.mkdir()
    cert, key = make_self_signed(d, "server")
    srv = server_factory(name="ss", start=False)
    srv.args = ["--tls-cert", cert, "--tls-key", key]
    srv.tls_context = ctx_for(cert)
    srv.ca_pem = cert
    srv.start()
    et = srv.create_etoken()
    assert et["server_ca_fingerprint"] == pin_of(cert)
    agent.enroll(srv, et["token"])
    assert der_sha256(agent.read("server-ca.pem")) == \
        der_sha256(open(cert).read())
    agent.blank_token()
    agent.run_once()


# ---- 2. a server that is not the pinned one is never talked to --------------

def test_enroll_refuses_a_server_of_another_ca(tls_server, agent, pki,
                                               tmp_path):
    # Tokens pin CA a; the server presents a certificate from CA b.
    srv = tls_server("b", extra_tls=["--pin-ca", pki["a"]["ca"]])
    et = srv.create_etoken()
    pin = pin_of(pki["a"]["ca"])
    assert mdmtest.jwt_parts(et["token"])[1]["server_ca"] == pin
    want = ("mdm-agent: enroll failed: the server's certificate does not "
            "chain to the CA pinned in the enrollment token (%s); refusing "
            "to talk to it" % pin)
    for env in system_store_envs(tmp_path, pki["b"]["ca"]):
        p = agent.enroll(srv, et["token"], expect=1, env=env)
        assert p.stderr.strip().splitlines() == [want], p.stderr
        assert not os.path.exists(agent.path("credentials.json"))
        assert not os.path.exists(agent.path("server-ca.pem"))
        assert not os.path.exists(agent.path("device.key"))
    # --ca-file must hold the pinned CA: b's does not.
    p = agent.enroll(srv, et["token"], expect=1,
                     extra=["--ca-file", pki["b"]["ca"]])
    assert p.stderr.strip().splitlines() == [
        "mdm-agent: enroll failed: CA file '%s' does not hold the CA pinned "
        "in the enrollment token (%s)" % (pki["b"]["ca"], pin)], p.stderr
    # A token without a pin and no --ca-file: https has nothing to trust
    # (the system store is never used).  The claim is read, not verified,
    # so a token stripped of it never reaches the server either.
    h, claims, sig = mdmtest.jwt_parts(et["token"])
    del claims["server_ca"]
    bare = mdmtest.jwt_forge(h, claims, sig)
    p = agent.enroll(srv, bare, expect=1, env={"SSL_CERT_FILE":
                                               pki["b"]["ca"]})
    assert p.stderr.strip().splitlines() == [
        "mdm-agent: enroll failed: no CA to trust for '%s': the enrollment "
        "token pins none and no --ca-file was given (the system's CA store "
        "is never used)" % srv.url], p.stderr
    # Nothing was enrolled, the token is unused.
    r = srv.api("GET", "/v1/devices")
    assert r.status == 200 and r.body["items"] == [], r.raw
    assert srv.q1("SELECT count(*) FROM device_certs") == 0
    r = srv.api("GET", "/v1/enrollment-tokens")
    assert [t["uses"] for t in r.body["items"]] == [0], r.raw
    assert not os.path.exists(agent.path("credentials.json"))

    # With the pinned CA as --ca-file the agent gets as far as the TLS
    # check, which b's certificate fails.
    p = agent.enroll(srv, et["token"], expect=1,
                     extra=["--ca-file", pki["a"]["ca"]])
    assert p.stderr.strip().splitlines() == [want], p.stderr
    assert srv.api("GET", "/v1/devices").body["items"] == []
    assert not os.path.exists(agent.path("credentials.json"))


class Impostor:
    """An https server (not mdmd) presenting chain_file, leaf first, as
    given; it records each request and answers 200 {}, or publish (PEM
    text) at /v1/server-ca.pem when given."""

    def __init__(self, chain_file, key_file, publish=None):
        seen = self.seen = []

        class H(http.server.BaseHTTPRequestHandler):
            def answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                seen.append((self.command, self.path, self.rfile.read(n)))
                body = b"{}"
                if publish and self.path == "/v1/server-ca.pem":
                    body = publish.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = answer

            def log_message(self, *a):
                pass

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(chain_file, key_file)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket,
                                            server_side=True)
        self.url = "https://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_enroll_refuses_a_chain_that_only_carries_the_pinned_ca(
        tls_server, agent, pki, tmp_path):
    """A CA's certificate is public: a server of CA b sends a's along in
    its chain (mdmd's GnuTLS would drop it, an impostor need not).  The pin
    is found in the chain, but b's leaf does not verify against a: the
    agent sends nothing but the probe and keeps nothing."""
    srv = tls_server("a")
    et = srv.create_etoken()
    pin = pin_of(pki["a"]["ca"])
    chain = tmp_path / "b-and-a.pem"
    chain.write_text(open(pki["b"]["chain"]).read() +
                     open(pki["a"]["ca"]).read())
    imp = Impostor(str(chain), pki["b"]["key"])
    try:
        # It does present a's certificate (so this is not the case of a
        # chain without the pin, which ends the same way).
        port = imp.url.rsplit(":", 1)[1]
        shown = subprocess.run(["openssl", "s_client", "-connect",
                                "127.0.0.1:" + port, "-showcerts"],
                               input=b"", stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, timeout=30).stdout
        assert b"s:CN = test ca-a" in shown, shown
        p = run(agent.argv("enroll", "--server", imp.url, "--token",
                           et["token"]), env=agent.env)
        assert p.returncode == 1, p.stderr
        assert p.stderr.strip().splitlines() == [
            "mdm-agent: enroll failed: the server's certificate does not "
            "chain to the CA pinned in the enrollment token (%s); refusing "
            "to talk to it" % pin], p.stderr
        # The probe (which carries nothing) and no enrollment.
        assert [(m, path) for m, path, _ in imp.seen] == [
            ("GET", "/v1/server-ca.pem")]
    finally:
        imp.stop()
    assert not os.path.exists(agent.path("credentials.json"))
    assert not os.path.exists(agent.path("server-ca.pem"))
    assert not os.path.exists(agent.path("device.key"))


def test_enroll_refuses_a_server_that_only_publishes_the_pinned_ca(
        tls_server, agent, pki):
    """mdmd publishes the pinned CA at /v1/server-ca.pem (its chain leaves
    the root out).  Anyone can publish a's certificate: a server of CA b
    that does is refused all the same, since its own certificate does not
    verify against a; the enrollment never leaves the agent."""
    srv = tls_server("a")
    et = srv.create_etoken()
    imp = Impostor(pki["b"]["chain"], pki["b"]["key"],
                   publish=open(pki["a"]["ca"]).read())
    try:
        p = run(agent.argv("enroll", "--server", imp.url, "--token",
                           et["token"]), env=agent.env)
        assert p.returncode == 1, p.stderr
        assert p.stderr.strip().splitlines() == [
            "mdm-agent: enroll failed: the server's certificate does not "
            "chain to the CA pinned in the enrollment token (%s); refusing "
            "to talk to it" % pin_of(pki["a"]["ca"])], p.stderr
        assert [(m, path) for m, path, _ in imp.seen] == [
            ("GET", "/v1/server-ca.pem")]
    finally:
        imp.stop()
    assert not os.path.exists(agent.path("credentials.json"))
    assert not os.path.exists(agent.path("device.key"))


# ---- 3. after enrollment, only that CA --------------------------------------

def test_run_refuses_a_server_of_another_ca(tls_server, agent, pki,
                                            tmp_path):
    srv = tls_server("a")
    agent.enroll(srv)
    dev = agent.id
    agent.run_once()
    # The same server (data, tenant, keys) now with b's certificate.
    srv.stop()
    serve_with(srv, pki["b"])
    srv.start()
    seen = srv.q1("SELECT last_seen FROM device_status WHERE device_id = ?",
                  (dev,))
    n = started_events(srv, dev)
    for env in system_store_envs(tmp_path, pki["b"]["ca"]):
        p = agent.run_once(expect=1, env=env)
        assert p.stderr.strip().splitlines()[-1] == (
            "mdm-agent: check-in failed: cannot reach '%s': server "
            "certificate not trusted" % srv.url), p.stderr
    assert srv.q1("SELECT last_seen FROM device_status WHERE device_id = ?",
                  (dev,)) == seen
    assert started_events(srv, dev) == n
    # Back on a's certificate it checks in again (and sends what it kept).
    srv.stop()
    serve_with(srv, pki["a"])
    srv.start()
    agent.run_once()
    assert started_events(srv, dev) == n + 3


# ---- 4. renewal at two thirds of the lifetime -------------------------------

def test_renewal_at_two_thirds(tls_server, agent, tmp_path):
    # 30 s, backdated by a tenth of that for clock skew: 33 s in all, so
    # renewal is due 22 s after notBefore, 19 s after issue, 11 s before
    # the certificate expires (the agent checks in every 5 s).
    srv = tls_server("a", args=["--device-cert-days", "30s"])
    agent.enroll(srv)
    dev = agent.id
    old = agent.keep_pair(str(tmp_path / "old"))
    old_fp = agent.cert_fp()
    nb, na = srv.q1("SELECT not_before, not_after FROM device_certs WHERE "
                    "fingerprint = ?", (old_fp,))
    due = nb + -(-2 * (na - nb) // 3)
    agent.blank_token()        # the certificate is the only credential
    if time.time() < due - 3:
        agent.run_once()       # young: not renewed
        assert agent.cert_fp() == old_fp
        assert len(certs_of(srv, dev)) == 1

    agent.start()
    wait_for(lambda: agent.cert_fp() != old_fp, timeout=60, interval=0.2,
             what="the agent to renew its certificate")
    renewed_at = time.time()
    assert renewed_at >= due - 1, (renewed_at, due)
    # It goes on checking in with the new certificate on a new connection
    # (its token is gone: anything else would be refused).
    n = started_events(srv, dev)
    last = srv.q1("SELECT last_seen FROM device_status WHERE device_id = ?",
                  (dev,))
    wait_for(lambda: srv.q1("SELECT last_seen FROM device_status WHERE "
                            "device_id = ?", (dev,)) != last,
             timeout=30, interval=0.2, what="a check-in after the renewal")
    agent.stop()
    log = agent.stderr()
    assert "device certificate renewed: sha256 " in log, log
    assert REFUSED_WARNING not in log, log
    assert "check-in refused" not in log, log
    assert started_events(srv, dev) >= n
    # The new pair: another key, a certificate for it, no leftovers.
    assert agent.read("device.key") != open(old[1]).read()
    pub_cert = openssl("x509", "-in", agent.path("device.crt"), "-noout",
                       "-pubkey")
    pub_key = openssl("pkey", "-in", agent.path("device.key"), "-pubout")
    assert pub_cert == pub_key
    assert not os.path.exists(agent.path("device.key.next"))
    assert not os.path.exists(agent.path("device.crt.next"))
    # The server holds exactly one valid certificate, the agent's.
    rows = certs_of(srv, dev)
    assert [r[2] for r in rows] == [1] * (len(rows) - 1) + [0], rows
    assert rows[-1][0] == agent.cert_fp()
    assert_old_refused(srv, old, tmp_path, dev)
    r = device_call(srv, agent.path("device.crt"), agent.path("device.key"))
    mdmtest.assert_checkin_answer(r)


# ---- 5. rotate_certificate --------------------------------------------------

def test_rotate_certificate_command(tls_server, agent, tmp_path):
    srv = tls_server("a")
    agent.enroll(srv)
    dev = agent.id
    old = agent.keep_pair(str(tmp_path / "old"))
    old_fp = agent.cert_fp()
    r = srv.api("POST", "/v1/devices/%s/commands" % dev,
                {"type": "rotate_certificate"})
    assert r.status == 201, r.raw
    cid = r.body["id"]
    p = agent.run_once()
    # The result went out on a new connection with the new certificate.
    assert REFUSED_WARNING not in p.stderr, p.stderr
    r = srv.api("GET", "/v1/commands/" + cid)
    assert r.status == 200, r.raw
    assert r.body["status"] == "completed", r.body
    detail = json.loads(r.body["detail"])
    new_fp = agent.cert_fp()
    assert new_fp != old_fp
    na = srv.q1("SELECT not_after FROM device_certs WHERE fingerprint = ?",
                (new_fp,))
    assert detail == {"fingerprint": new_fp, "not_after": na}
    assert [(f, rv) for f, _, rv in certs_of(srv, dev)] == [(old_fp, 1),
                                                            (new_fp, 0)]
    assert_old_refused(srv, old, tmp_path, dev)
    # The next run uses the new certificate, alone, and never runs the
    # command again.
    agent.blank_token()
    agent.run_once()
    assert len(certs_of(srv, dev)) == 2
    assert agent.cert_fp() == new_fp


# ---- 6. a refused certificate: the token once more, then renewal ------------

def test_refused_certificate_falls_back_and_renews(tls_server, agent,
                                                   tmp_path):
    srv = tls_server("a")
    agent.enroll(srv)
    dev = agent.id
    token = agent.creds()["device_token"]
    old_fp = agent.cert_fp()
    # Someone else renews for this device (its token leaked, say): the
    # agent's certificate is revoked behind its back.
    d = tmp_path / "other"
    d.mkdir()
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(d / "k.pem"),
            "-out", str(d / "csr.pem"), "-subj", "/CN=x")
    r = mdmtest.http_request(srv.host, srv.port, "POST",
                             "/v1/agent/certificate",
                             body={"csr": (d / "csr.pem").read_text()},
                             token=token, context=srv.tls_context)
    assert r.status == 200, r.raw
    n = started_events(srv, dev)
    p = agent.run_once()
    assert REFUSED_WARNING in p.stderr, p.stderr
    assert started_events(srv, dev) == n + 1
    new_fp = agent.cert_fp()
    assert new_fp != old_fp
    rows = certs_of(srv, dev)
    assert [r_[2] for r_ in rows] == [1, 1, 0] and rows[-1][0] == new_fp
    # The renewed certificate is enough on its own.
    agent.blank_token()
    p = agent.run_once()
    assert REFUSED_WARNING not in p.stderr
    assert started_events(srv, dev) == n + 2
