"""MQTT wake-ups (CONTRACT §5, deploy/mosquitto/README.md) against a real
mosquitto with mdm's auth plugin (build/lib/mdm_mosquitto_auth.so),
configured by deploy/mosquitto/mdm-mosquitto-init on a free loopback port
in a temp dir.

The device side is played by mosquitto_sub/mosquitto_pub with the
credentials of the enroll answer.  Positive checks wait on the
subprocess's output; the negative ones (no message arrives) are bounded
waits, as they must be.
"""
import os
import subprocess
import time

import pytest

import mdmtest
from mqtttest import HAVE_MOSQUITTO, Broker, read_payload

pytestmark = pytest.mark.skipif(
    not HAVE_MOSQUITTO,
    reason="mosquitto and mosquitto-clients are not installed")


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "mosquitto")
    b.start()
    yield b
    b.stop()


def _connected_server(broker, server_factory, name, *args):
    """An mdmd with --mqtt on broker (and args), once it is connected."""
    srv = server_factory(args=["--mqtt", "mqtt://127.0.0.1:%d" % broker.port,
                               "--mqtt-admin-password-file",
                               broker.password_file] + list(args), name=name)
    mdmtest.wait_for(lambda: "connected to" in srv.stderr(),
                     what="mdmd connected to the broker")
    return srv


