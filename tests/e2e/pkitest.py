"""Certificates for the zero-trust tests (issue 5), made with the openssl
command line: a P-256 CA, a server certificate for 127.0.0.1/localhost
signed by it (the chain file is the leaf, then the CA, as mdmd's
--tls-cert wants), a self-signed server certificate, a device CSR, the pin
of a CA ("sha256:<hex of the DER>"), and an ssl.SSLContext trusting a CA
with an optional client certificate."""
import hashlib
import os
import ssl
import subprocess


def openssl(*args, input=None):
    p = subprocess.run(["openssl"] + list(args), input=input,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p.stdout


def make_ca(d, name):
    """A self-signed CA: (key file, certificate file)."""
    key, pem = str(d / (name + ".key")), str(d / (name + ".pem"))
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", pem,
            "-days", "30", "-subj", "/CN=test %s" % name, "-addext",
            "basicConstraints=critical,CA:TRUE", "-addext",
            "keyUsage=critical,keyCertSign,cRLSign")
    return key, pem


def make_server_cert(d, ca, name="server"):
    """A server certificate for 127.0.0.1 signed by ca: (chain file, the
    leaf first and the CA last; key file, mode 0600)."""
    key, csr, pem = (str(d / (name + ext)) for ext in (".key", ".csr",
                                                       ".crt"))
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
            "-subj", "/CN=localhost")
    ext = d / (name + ".ext")
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                   "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca[1], "-CAkey", ca[0],
            "-CAcreateserial", "-out", pem, "-days", "30", "-extfile",
            str(ext))
    chain = str(d / (name + ".chain.pem"))
    with open(chain, "w") as f:
        f.write(open(pem).read() + open(ca[1]).read())
    os.chmod(key, 0o600)
    return chain, key


def make_self_signed(d, name):
    """A self-signed server certificate for 127.0.0.1: (file, key file)."""
    key, pem = str(d / (name + ".key")), str(d / (name + ".pem"))
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", pem,
            "-days", "30", "-subj", "/CN=localhost", "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost")
    os.chmod(key, 0o600)
    return pem, key


def make_csr(d, name):
    """A device's P-256 key and CSR: (key file, CSR PEM text)."""
    key, csr = str(d / (name + ".key")), str(d / (name + ".csr"))
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
            "-subj", "/CN=" + name)
    with open(csr) as f:
        return key, f.read()


def der_sha256(pem_text):
    """SHA-256 (hex) of the DER of the first certificate in pem_text."""
    der = openssl("x509", "-outform", "DER", input=pem_text.encode())
    return hashlib.sha256(der).hexdigest()


def pin_of(pem_file):
    with open(pem_file) as f:
        return "sha256:" + der_sha256(f.read())


def ctx_for(ca_pem, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=ca_pem)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx
