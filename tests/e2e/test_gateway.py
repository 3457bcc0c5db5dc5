"""deploy/nginx/mdm-gateway.conf with a real nginx (TLS, auth_request to
mdmd) in front of an upstream played by this test: a compliant device
reaches the upstream; after a check-in that makes it non-compliant it gets
403 and the upstream sees nothing; after remediation it passes again; no
credential, an admin token or a retired device never reach the upstream."""
import http.server
import json
import os
import shutil
import ssl
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest

import mdmtest
from mdmtest import make_facts, wait_for
from test_pki import make_csr

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "..", "..", "deploy", "nginx",
                        "mdm-gateway.conf")

pytestmark = pytest.mark.skipif(
    not (shutil.which("nginx") and shutil.which("openssl")),
    reason="nginx or openssl is not installed")

COMPLIANCE = {"apiVersion": "mdm/v1", "kind": "CompliancePolicy",
              "metadata": {"name": "baseline"},
              "spec": {"rules": [{"name": "os", "fact": "os.version",
                                  "op": "version_ge", "value": "12"}]}}
ACCESS = {"apiVersion": "mdm/v1", "kind": "ConditionalAccessPolicy",
          "metadata": {"name": "crm-needs-compliant"},
          "spec": {"conditions": {
              "applications": {"includeApplications": ["crm"]},
              "deviceStates": {"requireCompliantDevice": True}},
              "grantControls": {"operator": "OR",
                                "builtInControls": ["compliantDevice"]}}}
OLD_OS = {"name": "Debian GNU/Linux", "version": "10", "build": None,
          "kernel": "4.19.0"}


