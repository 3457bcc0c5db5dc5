"""mdmd serving HTTPS (issue 5): `--tls-cert/--tls-key`, the device
certificate as the credential on device endpoints (mutual TLS), a
certificate bound to exactly one device, renewal through
POST /v1/agent/certificate, the pin of the server's CA in enrollment
tokens, and the forwarded certificate of a trusted proxy on every device
endpoint.  Keys and certificates are made with the openssl command line;
TLS is Python's ssl module (OpenSSL) against mdmd's GnuTLS."""
import json
import os
import ssl
import time
import urllib.parse

import pytest

import mdmtest
from mdmtest import assert_problem, make_facts
from pkitest import (ctx_for, make_ca, make_csr, make_server_cert, openssl,
                     pin_of)


class Device:
    """An enrolled device: its id, token, key and certificate files."""

    def __init__(self, d, name, body, key):
        self.id = body["device_id"]
        self.token = body["device_token"]
        self.key = key
        self.cert = str(d / (name + ".crt"))
        with open(self.cert, "w") as f:
            f.write(body["certificate"])
        self.pem = body["certificate"]


def enroll(srv, d, name, i=0):
    key, csr = make_csr(d, name)
    et = srv.create_etoken()["token"]
    r = srv.api("POST", "/v1/enroll", {"enrollment_token": et,
                                       "facts": make_facts(i), "csr": csr},
                token=None)
    assert r.status == 201, r.raw
    return Device(d, name, r.body, key)


def call(srv, method, path, body=None, token=None, cert=None, key=None,
         headers=None):
    return mdmtest.http_request(srv.host, srv.port, method, path, body=body,
                                token=token, headers=headers,
                                context=ctx_for(srv.ca_pem, cert, key))


def checkin(srv, dev=None, token=None, i=0, cert=None, key=None):
    if dev is not None and cert is None:
        cert, key = dev.cert, dev.key
    return call(srv, "POST", "/v1/agent/checkin", {"facts": make_facts(i)},
                token=token, cert=cert, key=key)


@pytest.fixture
def tls_server(server_factory, tmp_path):
    def make(args=(), name="tls"):
        d = tmp_path / (name + "-pki")
        d.mkdir()
        ca = make_ca(d, "server-ca")
        chain, key = make_server_cert(d, ca)
        s = server_factory(args=["--tls-cert", chain, "--tls-key", key] +
                           list(args), name=name, start=False)
        s.tls_context = ctx_for(ca[1])
        s.ca_pem = ca[1]
        s.start()
        return s
    return make


def test_https_and_the_pin_in_enrollment_tokens(tls_server, tmp_path):
    srv = tls_server()
    r = srv.api("GET", "/healthz", token=None)
    assert r.status == 200 and r.body == {"status": "ok"}
    # Plain HTTP on the TLS port gets no HTTP answer.
    with pytest.raises(Exception):
        mdmtest.http_request(srv.host, srv.port, "GET", "/healthz",
                             timeout=5)
    # TLS 1.1 is refused.
    ctx = ctx_for(srv.ca_pem)
    with pytest.warns(DeprecationWarning):
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, ConnectionError)):
        mdmtest.http_request(srv.host, srv.port, "GET", "/healthz",
                             context=ctx)
    # The token pins the CA that signed the server's certificate (the last
    # of the chain), and the answer says which.
    pin = pin_of(srv.ca_pem)
    r = srv.api("POST", "/v1/enrollment-tokens", {})
    assert r.status == 201, r.raw
    assert r.body["server_ca_fingerprint"] == pin
    assert mdmtest.jwt_parts(r.body["token"])[1]["server_ca"] == pin
    assert "devices pin the server CA %s" % pin in srv.stderr()
    # The chain goes out without its self-signed root (clients have it);
    # the pinned CA is published for agents to check against the pin.
    shown = openssl("s_client", "-connect", "127.0.0.1:%d" % srv.port,
                    "-showcerts", input=b"").decode()
    assert shown.count("-----BEGIN CERTIFICATE-----") == 1, shown
    r = srv.api("GET", "/v1/server-ca.pem", token=None)
    assert r.status == 200
    assert r.headers["Content-Type"] == "application/x-pem-file"
    assert r.raw.decode() == open(srv.ca_pem).read()
    # mdmctl over HTTPS with the CA given; without it, the system store
    # does not know this CA and it refuses.
    env = mdmtest.clean_env({"MDM_SERVER": srv.url, "MDM_TOKEN": srv.token})
    p = mdmtest.run([mdmtest.MDMCTL, "--ca-file", srv.ca_pem,
                     "enroll-token", "create"], env=env)
    assert p.returncode == 0, p.stderr
    assert mdmtest.jwt_parts(p.stdout.strip())[1]["server_ca"] == pin
    p = mdmtest.run([mdmtest.MDMCTL, "enroll-token", "create"], env=env)
    assert p.returncode != 0 and p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_device_certificate_is_the_credential(tls_server, tmp_path):
    srv = tls_server()
    a = enroll(srv, tmp_path, "a", 0)
    b = enroll(srv, tmp_path, "b", 1)
    # The certificate alone, the token alone, both of one device: in.
    mdmtest.assert_checkin_answer(checkin(srv, a))
    mdmtest.assert_checkin_answer(checkin(srv, token=a.token))
    mdmtest.assert_checkin_answer(checkin(srv, a, token=a.token))
    r = call(srv, "GET", "/v1/agent/policy", cert=b.cert, key=b.key)
    assert r.status == 200, r.raw
    bundle = json.loads(mdmtest.b64url_decode(r.body["bundle"]))
    assert bundle["device_id"] == b.id
    # A's certificate with B's token: refused, and nothing is recorded.
    seen = srv.q1("SELECT last_seen FROM device_status WHERE device_id = ?",
                  (b.id,))
    p = assert_problem(checkin(srv, a, token=b.token, i=1), 401)
    assert p["detail"] == ("the client certificate and the device token "
                           "name different devices")
    assert srv.q1("SELECT last_seen FROM device_status WHERE device_id = ?",
                  (b.id,)) == seen
    # No credential at all.
    p = assert_problem(checkin(srv), 401)
    assert p["detail"] == "missing bearer token"
    # A device certificate opens no admin endpoint, with or without a token.
    p = assert_problem(call(srv, "GET", "/v1/devices", cert=a.cert,
                            key=a.key), 401)
    assert p["detail"] == "missing bearer token"
    r = call(srv, "GET", "/v1/devices", token=srv.token, cert=a.cert,
             key=a.key)
    assert r.status == 200 and len(r.body["items"]) == 2, r.raw
    p = assert_problem(call(srv, "GET", "/v1/agent/policy", token=srv.token,
                            cert=a.cert, key=a.key), 401)
    assert p["detail"] == "a device certificate with an API token"


