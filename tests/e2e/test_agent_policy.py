"""Configuration profiles on the device (docs/api.md, "Agent policy bundle"):
a real mdmd, a real mdm-agent on a copy of tests/fixtures/devices/debian12-luks.
The agent fetches the signed bundle when the check-in's policy_etag is new,
enforces it under --root (an OpenVPN profile with the brief's directives,
login.defs and pwquality.conf edited in place, encryption checked against
the facts) and reports each setting's state with its next check-in.  A bundle
altered on the way (a small proxy in this file flips a byte) is refused and
reported, and nothing on the device changes."""
import hashlib
import http.client
import http.server
import json
import os
import shutil
import stat
import subprocess
import threading

import pytest

from mdmtest import (AGENT, MDM_FIXTURES, SLOW, b64url, b64url_decode,
                     parse_time, run)

FIXTURE_ROOT = os.path.join(MDM_FIXTURES, "devices", "debian12-luks")
PLAIN_ROOT = os.path.join(MDM_FIXTURES, "devices", "ubuntu2204-plain")
VPN_PATH = "etc/openvpn/client/mdm.conf"
NOT_SUPPORTED = "not supported by mdm-agent on linux"

# The brief's example as a vpn setting...
BRIEF_VPN = {"remote": "vpn.corp.example.com", "port": 1194, "proto": "udp",
             "dev": "tun", "auth": "SHA256", "cipher": "AES-256-CBC",
             "auth_user_pass": True, "persist_key": True, "persist_tun": True,
             "verb": 3}
# ...and the file it must give: exactly the brief's directives, in order.
BRIEF_DIRECTIVES = ["client", "dev tun", "proto udp",
                    "remote vpn.corp.example.com 1194", "auth SHA256",
                    "cipher AES-256-CBC", "auth-user-pass", "persist-key",
                    "persist-tun", "verb 3"]
BRIEF_CONF = ("# Written by mdm-agent from this device's configuration "
              "profile; local changes are replaced.\n" +
              "".join(d + "\n" for d in BRIEF_DIRECTIVES))

LOGIN_DEFS = ("#\n# Password aging controls:\n#\n"
              "#\tPASS_MAX_DAYS\tMaximum number of days a password may be "
              "used.\n#\nPASS_MAX_DAYS\t99999\nPASS_MIN_DAYS\t0\n"
              "PASS_WARN_AGE\t7\n")
PWQUALITY = ("# Configuration for systemwide password quality limits\n"
             "# minlen = 8\n# minclass = 0\ndictcheck = 1\n")


def profile(vpn=None, **more):
    settings = {"vpn": vpn or BRIEF_VPN,
                "password": {"min_length": 12, "max_age_days": 90,
                             "min_classes": 3},
                "encryption": "required",
                # known to the server, not (yet) to the Linux agent
                "wifi": {"ssid": "CORP-WIFI", "security": "wpa2-psk",
                         "psk": "correct horse battery"}}
    settings.update(more)
    return {"apiVersion": "mdm/v1", "kind": "ConfigurationProfile",
            "metadata": {"name": "corp-vpn"},
            "spec": {"assign": {"platforms": ["linux"]},
                     "settings": settings}}


# ---- the device ------------------------------------------------------------

@pytest.fixture
def env(tmp_path):
    e = {k: v for k, v in os.environ.items()
         if not k.startswith("MDM_") or k in ("MDM_BIN", "MDM_FIXTURES")}
    e["HOME"] = str(tmp_path / "home")
    return e