def test_push_end_to_end(broker, server_factory):
    srv = _connected_server(broker, server_factory, "mqtt", "--mqtt-rate",
                            "50")
    et = srv.create_etoken(max_uses=3)["token"]
    a = srv.enroll(et, i=0)
    b = srv.enroll(et, i=1)
    m = a["mqtt"]
    assert m is not None, a
    assert m["url"] == "mqtt://127.0.0.1:%d" % broker.port
    assert m["username"] == a["device_id"]
    assert m["topic"].startswith("mdm/") and \
        m["topic"].endswith("/%s/cmd" % a["device_id"])
    assert len(m["password"]) >= 43
    assert b["mqtt"]["password"] != m["password"]
    # The password is not kept by mdmd.
    with open(srv.db_path, "rb") as f:
        assert m["password"].encode() not in f.read()

    # Its own topic: a wake-up within 2 s of the command.
    own = broker.sub(m["username"], m["password"], m["topic"])
    assert broker.wait_subscribed(own).endswith(": 1")
    r = srv.api("POST", "/v1/devices/%s/commands" % a["device_id"],
                {"type": "lock"})
    assert r.status == 201, r.raw
    payload = read_payload(own, 2.0 * mdmtest.SLOW)
    assert payload == '{"v":1,"reason":"command"}', payload
    own.wait(5)
    assert own.returncode == 0

    # Another device's topic: the subscription is refused (granted 128)
    # and nothing arrives when the other device gets a command.
    other = broker.sub(m["username"], m["password"], b["mqtt"]["topic"])
    assert broker.wait_subscribed(other).endswith(": 128")
    # (mosquitto_sub exits when every subscription was denied; either
    # way, nothing may arrive.)
    r = srv.api("POST", "/v1/devices/%s/commands" % b["device_id"],
                {"type": "lock"})
    assert r.status == 201
    assert read_payload(other, 1.5) is None
    other.kill()
    other.wait()

    # Publishing as the device: mdmd acts on nothing it receives, and the
    # broker does not pass it on to the device's own topic either.
    own = broker.sub(m["username"], m["password"], m["topic"])
    broker.wait_subscribed(own)
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p",
                    str(broker.port), "-u", m["username"], "-P",
                    m["password"], "-q", "1", "-t", m["topic"], "-m", "x"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=10)
    assert read_payload(own, 1.0) is None

    def login(user, password, client_id=None, topic=None):
        """(rc, stderr) of a one-shot mosquitto_sub: refused logins exit
        non-zero with "not authorised"."""
        p = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p",
                            str(broker.port), "-i", client_id or user,
                            "-u", user, "-P", password, "-t",
                            topic or m["topic"], "-C", "1", "-W", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=10)
        return p.returncode, p.stderr.decode()

    # A wrong password, another device's password, the device's password
    # under another client id, or as the admin user: all refused.
    for args in [(m["username"], "wrong" * 9),
                 (m["username"], b["mqtt"]["password"]),
                 (m["username"], m["password"], "someone-else"),
                 ("mdmd", m["password"], "x")]:
        rc, err = login(*args)
        assert rc != 0 and "not authorised" in err, (args, err)

    # A device cannot revoke another one through the plugin's control
    # topic: b still logs in afterwards.
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p",
                    str(broker.port), "-i", m["username"], "-u",
                    m["username"], "-P", m["password"], "-q", "1", "-t",
                    "$CONTROL/mdm-auth/v1", "-m",
                    '{"revoke":["%s"]}' % b["device_id"]],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=10)
    own_b = broker.sub(b["mqtt"]["username"], b["mqtt"]["password"],
                       b["mqtt"]["topic"])
    assert broker.wait_subscribed(own_b).endswith(": 1")
    own_b.kill()
    own_b.wait()
    with open(broker.revoked_file) as f:
        assert f.read() == ""

    # Retire: the broker disconnects and refuses the device.
    r = srv.api("POST", "/v1/devices/%s/retire" % a["device_id"],
                {"wipe": "none"})
    assert r.status == 200, r.raw
    own.wait(10)

    def refused():
        rc, err = login(m["username"], m["password"])
        return rc != 0 and "not authorised" in err
    mdmtest.wait_for(refused, what="retired device refused")
    with open(broker.revoked_file) as f:
        assert f.read() == a["device_id"] + "\n"

    # Broker down: commands still work, by polling; mdmd keeps serving.
    c = srv.enroll(et, i=2)
    cm = c["mqtt"]
    broker.stop()
    r = srv.api("POST", "/v1/devices/%s/commands" % c["device_id"],
                {"type": "reboot"})
    assert r.status == 201, r.raw
    cmd_id = r.body["id"]
    r = srv.api("GET", "/v1/agent/commands", token=c["device_token"])
    assert r.status == 200
    assert [x["id"] for x in r.body["items"]] == [cmd_id]
    assert srv.api("GET", "/healthz", token=None).status == 200
    # An enrollment while the broker is down still gets its broker
    # credentials (derived: no broker round trip).
    et2 = srv.create_etoken()["token"]
    d = srv.enroll(et2, i=3)
    assert d["mqtt"] is not None and d["mqtt"]["username"] == d["device_id"]

    # The broker is back: mdmd reconnects; the retired device is still
    # refused (the plugin's revoked file), the one enrolled meanwhile logs
    # in, and a new command wakes the device.
    broker.start()
    mdmtest.wait_for(lambda: srv.stderr().count("connected to") >= 2,
                     timeout=20, what="mdmd reconnected")
    assert refused()
    own_d = broker.sub(d["mqtt"]["username"], d["mqtt"]["password"],
                       d["mqtt"]["topic"])
    assert broker.wait_subscribed(own_d).endswith(": 1")
    own_d.kill()
    own_d.wait()
    own = broker.sub(cm["username"], cm["password"], cm["topic"])
    assert broker.wait_subscribed(own).endswith(": 1")
    r = srv.api("POST", "/v1/devices/%s/commands" % c["device_id"],
                {"type": "lock"})
    assert r.status == 201
    assert read_payload(own, 2.0 * mdmtest.SLOW) == \
        '{"v":1,"reason":"command"}'
    own.wait(5)