class Upstream:
    """The protected application: answers 200 and records each request."""

    def __init__(self):
        seen = self.seen = []

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append({"path": self.path,
                             "device": self.headers.get("X-MDM-Device"),
                             "authorization":
                                 self.headers.get("Authorization")})
                body = b"hello from crm\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Gateway:
    def __init__(self, workdir, mdmd_port, app_port, client_ca):
        self.dir = str(workdir)
        os.makedirs(os.path.join(self.dir, "tmp"))
        self.cert = os.path.join(self.dir, "gw.crt")
        key = os.path.join(self.dir, "gw.key")
        p = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out",
             self.cert, "-days", "1", "-subj", "/CN=localhost", "-addext",
             "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        assert p.returncode == 0, p.stderr
        self.port = mdmtest.free_port_closed()
        with open(TEMPLATE) as f:
            conf = f.read()
        for k, v in {"@PREFIX@": self.dir, "@MDMD@": "127.0.0.1:%d" % mdmd_port,
                     "@APP@": "127.0.0.1:%d" % app_port,
                     "@LISTEN@": "127.0.0.1:%d" % self.port,
                     "@CERT@": self.cert, "@KEY@": key,
                     "@CLIENT_CA@": client_ca,
                     "@APPLICATION@": "crm"}.items():
            conf = conf.replace(k, v)
        import re
        assert not re.search(r"@[A-Z]+@", conf)
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen(
            ["nginx", "-p", self.dir, "-c", self.conf, "-e",
             os.path.join(self.dir, "error.log"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.ctx = ssl.create_default_context(cafile=self.cert)
        wait_for(self._up, timeout=10, what="nginx listening")

    def _up(self):
        assert self.proc.poll() is None, self.proc.stderr.read()
        try:
            self.get(None)
            return True
        except OSError:
            return False

    def get(self, token, path="/", cert=None, headers=None):
        """GET over TLS, with the device token and/or a client certificate
        (cert: (cert file, key file))."""
        req = urllib.request.Request("https://localhost:%d%s" %
                                     (self.port, path))
        if token:
            req.add_header("Authorization", "Bearer " + token)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        ctx = self.ctx
        if cert:
            ctx = ssl.create_default_context(cafile=self.cert)
            ctx.load_cert_chain(*cert)
        try:
            with urllib.request.urlopen(req, context=ctx,
                                        timeout=10) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def cert_device(server, tmp_path, name, i, facts=None):
    """Enroll a device with a CSR; returns (answer, (cert file, key file))."""
    csr = make_csr(tmp_path, name)
    et = server.create_etoken()["token"]
    r = server.api("POST", "/v1/enroll", {
        "enrollment_token": et, "facts": facts or make_facts(i),
        "csr": csr}, token=None)
    assert r.status == 201, r.raw
    cert = tmp_path / (name + ".crt")
    cert.write_text(r.body["certificate"])
    return r.body, (str(cert), str(tmp_path / (name + ".key")))


@pytest.fixture
def server(server_factory):
    # The gateway (127.0.0.1) may forward client certificates.
    return server_factory(args=["--trusted-proxies", "127.0.0.1"], name="gw")


@pytest.fixture
def gw(server, tmp_path):
    for doc in (COMPLIANCE, ACCESS):
        r = server.api("PUT", "/v1/policies/%s/%s" % (
            doc["kind"], doc["metadata"]["name"]), doc)
        assert r.status == 201, r.raw
    # The tenant's CA exists once a device enrolled with a CSR.
    first, _ = cert_device(server, tmp_path, "first", 90)
    ca = tmp_path / "tenant-ca.pem"
    ca.write_text(first["ca_certificate"])
    app = Upstream()
    g = Gateway(tmp_path / "nginx", server.port, app.port, str(ca))
    yield server, g, app
    g.stop()
    app.stop()


def test_compliant_device_passes_and_loses_access(gw):
    server, g, app = gw
    dev = server.enroll(server.create_etoken()["token"], make_facts(1))
    tok = dev["device_token"]

    st, hdrs, body = g.get(tok, "/reports?q=1")
    assert (st, body) == (200, "hello from crm\n")
    assert app.seen == [{"path": "/reports?q=1", "device": dev["device_id"],
                         "authorization": None}]

    # A check-in with an old OS: non-compliant at once, refused at the
    # gateway, and the upstream sees nothing more.
    r = server.api("POST", "/v1/agent/checkin",
                   {"facts": make_facts(1, os=OLD_OS)}, token=tok)
    assert r.status == 200 and r.body["compliance"] == "noncompliant"
    st, hdrs, body = g.get(tok)
    assert st == 403
    assert hdrs.get("X-MDM-Decision") == "block"
    assert len(app.seen) == 1

    # Remediated: it passes again.
    r = server.api("POST", "/v1/agent/checkin", {"facts": make_facts(1)},
                   token=tok)
    assert r.body["compliance"] == "compliant"
    assert g.get(tok)[0] == 200
    assert len(app.seen) == 2


def test_no_credential_never_reaches_the_upstream(gw):
    server, g, app = gw
    assert g.get(None)[0] == 401
    assert g.get("not-a-token")[0] == 401
    # An admin token is a valid credential of the wrong kind: 403.
    assert g.get(server.token)[0] == 403
    dev = server.enroll(server.create_etoken()["token"], make_facts(2))
    r = server.api("POST", "/v1/devices/%s/retire" % dev["device_id"],
                   {"wipe": "none"})
    assert r.status == 200, r.raw
    assert g.get(dev["device_token"])[0] == 401
    # An unknown-compliance device (no check-in under a newer policy is
    # needed: this one never matched) is a 403, not a pass.
    other = server.enroll(server.create_etoken()["token"],
                          make_facts(3, os=OLD_OS))
    assert g.get(other["device_token"])[0] == 403
    assert app.seen == []


def test_mdmd_down_fails_closed(gw):
    server, g, app = gw
    dev = server.enroll(server.create_etoken()["token"], make_facts(4))
    assert g.get(dev["device_token"])[0] == 200
    server.stop()
    st, _, _ = g.get(dev["device_token"])
    assert st == 500
    assert len(app.seen) == 1


def test_device_certificate_is_the_credential(gw, tmp_path):
    """Mutual TLS: the device's certificate alone gets it in (mdmd maps it
    to the device); compliance still decides; a certificate from another
    tenant's CA, a forged X-Client-Cert header or a revoked certificate
    never reach the upstream."""
    server, g, app = gw
    dev, cert = cert_device(server, tmp_path, "dev", 1)
    st, _, body = g.get(None, "/mtls", cert=cert)
    assert (st, body) == (200, "hello from crm\n")
    assert app.seen[-1] == {"path": "/mtls", "device": dev["device_id"],
                            "authorization": None}
    n = len(app.seen)
    # Non-compliant after a check-in: 403 for the certificate too.
    r = server.api("POST", "/v1/agent/checkin",
                   {"facts": make_facts(1, os=OLD_OS)},
                   token=dev["device_token"])
    assert r.body["compliance"] == "noncompliant"
    assert g.get(None, cert=cert)[0] == 403
    # A certificate from another tenant's CA: nginx refuses the handshake's
    # certificate (400) before anything is asked.
    _, tok = server.create_tenant("acme")
    et = server.api("POST", "/v1/enrollment-tokens", {}, token=tok).body
    csr = make_csr(tmp_path, "acme")
    r = server.api("POST", "/v1/enroll", {"enrollment_token": et["token"],
                                          "facts": make_facts(5),
                                          "csr": csr}, token=None)
    assert r.status == 201
    (tmp_path / "acme.crt").write_text(r.body["certificate"])
    acme = (str(tmp_path / "acme.crt"), str(tmp_path / "acme.key"))
    assert g.get(None, cert=acme)[0] == 400
    # A client cannot forge the header nginx sets.
    forged = urllib.parse.quote(open(cert[0]).read())
    assert g.get(None, headers={"X-Client-Cert": forged})[0] == 401
    # Compliant again, then retired: its certificate is revoked at once.
    server.api("POST", "/v1/agent/checkin", {"facts": make_facts(1)},
               token=dev["device_token"])
    assert g.get(None, cert=cert)[0] == 200
    n = len(app.seen)
    r = server.api("POST", "/v1/devices/%s/retire" % dev["device_id"],
                   {"wipe": "none"})
    assert r.status == 200
    assert g.get(None, cert=cert)[0] == 401
    assert len(app.seen) == n


def test_forwarded_certificate_only_from_trusted_proxies(server_factory,
                                                         tmp_path):
    """Straight to mdmd (no gateway) without --trusted-proxies: an
    X-Client-Cert header is refused, whoever sends it."""
    srv = server_factory(name="plain")
    dev, cert = cert_device(srv, tmp_path, "d", 1)
    pem = urllib.parse.quote(open(cert[0]).read())
    r = srv.api("GET", "/v1/access/check", token=None,
                headers={"X-Client-Cert": pem})
    assert r.status == 401
    assert "trusted proxy" in r.body["detail"]