class Device:
    """A copy of the debian12-luks root with the shadow suite's login.defs
    and libpwquality's pwquality.conf, and an agent state dir."""

    def __init__(self, tmp_path, env, name="dev", fixture=FIXTURE_ROOT):
        self.root = str(tmp_path / (name + "-root"))
        self.state = str(tmp_path / (name + "-state"))
        self.env = env
        shutil.copytree(fixture, self.root, symlinks=True)
        os.makedirs(self.path("etc/security"), exist_ok=True)
        self.write("etc/login.defs", LOGIN_DEFS)
        self.write("etc/security/pwquality.conf", PWQUALITY)
        self.id = None

    def path(self, rel):
        return os.path.join(self.root, rel)

    def write(self, rel, text):
        with open(self.path(rel), "w") as f:
            f.write(text)
        os.chmod(self.path(rel), 0o644)

    def read(self, rel):
        with open(self.path(rel)) as f:
            return f.read()

    def agent(self, *args):
        return run([AGENT] + list(args) + ["--state-dir", self.state,
                                           "--root", self.root],
                   env=self.env)

    def enroll(self, url, token):
        p = self.agent("enroll", "--server", url, "--token", token)
        assert p.returncode == 0, p.stderr
        self.id = self.creds()["device_id"]

    def run_once(self):
        p = self.agent("run", "--once")
        assert p.returncode == 0, p.stderr
        return p

    def creds(self):
        with open(os.path.join(self.state, "credentials.json")) as f:
            return json.load(f)

    def state_file(self, name):
        p = os.path.join(self.state, name)
        if not os.path.exists(p):
            return None
        with open(p, "rb") as f:
            return f.read()

    def snapshot(self):
        """Every file and directory of the root: path -> (mode, sha256)."""
        out = {}
        for d, dirs, files in os.walk(self.root):
            for n in dirs + files:
                p = os.path.join(d, n)
                st = os.lstat(p)
                h = None
                if stat.S_ISREG(st.st_mode):
                    with open(p, "rb") as f:
                        h = hashlib.sha256(f.read()).hexdigest()
                out[os.path.relpath(p, self.root)] = (st.st_mode, h)
        return out


def put_profile(server, doc, expect=(200, 201)):
    r = server.api("PUT", "/v1/policies/ConfigurationProfile/" +
                   doc["metadata"]["name"], doc)
    assert r.status in expect, r.raw
    return r.body


def device(server, dev):
    r = server.api("GET", "/v1/devices/" + dev.id)
    assert r.status == 200, r.raw
    return r.body


def error_events(server, dev):
    rows = server.q("SELECT data FROM telemetry WHERE device_id = ? AND "
                    "type = 'error' ORDER BY seq", (dev.id,))
    return [json.loads(r[0])["message"] for r in rows]


def applied_settings():
    return {"vpn": {"state": "applied", "detail": None},
            "password": {"state": "applied", "detail": None},
            "encryption": {"state": "applied", "detail": None},
            "wifi": {"state": "not_supported", "detail": NOT_SUPPORTED}}


def directives(text):
    """The non-comment lines of an OpenVPN config."""
    return [ln for ln in text.split("\n") if ln and not ln.startswith("#")]


# ---- a tampering proxy -----------------------------------------------------

