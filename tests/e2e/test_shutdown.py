"""mdmd as a program (CONTRACT §1): the draining shutdown on SIGTERM/SIGINT,
`--listen HOST:0`, --version/--help, bad usage, `mdmd tenant ...` and JSON
logs."""
import json
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from mdmtest import (API_TOKEN_RE, HTTP_TIMEOUT, MDMD, UUID_RE,
                     free_port_closed, http_request, recv_until_closed, run,
                     wait_for)


def _refused(port):
    """Is nothing listening on port any more?  (A probe that lands in the
    backlog as the socket closes is reset: ask again.)"""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True
    except (ConnectionResetError, socket.timeout):
        return False


def _wait_exit(server, timeout=10):
    """Wait for mdmd to exit by itself; require exit 0 in time."""
    p = server.proc
    try:
        rc = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        server.proc = None
        raise AssertionError("mdmd did not exit within %d s" % timeout)
    server.proc = None
    server._check_exit(rc, "after SIGTERM")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_drains_request_in_flight(server, sig):
    """A request whose headers arrived before the signal is answered; new
    connections are refused at once; then exit 0 within 10 s."""
    body = json.dumps({"max_uses": 3, "labels": {"at": "shutdown"}}).encode()
    sock = socket.create_connection((server.host, server.port),
                                    timeout=HTTP_TIMEOUT)
    sock.sendall(("POST /v1/enrollment-tokens HTTP/1.1\r\nHost: x\r\n"
                  "Authorization: Bearer %s\r\n"
                  "Content-Type: application/json\r\n"
                  "Content-Length: %d\r\nExpect: 100-continue\r\n\r\n"
                  % (server.token, len(body))).encode())
    # "100 Continue" proves mdmd has the request.
    got = b""
    while b"\r\n\r\n" not in got:
        d = sock.recv(4096)
        assert d, "connection closed"
        got += d
    assert got.startswith(b"HTTP/1.1 100"), got
    sock.sendall(body[:5])  # and part of the body

    server.proc.send_signal(sig)
    wait_for(lambda: _refused(server.port), timeout=5,
             what="the listening socket to close")

    sock.sendall(body[5:])
    resp = recv_until_closed(sock)
    sock.close()
    head, _, payload = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201"), resp
    et = json.loads(payload)
    assert et["max_uses"] == 3 and et["labels"] == {"at": "shutdown"}
    _wait_exit(server)
    # What was answered is stored.
    assert server.q("SELECT id, max_uses FROM enrollment_tokens") == \
        [(et["id"], 3)]
    assert "signal %d: draining" % sig in server.stderr()


def test_sigterm_under_load(server):
    """SIGTERM while 8 devices keep sending telemetry: every answer is a
    success, the server exits 0 within 10 s, and every acknowledged event
    is stored."""
    devs = server.enroll_many(8)
    lock = threading.Lock()
    statuses, acked = [], {d["device_id"]: [] for d in devs}
    stop = threading.Event()

    def client(dev):
        seq = 0
        while not stop.is_set():
            batch = [{"seq": seq + i, "type": "agent_started"}
                     for i in range(1, 6)]
            seq += 5
            try:
                r = http_request(server.host, server.port, "POST",
                                 "/v1/agent/telemetry",
                                 body={"events": batch},
                                 token=dev["device_token"])
            except ConnectionRefusedError:
                return
            except OSError:
                continue  # accepted but closed by the shutdown
            with lock:
                statuses.append(r.status)
                if r.status == 200:
                    acked[dev["device_id"]] += [e["seq"] for e in batch]

    threads = [threading.Thread(target=client, args=(d,)) for d in devs]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(statuses) >= 40 or
                 server.proc.poll() is not None or
                 not any(t.is_alive() for t in threads),
                 timeout=60, what="some requests")
        assert server.proc.poll() is None, "mdmd died under load"
        assert len(statuses) >= 40, statuses
        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        _wait_exit(server)
        assert time.monotonic() - t0 < 10
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=HTTP_TIMEOUT)
    assert set(statuses) == {200}, sorted(set(statuses))
    for dev_id, seqs in acked.items():
        stored = {s for (s,) in server.q(
            "SELECT seq FROM telemetry WHERE device_id = ?", (dev_id,))}
        assert set(seqs) <= stored, dev_id