def test_foreign_revoked_and_expired_certificates(tls_server, tmp_path):
    srv = tls_server(["--device-cert-days", "12s"])
    a = enroll(srv, tmp_path, "a", 0)
    b = enroll(srv, tmp_path, "b", 1)
    # The same subject and key from another CA: not a certificate mdmd
    # issued, whatever it says.
    other = make_ca(tmp_path, "other-ca")
    forged = str(tmp_path / "forged.crt")
    csr = str(tmp_path / "forged.csr")
    openssl("req", "-new", "-key", a.key, "-out", csr, "-subj",
            "/O=%s/CN=%s" % (srv.tenant_id(), a.id))
    openssl("x509", "-req", "-in", csr, "-CA", other[1], "-CAkey", other[0],
            "-CAcreateserial", "-out", forged, "-days", "1")
    p = assert_problem(checkin(srv, cert=forged, key=a.key), 401)
    assert p["detail"] == "unknown client certificate"
    p = assert_problem(checkin(srv, token=a.token, cert=forged, key=a.key),
                       401)
    assert p["detail"] == "unknown client certificate"
    # Retiring B revokes its certificate: refused on the next request.
    mdmtest.assert_checkin_answer(checkin(srv, b, i=1))
    r = srv.api("POST", "/v1/devices/%s/retire" % b.id, {"wipe": "none"})
    assert r.status == 200, r.raw
    p = assert_problem(checkin(srv, b, i=1), 401)
    assert p["detail"] == "revoked client certificate"
    # A's certificate lives 12 s: it works until then, and is refused as
    # expired after, even with A's own valid token.
    not_after = srv.q1("SELECT not_after FROM device_certs WHERE "
                       "device_id = ?", (a.id,))
    mdmtest.assert_checkin_answer(checkin(srv, a))
    mdmtest.wait_for(lambda: checkin(srv, a).status == 401, timeout=30,
                     interval=0.5, what="A's certificate to expire")
    assert time.time() >= not_after - 1
    p = assert_problem(checkin(srv, a, token=a.token), 401)
    assert p["detail"] == "expired client certificate"
    mdmtest.assert_checkin_answer(checkin(srv, token=a.token,
                                          cert=False))


