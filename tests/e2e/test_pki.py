"""Device certificates (issue 5, the first step): a device that sends a CSR
at enrollment gets a certificate from its tenant's CA, checked here with the
openssl command line (the key is made by openssl and never leaves this
test's "device"); the CA and the CRL are published, and retiring a device
revokes its certificate at once."""
import os
import subprocess

import pytest

import mdmtest
from mdmtest import assert_problem, make_facts


def openssl(*args, **kw):
    p = subprocess.run(["openssl"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30, **kw)
    return p


def make_csr(tmp_path, name="dev", algo=("ec", "ec_paramgen_curve:P-256")):
    key = str(tmp_path / (name + ".key"))
    csr = str(tmp_path / (name + ".csr"))
    p = openssl("req", "-new", "-newkey", algo[0], "-pkeyopt", algo[1],
                "-nodes", "-keyout", key, "-out", csr, "-subj",
                "/CN=i-choose-my-own-name")
    assert p.returncode == 0, p.stderr
    with open(csr) as f:
        return f.read()


def enroll(server, csr, i=0, expect=201):
    et = server.create_etoken()["token"]
    r = server.api("POST", "/v1/enroll", {"enrollment_token": et,
                                          "facts": make_facts(i),
                                          "csr": csr}, token=None)
    assert r.status == expect, r.raw
    return r


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_enroll_with_csr(server, tmp_path):
    r = enroll(server, make_csr(tmp_path))
    dev, cert, ca = r.body["device_id"], r.body["certificate"], \
        r.body["ca_certificate"]
    cert_f = write(tmp_path, "cert.pem", cert)
    ca_f = write(tmp_path, "ca.pem", ca)
    # Issued by the tenant's CA, for TLS clients.
    p = openssl("verify", "-CAfile", ca_f, "-purpose", "sslclient", cert_f)
    assert p.returncode == 0 and b": OK" in p.stdout, p.stderr
    # The subject is the server's: the device id, not what the CSR asked.
    p = openssl("x509", "-in", cert_f, "-noout", "-subject", "-ext",
                "subjectAltName", "-nameopt", "RFC2253")
    out = p.stdout.decode()
    assert "CN=%s" % dev in out and "i-choose" not in out, out
    assert "URI:urn:mdm:device:%s" % dev in out
    # The published CA is the one in the answer.
    r = server.api("GET", "/v1/ca.pem?tenant=default", token=None)
    assert r.status == 200
    assert r.headers["Content-Type"] == "application/x-pem-file"
    assert r.raw.decode() == ca
    r = server.api("GET", "/v1/ca.pem?tenant=%s" % server.tenant_id(),
                   token=None)
    assert r.raw.decode() == ca
    # Stored: serial and fingerprint in device_certs.
    rows = server.q("SELECT device_id, revoked_at FROM device_certs")
    assert [tuple(x) for x in rows] == [(dev, None)]
    # Without a CSR there is no certificate.
    r = server.enroll(server.create_etoken()["token"], make_facts(2))
    assert r.get("certificate") is None


def test_bad_csrs_change_nothing(server, tmp_path):
    rsa = make_csr(tmp_path, "rsa", ("rsa", "rsa_keygen_bits:2048"))
    p384 = make_csr(tmp_path, "p384", ("ec", "ec_paramgen_curve:P-384"))
    good = make_csr(tmp_path)
    forged = good.replace(good.splitlines()[-2][-8:],
                          "A" * 8) if good.splitlines()[-2][-8:] != "A" * 8 \
        else good
    et = server.create_etoken()["token"]
    before = server.snapshot()
    for csr, why in [("nonsense", "not a PEM certificate request (CSR)"),
                     (rsa, "the CSR's key must be EC P-256"),
                     (p384, "the CSR's key must be EC P-256"),
                     ("x" * 9000, "the CSR is larger than 8192 bytes"),
                     (7, "expected a PEM certificate request")]:
        r = server.api("POST", "/v1/enroll", {"enrollment_token": et,
                                              "facts": make_facts(1),
                                              "csr": csr}, token=None)
        assert_problem(r, 400)
        assert why in r.body["detail"], (why, r.body)
    r = server.api("POST", "/v1/enroll", {"enrollment_token": et,
                                          "facts": make_facts(1),
                                          "csr": forged}, token=None)
    assert_problem(r, 400)
    assert server.snapshot() == before   # the token was not used either
    enroll(server, good)


def test_retire_revokes(server, tmp_path):
    r = enroll(server, make_csr(tmp_path))
    dev = r.body["device_id"]
    cert_f = write(tmp_path, "cert.pem", r.body["certificate"])
    ca_f = write(tmp_path, "ca.pem", r.body["ca_certificate"])
    other = enroll(server, make_csr(tmp_path, "b"), i=1)
    crl = server.api("GET", "/v1/crl.pem?tenant=default", token=None)
    assert crl.status == 200
    crl_f = write(tmp_path, "crl0.pem", crl.raw.decode())
    p = openssl("verify", "-crl_check", "-CAfile", ca_f, "-CRLfile", crl_f,
                cert_f)
    assert p.returncode == 0, p.stdout + p.stderr

    r = server.api("POST", "/v1/devices/%s/retire" % dev, {"wipe": "none"})
    assert r.status == 200, r.raw
    crl = server.api("GET", "/v1/crl.pem?tenant=default", token=None)
    crl_f = write(tmp_path, "crl1.pem", crl.raw.decode())
    p = openssl("verify", "-crl_check", "-CAfile", ca_f, "-CRLfile", crl_f,
                cert_f)
    assert p.returncode != 0 and b"certificate revoked" in p.stdout + \
        p.stderr, p.stdout + p.stderr
    # The other device's certificate is still good.
    other_f = write(tmp_path, "other.pem", other.body["certificate"])
    p = openssl("verify", "-crl_check", "-CAfile", ca_f, "-CRLfile", crl_f,
                other_f)
    assert p.returncode == 0, p.stdout + p.stderr
    # The CRL is signed by the CA and lists exactly one serial.
    p = openssl("crl", "-in", crl_f, "-noout", "-text", "-CAfile", ca_f)
    text = p.stdout.decode() + p.stderr.decode()
    assert "verify OK" in text, text
    assert text.count("Serial Number:") == 1


def test_published_endpoints_errors(server, server_factory, tmp_path):
    assert_problem(server.api("GET", "/v1/ca.pem", token=None), 400)
    assert_problem(server.api("GET", "/v1/ca.pem?tenant=nope", token=None),
                   404)
    # No certificate issued yet: no CA published.
    assert_problem(server.api("GET", "/v1/crl.pem?tenant=default",
                              token=None), 404)
    enroll(server, make_csr(tmp_path))
    assert server.api("GET", "/v1/crl.pem?tenant=default",
                      token=None).status == 200
    # Each tenant has its own CA.
    _, tok = server.create_tenant("acme")
    et = server.api("POST", "/v1/enrollment-tokens", {}, token=tok).body
    r = server.api("POST", "/v1/enroll", {
        "enrollment_token": et["token"], "facts": make_facts(9),
        "csr": make_csr(tmp_path, "acme")}, token=None)
    assert r.status == 201, r.raw
    a = server.api("GET", "/v1/ca.pem?tenant=acme", token=None).raw
    d = server.api("GET", "/v1/ca.pem?tenant=default", token=None).raw
    assert a != d
    # A certificate of acme's does not verify against default's CA.
    cert_f = write(tmp_path, "acme.pem", r.body["certificate"])
    ca_f = write(tmp_path, "default-ca.pem", d.decode())
    p = openssl("verify", "-CAfile", ca_f, cert_f)
    assert p.returncode != 0


def test_agent_enrolls_with_its_own_key(server, tmp_path):
    """mdm-agent makes its key, sends a CSR and keeps key, certificate and
    CA in its state dir, mode 0600; the key matches the certificate."""
    state = tmp_path / "state"
    et = server.create_etoken()["token"]
    root = os.path.join(mdmtest.MDM_FIXTURES, "devices", "debian12-luks")
    p = mdmtest.run([mdmtest.AGENT, "enroll", "--server", server.url,
                     "--token", et, "--state-dir", str(state), "--root",
                     root], env=mdmtest.clean_env({"HOME": str(tmp_path)}))
    assert p.returncode == 0, p.stderr
    with open(state / "credentials.json") as f:
        dev = __import__("json").load(f)["device_id"]
    for name in ("device.key", "device.crt", "ca.pem"):
        assert os.stat(state / name).st_mode & 0o777 == 0o600, name
    pub_cert = openssl("x509", "-in", str(state / "device.crt"), "-noout",
                       "-pubkey").stdout
    pub_key = openssl("pkey", "-in", str(state / "device.key"),
                      "-pubout").stdout
    assert pub_cert and pub_cert == pub_key
    p = openssl("x509", "-in", str(state / "device.crt"), "-noout",
                "-subject", "-nameopt", "RFC2253")
    assert ("CN=%s" % dev) in p.stdout.decode()
    p = openssl("verify", "-CAfile", str(state / "ca.pem"),
                str(state / "device.crt"))
    assert p.returncode == 0, p.stderr
    # The private key is nowhere in the server's database.
    key_b64 = "".join(open(state / "device.key").read().splitlines()[1:-1])
    with open(server.db_path, "rb") as f:
        assert key_b64[:64].encode() not in f.read()