def test_idle_keepalive_connection_does_not_block_shutdown(server):
    import http.client
    conn = http.client.HTTPConnection(server.host, server.port,
                                      timeout=HTTP_TIMEOUT)
    conn.request("GET", "/healthz")
    r = conn.getresponse()
    assert r.status == 200
    r.read()
    # The connection stays open and idle.
    t0 = time.monotonic()
    server.stop()
    assert time.monotonic() - t0 < 10
    conn.close()


def test_listen_port_zero_prints_the_port(server_factory):
    a = server_factory(name="a")
    b = server_factory(name="b")
    assert a.port != b.port and a.port > 0 and b.port > 0
    for s in (a, b):
        assert s.stdout_lines[-1] == "listening on 127.0.0.1:%d" % s.port
        assert s.api("GET", "/healthz", token=None).status == 200
    # A named port is used as given.
    port = free_port_closed()
    c = server_factory(name="c", start=False)
    c.argv = lambda: [MDMD, "--listen", "127.0.0.1:%d" % port, "--data-dir",
                      c.data_dir]
    c.start()
    assert c.port == port
    assert c.api("GET", "/healthz", token=None).status == 200


def test_environment_sets_flags(server_factory, tmp_path):
    s = server_factory(name="env", start=False,
                       env={"MDM_LISTEN": "127.0.0.1:0",
                            "MDM_CHECKIN_INTERVAL": "42"})
    s.argv = lambda: [MDMD, "--data-dir", s.data_dir]
    s.start()
    et = s.create_etoken()
    assert s.enroll(et["token"])["checkin_interval_s"] == 42


def test_config_file_and_precedence(server_factory, tmp_path):
    """--config FILE gives settings; the environment beats the file and
    flags beat both."""
    conf = tmp_path / "mdmd.conf"
    conf.write_text("# test\nlisten = 127.0.0.1:0\n"
                    "checkin-interval = 77\n  log-format = json\n")
    s = server_factory(name="conf", start=False)
    s.argv = lambda: [MDMD, "--config", str(conf), "--data-dir", s.data_dir]
    s.start()
    et = s.create_etoken(max_uses=3)
    assert s.enroll(et["token"], i=1)["checkin_interval_s"] == 77
    s.stop()
    for line in s.stderr().splitlines():
        json.loads(line)
    s.env["MDM_CHECKIN_INTERVAL"] = "66"
    s.start()
    assert s.enroll(et["token"], i=2)["checkin_interval_s"] == 66
    s.stop()
    s.argv = lambda: [MDMD, "--config", str(conf), "--data-dir", s.data_dir,
                      "--checkin-interval", "55"]
    s.start()
    assert s.enroll(et["token"], i=3)["checkin_interval_s"] == 55
    bad = tmp_path / "bad.conf"
    bad.write_text("listen 127.0.0.1:0\n")
    p = run([MDMD, "--config", str(bad), "--data-dir", str(tmp_path / "x")])
    assert p.returncode == 1
    assert "line 1" in p.stderr
    p = run([MDMD, "--config", str(tmp_path / "missing.conf"),
             "--data-dir", str(tmp_path / "x")])
    assert p.returncode == 1
    assert len(p.stderr.splitlines()) == 1


def test_version_and_help():
    p = run([MDMD, "--version"])
    assert p.returncode == 0
    assert re.match(r"^mdmd \d+\.\d+\.\d+\n$", p.stdout), p.stdout
    assert p.stderr == ""
    for flag in ("--help", "-h"):
        p = run([MDMD, flag])
        assert p.returncode == 0
        assert p.stdout.startswith("usage: mdmd")
        for word in ("--listen", "--data-dir", "--log-format", "tenant create"):
            assert word in p.stdout
        assert p.stderr == ""