def test_renewal_revokes_the_old_certificate(tls_server, tmp_path):
    srv = tls_server()
    a = enroll(srv, tmp_path, "a", 0)
    old_serial = srv.q1("SELECT serial FROM device_certs WHERE device_id = ?",
                        (a.id,))
    # A bad CSR changes nothing: the old certificate still works.
    before = srv.snapshot()
    for csr, why in (("junk", "not a PEM certificate request (CSR)"),
                     (42, None)):
        p = assert_problem(call(srv, "POST", "/v1/agent/certificate",
                                {"csr": csr}, cert=a.cert, key=a.key), 400)
        if why:
            assert p["detail"] == "field 'csr': " + why
    assert srv.snapshot() == before
    mdmtest.assert_checkin_answer(checkin(srv, a))
    # Renewal with a new key, authenticated by the current certificate.
    key2, csr2 = make_csr(tmp_path, "a2")
    r = call(srv, "POST", "/v1/agent/certificate", {"csr": csr2},
             cert=a.cert, key=a.key)
    assert r.status == 200, r.raw
    assert set(r.body) == {"certificate", "ca_certificate", "not_after",
                           "fingerprint"}
    cert2 = str(tmp_path / "a2.crt")
    with open(cert2, "w") as f:
        f.write(r.body["certificate"])
    subj = openssl("x509", "-in", cert2, "-noout", "-subject", "-nameopt",
                   "RFC2253").decode()
    assert "CN=%s" % a.id in subj
    rows = srv.q("SELECT serial, revoked_at IS NOT NULL FROM device_certs "
                 "WHERE device_id = ? ORDER BY issued_at, rowid", (a.id,))
    assert [tuple(x) for x in rows][0] == (old_serial, 1)
    assert [x[1] for x in rows] == [1, 0]
    p = assert_problem(checkin(srv, a), 401)
    assert p["detail"] == "revoked client certificate"
    mdmtest.assert_checkin_answer(checkin(srv, cert=cert2, key=key2))
    # The CRL lists the old serial.
    r = srv.api("GET", "/v1/crl.pem?tenant=default", token=None)
    crl = str(tmp_path / "crl.pem")
    with open(crl, "wb") as f:
        f.write(r.raw)
    text = openssl("crl", "-in", crl, "-noout", "-text").decode().lower()
    assert old_serial.lstrip("0") in text.replace(":", "")
    # Audited.
    rows = srv.q("SELECT actor, target FROM audit WHERE action = ?",
                 ("device.certificate_renew",))
    assert [tuple(x) for x in rows] == [("device:%s" % a.id, a.id)]
    # A retired device cannot renew.
    r = srv.api("POST", "/v1/devices/%s/retire" % a.id, {"wipe": "none"})
    assert r.status == 200, r.raw
    key3, csr3 = make_csr(tmp_path, "a3")
    p = assert_problem(call(srv, "POST", "/v1/agent/certificate",
                            {"csr": csr3}, token=a.token), 401)
    assert srv.q1("SELECT count(*) FROM device_certs WHERE device_id = ? "
                  "AND revoked_at IS NULL", (a.id,)) == 0


def test_proxy_forwarded_certificate_on_device_endpoints(server_factory,
                                                         tmp_path):
    trusting = server_factory(args=["--trusted-proxies", "127.0.0.1"],
                              name="trusting")
    a = enroll(trusting, tmp_path, "a", 0)
    xc = {"X-Client-Cert": urllib.parse.quote(a.pem, safe="")}
    r = trusting.api("POST", "/v1/agent/checkin", {"facts": make_facts(0)},
                     token=None, headers=xc)
    mdmtest.assert_checkin_answer(r)
    r = trusting.api("GET", "/v1/agent/commands", token=None, headers=xc)
    assert r.status == 200, r.raw
    # An untrusted peer's header is refused, even next to a good token.
    plain = server_factory(name="plain")
    p = assert_problem(plain.api("GET", "/v1/server-ca.pem", token=None),
                       404)
    assert p["detail"] == ("this server pins no CA (it runs without "
                           "--tls-cert or --pin-ca)")
    b = enroll(plain, tmp_path, "b", 0)
    xb = {"X-Client-Cert": urllib.parse.quote(b.pem, safe="")}
    p = assert_problem(plain.api("POST", "/v1/agent/checkin",
                                 {"facts": make_facts(0)}, token=b.token,
                                 headers=xb), 401)
    assert p["detail"] == ("a client certificate is only taken from a "
                           "trusted proxy")


def test_tls_settings_errors(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    ca = make_ca(d, "ca")
    chain, key = make_server_cert(d, ca)
    other_chain, other_key = make_server_cert(d, ca, "other")
    data = str(tmp_path / "data")

    def mdmd(*args):
        return mdmtest.run([mdmtest.MDMD, "--listen", "127.0.0.1:0",
                            "--data-dir", data] + list(args), timeout=30)

    os.chmod(key, 0o640)
    p = mdmd("--tls-cert", chain, "--tls-key", key)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines()[-1] == (
        "mdmd: '%s' must not be readable by group or others (chmod 600)"
        % key)
    os.chmod(key, 0o600)
    p = mdmd("--tls-cert", chain, "--tls-key", other_key)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines()[-1] == (
        "mdmd: '%s' is not the key of the --tls-cert certificate"
        % other_key)
    p = mdmd("--tls-cert", chain)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines()[-1] == \
        "mdmd: --tls-cert and --tls-key go together"
    p = mdmd("--tls-cert", key, "--tls-key", key)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines()[-1] == \
        "mdmd: '%s' holds no PEM certificate" % key
    for bad in ("0", "5s", "3651d", "x", "12q", ""):
        p = mdmd("--device-cert-days", bad)
        assert p.returncode == 2, bad
        assert "invalid value for --device-cert-days" in p.stderr
    # Nothing was created by any of these.
    assert not os.path.exists(os.path.join(data, "mdm.db"))