def test_bulk_wakeups_are_throttled(broker, server_factory):
    srv = _connected_server(broker, server_factory, "bulk", "--mqtt-rate", "5")
    devs = srv.enroll_many(10)
    subs = []
    for d in devs:
        p = broker.sub(d["mqtt"]["username"], d["mqtt"]["password"],
                       d["mqtt"]["topic"])
        broker.wait_subscribed(p)
        subs.append(p)
    t0 = time.monotonic()
    r = srv.api("POST", "/v1/commands", {"type": "lock", "selector": {}})
    assert r.status == 201 and r.body["count"] == 10, r.raw
    for p in subs:
        assert read_payload(p, 10 * mdmtest.SLOW) is not None
        p.wait(5)
    # 10 wake-ups at 5/s with a burst of at most 5: at least ~1 s.
    assert time.monotonic() - t0 >= 0.9


def test_mqtt_flags(tmp_path, server_factory):
    pw = tmp_path / "pw"
    pw.write_text("x\n")
    os.chmod(pw, 0o644)
    r = mdmtest.run([mdmtest.MDMD, "--listen", "127.0.0.1:0", "--data-dir",
                     str(tmp_path / "d"), "--mqtt", "mqtt://127.0.0.1:1",
                     "--mqtt-admin-password-file", str(pw)], timeout=10)
    assert r.returncode != 0 and "chmod 600" in r.stderr, r.stderr
    r = mdmtest.run([mdmtest.MDMD, "--data-dir", str(tmp_path / "d"),
                     "--mqtt", "http://x:1"], timeout=10)
    assert r.returncode == 2, r.stderr
    r = mdmtest.run([mdmtest.MDMD, "--listen", "127.0.0.1:0", "--data-dir",
                     str(tmp_path / "d"), "--mqtt", "mqtt://127.0.0.1:1"],
                    timeout=10)
    assert r.returncode != 0 and "password-file" in r.stderr, r.stderr
    # A secret too short to derive device passwords from.
    os.chmod(pw, 0o600)
    r = mdmtest.run([mdmtest.MDMD, "--listen", "127.0.0.1:0", "--data-dir",
                     str(tmp_path / "d"), "--mqtt", "mqtt://127.0.0.1:1",
                     "--mqtt-admin-password-file", str(pw)], timeout=10)
    assert r.returncode != 0 and "16" in r.stderr, r.stderr
    # Without a broker at all the enroll answer says mqtt: null.
    srv = server_factory(name="plain")
    et = srv.create_etoken()["token"]
    assert srv.enroll(et)["mqtt"] is None


def test_policy_change_wakes_every_active_device(broker, server_factory):
    """CONTRACT §5: after a policy change is committed, each active device
    of the tenant gets a "policy" wake-up; a retired one does not, and an
    unchanged re-apply wakes nobody."""
    srv = _connected_server(broker, server_factory, "policy")
    devs = srv.enroll_many(3)
    r = srv.api("POST", "/v1/devices/%s/retire" % devs[2]["device_id"],
                {"wipe": "none"})
    assert r.status == 200, r.raw
    subs = []
    for d in devs[:2]:
        p = broker.sub(d["mqtt"]["username"], d["mqtt"]["password"],
                       d["mqtt"]["topic"])
        assert broker.wait_subscribed(p).endswith(": 1")
        subs.append(p)
    doc = {"apiVersion": "mdm/v1", "kind": "CompliancePolicy",
           "metadata": {"name": "baseline"},
           "spec": {"rules": [{"name": "os", "fact": "os.version",
                               "op": "version_ge", "value": "12"}]}}
    r = srv.api("PUT", "/v1/policies/CompliancePolicy/baseline", doc)
    assert r.status in (200, 201), r.raw
    for p in subs:
        assert read_payload(p, 2.0 * mdmtest.SLOW) == \
            '{"v":1,"reason":"policy"}'
        p.wait(5)
    # The same document again: nothing changed, no wake-up.
    p = broker.sub(devs[0]["mqtt"]["username"], devs[0]["mqtt"]["password"],
                   devs[0]["mqtt"]["topic"])
    broker.wait_subscribed(p)
    r = srv.api("PUT", "/v1/policies/CompliancePolicy/baseline", doc)
    assert r.status == 200, r.raw
    assert read_payload(p, 1.0) is None
    p.kill()
    p.wait()