@pytest.mark.parametrize("argv", [
    ["--bogus", "1"],
    ["--bogus"],
    ["--checkin-interval", "1"],
    ["--checkin-interval", "abc"],
    ["--log-format", "xml"],
    ["stray-argument"],
    ["tenant"],
    ["tenant", "frobnicate"],
])
def test_bad_usage_exits_2(argv, tmp_path):
    p = run([MDMD] + argv + ["--data-dir", str(tmp_path / "d")])
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stdout == ""
    assert p.stderr.startswith("mdmd: ")
    assert not (tmp_path / "d").exists()  # nothing was started


def test_unknown_flag_one_line_on_stderr(tmp_path):
    p = run([MDMD, "--bogus", "1", "--data-dir", str(tmp_path)])
    assert p.returncode == 2
    assert "--bogus" in p.stderr
    assert len(p.stderr.splitlines()) == 1, p.stderr



def _tenant_rows(server):
    p = server.mdmd("tenant", "list")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "REGION", "DEVICES", "CREATED"]
    rows = {}
    for l in lines[1:]:
        tid, name, region, devices, created = l.split()
        assert UUID_RE.match(tid)
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", created)
        rows[name] = (tid, region, int(devices))
    return rows


def test_tenant_create_and_list(server):
    rows = _tenant_rows(server)
    assert rows == {"default": (server.tenant_id(), "-", 0)}

    acme_id, acme_tok = server.create_tenant("acme", region="eu-west")
    assert API_TOKEN_RE.match(acme_tok)
    beta_id, beta_tok = server.create_tenant("beta")
    server.enroll_many(2)
    # The running server knows the new tenants at once.
    assert server.api("GET", "/v1/devices", token=acme_tok).status == 200
    et = server.create_etoken(token=beta_tok)
    server.enroll(et["token"])

    rows = _tenant_rows(server)
    assert rows == {"default": (server.tenant_id(), "-", 2),
                    "acme": (acme_id, "eu-west", 0),
                    "beta": (beta_id, "-", 1)}
    assert server.q("SELECT name, region FROM tenants ORDER BY name") == \
        [("acme", "eu-west"), ("beta", ""), ("default", "")]
    # Each tenant has its own key and owner token.
    assert server.q1("SELECT count(DISTINCT tenant_id) FROM tenant_keys") == 3
    assert server.q1("SELECT count(*) FROM api_tokens WHERE role = 'owner'") \
        == 3

    # Refused: a duplicate and bad names; nothing is written.
    before = server.snapshot()
    for name in ("acme", "Acme", "bad_name", "-lead", "x" * 64):
        p = server.mdmd("tenant", "create", name)
        assert p.returncode == 1, (name, p.returncode, p.stderr)
        assert len(p.stderr.splitlines()) == 1, p.stderr
        assert p.stdout == ""
    assert server.snapshot() == before


def test_log_format_json(server_factory):
    s = server_factory(name="json", args=["--log-format", "json"])
    et = s.create_etoken(max_uses=2)
    s.enroll(et["token"])
    s.api("GET", "/v1/nope")
    s.api("GET", "/v1/devices", token="mdm_at_bad")
    s.stop()
    lines = s.stderr().splitlines()
    assert len(lines) >= 3  # start, enrollment, draining, stopped...
    for line in lines:
        o = json.loads(line)
        assert isinstance(o, dict)
        assert o["level"] in ("debug", "info", "warn", "error")
        assert isinstance(o["msg"], str) and o["msg"]
        assert o["prog"] == "mdmd"
    msgs = [json.loads(l)["msg"] for l in lines]
    assert any("listening on 127.0.0.1:%d" % s.port in m for m in msgs)
    assert any("enrolled" in m for m in msgs)


def test_log_format_json_with_hostile_paths(server_factory):
    """With debug logs on, request paths reach the log: a long path full of
    control characters, or bytes that are not UTF-8, must still give one
    complete JSON object per line."""
    s = server_factory(name="jsond", args=["--log-format", "json"],
                       env={"MDM_DEBUG": "1"})
    assert s.api("GET", "/" + "%01" * 1500).status == 404
    assert s.api("GET", "/x%ff%fe").status == 404
    assert s.api("GET", "/healthz").status == 200
    s.stop()
    for line in s.stderr().splitlines():
        o = json.loads(line)
        assert isinstance(o["msg"], str) and o["msg"], line