class Proxy:
    """HTTP on 127.0.0.1 forwarding every request to mdmd; with .tamper set
    it alters the 200 answers of GET /v1/agent/policy: "bundle" flips one
    byte of the signed bundle (verb 3 -> 2, still valid JSON), "signature"
    one character of the signature."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.tamper = None
        self.policy_gets = []   # (If-None-Match, status, tampered)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def forward(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                hdrs = {k: v for k, v in self.headers.items()
                        if k.lower() not in ("host", "connection",
                                             "content-length")}
                conn = http.client.HTTPConnection(upstream.host,
                                                  upstream.port, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body,
                                 headers=hdrs)
                    resp = conn.getresponse()
                    data = resp.read()
                    status, rh = resp.status, resp.getheaders()
                finally:
                    conn.close()
                tampered = False
                if self.path == "/v1/agent/policy":
                    if status == 200 and proxy.tamper:
                        data = proxy.alter(data)
                        tampered = True
                    proxy.policy_gets.append(
                        (self.headers.get("If-None-Match"), status, tampered))
                self.send_response(status)
                for k, v in rh:
                    if k.lower() in ("content-type", "etag", "location"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = forward

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     Handler)
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def alter(self, data):
        answer = json.loads(data)
        if self.tamper == "bundle":
            raw = b64url_decode(answer["bundle"])
            assert b'"verb":3' in raw
            answer["bundle"] = b64url(raw.replace(b'"verb":3', b'"verb":2'))
        else:
            s = answer["signature"]
            answer["signature"] = ("B" if s[0] == "A" else "A") + s[1:]
        return json.dumps(answer).encode()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def proxy_factory():
    made = []

    def make(upstream):
        p = Proxy(upstream)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


# ---- the tests -------------------------------------------------------------

def test_profile_applied_and_reported(server, env, tmp_path):
    dev = Device(tmp_path, env)
    dev.enroll(server.url, server.create_etoken()["token"])
    assert dev.creds()["policy_key"].startswith("-----BEGIN PUBLIC KEY-----")
    put_profile(server, profile(kiosk={"mode": "single-app"}))

    # First round: the check-in names a new ETag; the agent fetches,
    # verifies and applies the bundle.
    dev.run_once()
    assert dev.read(VPN_PATH) == BRIEF_CONF
    assert directives(dev.read(VPN_PATH)) == BRIEF_DIRECTIVES
    assert stat.S_IMODE(os.stat(dev.path(VPN_PATH)).st_mode) == 0o600
    assert dev.read("etc/login.defs") == \
        LOGIN_DEFS.replace("PASS_MAX_DAYS\t99999", "PASS_MAX_DAYS\t90")
    assert dev.read("etc/security/pwquality.conf") == \
        PWQUALITY + "minlen = 12\nminclass = 3\n"
    # The status travels with the next check-in, not this one.
    d = device(server, dev)
    assert d["policy_status"] is None
    etag = d["policy_etag"]
    assert isinstance(etag, str) and etag.startswith('"')

    # Second round: the status reaches the server.
    dev.run_once()
    d = device(server, dev)
    ps = d["policy_status"]
    assert set(ps) == {"etag", "applied_at", "error", "settings"}, ps
    assert ps["etag"] == etag == d["policy_etag"]
    assert ps["error"] is None
    parse_time(ps["applied_at"])
    want = applied_settings()
    want["kiosk"] = {"state": "not_supported", "detail": NOT_SUPPORTED}
    assert ps["settings"] == want
    assert error_events(server, dev) == []

    # Rounds with nothing new rewrite nothing.
    st = os.stat(dev.path(VPN_PATH))
    snap = dev.snapshot()
    dev.run_once()
    assert os.stat(dev.path(VPN_PATH)).st_ino == st.st_ino
    assert dev.snapshot() == snap
    assert device(server, dev)["policy_status"] == ps


def test_encryption_failed_on_plain_device(server, env, tmp_path):
    """encryption: required cannot be turned on remotely: on a device whose
    root is not encrypted the setting is reported failed (and the rest is
    applied all the same)."""
    dev = Device(tmp_path, env, fixture=PLAIN_ROOT)
    p = run([AGENT, "facts", "--root", dev.root], env=env)
    assert p.returncode == 0, p.stderr
    facts = json.loads(p.stdout)
    assert facts["encryption"]["root_encrypted"] is False
    dev.enroll(server.url, server.create_etoken()["token"])
    put_profile(server, profile())
    dev.run_once()
    dev.run_once()
    want = applied_settings()
    want["encryption"] = {
        "state": "failed", "detail": "root filesystem is not encrypted; "
        "encryption cannot be enabled remotely on Linux"}
    assert device(server, dev)["policy_status"]["settings"] == want
    assert dev.read(VPN_PATH) == BRIEF_CONF


@pytest.mark.skipif(shutil.which("openvpn") is None,
                    reason="openvpn is not installed")
def test_openvpn_accepts_the_profile(server, env, tmp_path):
    """OpenVPN itself parses the generated file: it gets past the option
    checks (every directive known, with valid arguments) and stops only when
    it would ask for the user name (auth-user-pass) on a terminal it does
    not have."""
    dev = Device(tmp_path, env)
    dev.enroll(server.url, server.create_etoken()["token"])
    put_profile(server, profile())
    dev.run_once()
    p = subprocess.run(["openvpn", "--config", dev.path(VPN_PATH),
                        "--ca", "/dev/null", "--dev", "null", "--verb", "3",
                        "--ifconfig-noexec", "--route-noexec"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True,
                       timeout=30 * SLOW)
    assert "Options error" not in p.stdout, p.stdout
    assert "Unrecognized option" not in p.stdout, p.stdout
    assert "Enter Auth Username" in p.stdout, p.stdout


def test_tampered_bundle_refused(server, env, tmp_path, proxy_factory):
    proxy = proxy_factory(server)
    dev = Device(tmp_path, env)
    dev.enroll(proxy.url, server.create_etoken()["token"])
    put_profile(server, profile())
    dev.run_once()
    dev.run_once()
    assert dev.read(VPN_PATH) == BRIEF_CONF
    first = device(server, dev)["policy_status"]
    assert first["settings"] == applied_settings() and first["error"] is None
    assert [g[1:] for g in proxy.policy_gets] == [(200, False)]
    snap = dev.snapshot()
    kept = dev.state_file("policy.json")

    # The profile changes (vpn2, verb 3, max age 30); its bundle is altered
    # on the way: first a byte of the bundle, then the signature.
    vpn2 = dict(BRIEF_VPN, remote="vpn2.corp.example.com")
    new = profile(vpn=vpn2, password={"max_age_days": 30})
    put_profile(server, new)
    for n, how in enumerate(("bundle", "signature")):
        proxy.tamper = how
        dev.run_once()
        assert proxy.policy_gets[-1] == (first["etag"], 200, True)
        assert dev.snapshot() == snap, how   # nothing on the device changed
        assert dev.state_file("policy.json") == kept
        dev.run_once()
        d = device(server, dev)
        ps = d["policy_status"]
        assert ps["error"] == "bundle rejected: signature invalid", ps
        assert ps["etag"] == first["etag"] != d["policy_etag"]
        assert ps["applied_at"] == first["applied_at"]
        assert ps["settings"] == first["settings"]
        assert dev.snapshot() == snap
    # Each refusal was also queued as an error event (the same message is
    # queued at most once a minute by a running agent; these are separate
    # runs).
    events = error_events(server, dev)
    assert events and set(events) == \
        {"policy bundle rejected: signature invalid"}, events

    # Unaltered, the same bundle applies.
    proxy.tamper = None
    dev.run_once()
    dev.run_once()
    assert directives(dev.read(VPN_PATH)) == \
        ["client", "dev tun", "proto udp", "remote vpn2.corp.example.com 1194",
         "auth SHA256", "cipher AES-256-CBC", "auth-user-pass", "persist-key",
         "persist-tun", "verb 3"]
    assert "PASS_MAX_DAYS\t30\n" in dev.read("etc/login.defs")
    d = device(server, dev)
    assert d["policy_status"]["error"] is None
    assert d["policy_status"]["etag"] == d["policy_etag"] != first["etag"]


def test_enrolled_without_policy_key(server, env, tmp_path):
    """An agent enrolled before bundles were signed has no key: it refuses
    every bundle and says to re-enroll."""
    dev = Device(tmp_path, env)
    dev.enroll(server.url, server.create_etoken()["token"])
    creds = dev.creds()
    del creds["policy_key"]
    path = os.path.join(dev.state, "credentials.json")
    with open(path, "w") as f:
        json.dump(creds, f)
    os.chmod(path, 0o600)
    put_profile(server, profile())
    snap = dev.snapshot()
    dev.run_once()
    dev.run_once()
    assert dev.snapshot() == snap
    assert not os.path.exists(dev.path(VPN_PATH))
    ps = device(server, dev)["policy_status"]
    assert ps == {"etag": None, "applied_at": None, "settings": {},
                  "error": "bundle rejected: no policy key; re-enroll"}
    assert "policy bundle rejected: no policy key; re-enroll" in \
        error_events(server, dev)


def test_bundle_is_signed_for_this_device(server, env, tmp_path):
    """What the agent checks, seen from outside: the answer's signature
    verifies with the enrollment's policy_key over the decoded bytes, and
    the bundle names the device and the ETag it was served with."""
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, utils
    dev = Device(tmp_path, env)
    dev.enroll(server.url, server.create_etoken()["token"])
    put_profile(server, profile())
    dev.run_once()
    with open(os.path.join(dev.state, "policy.json")) as f:
        answer = json.load(f)
    assert answer["alg"] == "ES256"
    raw = b64url_decode(answer["bundle"])
    bundle = json.loads(raw)
    assert bundle["device_id"] == dev.id
    assert bundle["settings"]["vpn"] == BRIEF_VPN
    assert bundle["etag"] == device(server, dev)["policy_etag"]
    key = serialization.load_pem_public_key(dev.creds()["policy_key"].encode())
    sig = b64url_decode(answer["signature"])
    der = utils.encode_dss_signature(int.from_bytes(sig[:32], "big"),
                                     int.from_bytes(sig[32:], "big"))
    key.verify(der, raw, ec.ECDSA(hashes.SHA256()))