def _socket_fd_to(pid, port):
    """The descriptor of pid's TCP connection to 127.0.0.1:port, or None."""
    inodes = set()
    with open("/proc/%d/net/tcp" % pid) as f:
        next(f)
        for line in f:
            cols = line.split()
            rport = int(cols[2].split(":")[1], 16)
            if rport == port and cols[3] == "01":     # ESTABLISHED
                inodes.add(cols[9])
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            return int(fd)
    return None


def test_reconnects_past_fd_setsize(broker, server_factory):
    """With 1,100 HTTP connections open, the broker restarts: mdmd's new
    broker connection gets a descriptor past 1024 (which select() cannot
    watch: libmosquitto's own loop gave up on it for good) and still
    reconnects and delivers a wake-up."""
    import socket
    n = 1100
    mdmtest.raise_nofile(n)
    srv = _connected_server(broker, server_factory, "fds")
    c = srv.enroll(srv.create_etoken()["token"], i=0)
    broker.stop()
    held = []
    try:
        for _ in range(n):
            held.append(socket.create_connection((srv.host, srv.port),
                                                 timeout=mdmtest.HTTP_TIMEOUT))
        mdmtest.wait_for(
            lambda: len(os.listdir("/proc/%d/fd" % srv.proc.pid)) > n,
            timeout=30 * mdmtest.SLOW, what="mdmd to accept the connections")
        broker.start()
        mdmtest.wait_for(lambda: srv.stderr().count("connected to") >= 2,
                         timeout=30, what="mdmd reconnected")
        fd = _socket_fd_to(srv.proc.pid, broker.port)
        assert fd is not None and fd >= 1024, fd
        own = broker.sub(c["mqtt"]["username"], c["mqtt"]["password"],
                         c["mqtt"]["topic"])
        assert broker.wait_subscribed(own).endswith(": 1")
        r = srv.api("POST", "/v1/devices/%s/commands" % c["device_id"],
                    {"type": "lock"})
        assert r.status == 201, r.raw
        assert read_payload(own, 2.0 * mdmtest.SLOW) == \
            '{"v":1,"reason":"command"}'
        own.wait(5)
    finally:
        for s in held:
            s.close()


def test_retirement_wipe_ends_broker_credentials(broker, server_factory):
    """Retired with a wipe: the device keeps its broker credentials while
    the wipe is pending and acknowledged, and loses them (the plugin's
    revoked file) when it reports the wipe completed."""
    srv = _connected_server(broker, server_factory, "wipe")
    d = srv.enroll(srv.create_etoken()["token"], i=0)
    m = d["mqtt"]

    def logs_in():
        p = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p",
                            str(broker.port), "-i", m["username"], "-u",
                            m["username"], "-P", m["password"], "-t",
                            m["topic"], "-C", "1", "-W", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=10)
        return "not authorised" not in p.stderr.decode()

    r = srv.api("POST", "/v1/devices/%s/retire" % d["device_id"],
                {"wipe": "full"})
    assert r.status == 202, r.raw
    r = srv.api("GET", "/v1/agent/commands", token=d["device_token"])
    assert r.status == 200, r.raw
    wipe = [c for c in r.body["items"] if c["type"] == "wipe"]
    assert len(wipe) == 1, r.body
    path = "/v1/agent/commands/%s/result" % wipe[0]["id"]
    r = srv.api("POST", path, {"status": "acknowledged"},
                token=d["device_token"])
    assert r.status == 200, r.raw
    assert logs_in()
    with open(broker.revoked_file) as f:
        assert f.read() == ""
    r = srv.api("POST", path, {"status": "completed"},
                token=d["device_token"])
    assert r.status == 200, r.raw
    mdmtest.wait_for(lambda: not logs_in(), what="retired device refused")
    with open(broker.revoked_file) as f:
        assert f.read() == d["device_id"] + "\n"
