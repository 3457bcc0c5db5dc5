"""The event stream for a SIEM (docs/events.md): compliance changes, command
transitions and audit records as JSON events, to a rotated JSON-lines
file, to a real rsyslogd (RFC 5424 over TCP and TLS), and to a Splunk HEC
receiver (batches, retries, the on-disk spool across an outage and a
restart of mdmd), and the brief's Splunk search over what HEC received.

HEC delivery is at least once: after an outage or a restart a batch may
come twice, and every event carries a unique "id" to tell.  The tests
check that every event arrives (exactly the set the file sink wrote) and
that nothing else does.
"""
import json
import os
import re
import signal
import subprocess
import time

import pytest

import eventstest
import mdmtest
from eventstest import HecReceiver, Rsyslog, read_events, wait_events
from mdmtest import make_facts, wait_for

UPN_RE = re.compile(r"^[^@\s]+@[^@\s]+$")


def policy(name="baseline", rules=None):
    return {"apiVersion": "mdm/v1", "kind": "CompliancePolicy",
            "metadata": {"name": name},
            "spec": {"rules": rules if rules is not None else [
                {"name": "os", "fact": "os.version", "op": "version_ge",
                 "value": "12"},
                {"name": "disk", "fact": "encryption.root_encrypted",
                 "op": "is_true"},
                {"name": "fw", "fact": "security.firewall_enabled",
                 "op": "is_true"},
                {"name": "root", "fact": "integrity.rooted",
                 "op": "is_false"}]}}


def put_policy(server, doc):
    r = server.api("PUT", "/v1/policies/CompliancePolicy/%s"
                   % doc["metadata"]["name"], doc)
    assert r.status in (200, 201), r.raw


def set_upn(server, dev_id, upn):
    r = server.api("PATCH", "/v1/devices/" + dev_id,
                   {"user_principal_name": upn})
    assert r.status == 200, r.raw


def checkin(server, d, facts):
    r = server.api("POST", "/v1/agent/checkin", {"facts": facts},
                   token=d["device_token"])
    assert r.status == 200, r.raw
    return r.body


def of_type(evs, type_, device=None):
    return [e for e in evs if e["type"] == type_ and
            (device is None or e["deviceId"] == device)]


def check_common(e, tenant="default"):
    """The fields every event has."""
    assert mdmtest.UUID_RE.match(e["id"]), e
    mdmtest.parse_time(e["time"])
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", e["time"])
    assert e["tenant"] == tenant
    assert mdmtest.UUID_RE.match(e["tenantId"])
    for k in ("deviceId", "userPrincipalName"):
        assert k in e, e


# ---- the file sink ---------------------------------------------------------------

def test_file_sink_compliance_commands_audit(server_factory, tmp_path):
    path = str(tmp_path / "events.jsonl")
    s = server_factory(args=["--events-file", path])
    put_policy(s, policy())
    et = s.create_etoken(max_uses=2)
    d = s.enroll(et["token"], make_facts(1))
    other = s.enroll(et["token"], make_facts(2))
    dev = d["device_id"]
    set_upn(s, dev, "alice@corp.example")
    # Enrolled compliant: its first verdict is one event without setting.
    evs = wait_events(path, lambda e: of_type(e, "audit.device.update"))
    first = of_type(evs, "compliance.changed", dev)
    assert len(first) == 1
    assert first[0]["complianceState"] == "compliant"
    assert first[0]["setting"] is None
    assert first[0]["previousComplianceState"] is None
    assert first[0]["userPrincipalName"] is None  # set after enrollment
    n_before = len(evs)

    # Encryption and the firewall off: one event per failing setting.
    bad = make_facts(1)
    bad["encryption"]["root_encrypted"] = False
    bad["security"]["firewall_enabled"] = False
    assert checkin(s, d, bad)["compliance"] == "noncompliant"
    evs = wait_events(path, lambda e: len(of_type(e[n_before:],
                                                  "compliance.changed")) >= 2)
    changed = of_type(evs[n_before:], "compliance.changed")
    assert sorted(e["setting"] for e in changed) == ["DeviceEncryption",
                                                     "Firewall"]
    for e in changed:
        check_common(e)
        assert e["deviceId"] == dev
        assert e["userPrincipalName"] == "alice@corp.example"
        assert e["complianceState"] == "noncompliant"
        assert e["deviceComplianceState"] == "noncompliant"
        assert e["previousComplianceState"] == "compliant"
        assert e["policy"] == "baseline"
        assert e["actual"] is False and e["expected"] is True
    enc = [e for e in changed if e["setting"] == "DeviceEncryption"][0]
    assert enc["rule"] == "disk"
    assert enc["fact"] == "encryption.root_encrypted"
    assert enc["reason"] == "encryption.root_encrypted is false, expected true"
    # The same facts again change nothing: no event.
    n_before = len(read_events(path))
    checkin(s, d, dict(bad, hostname="host-1b"))
    assert checkin(s, d, bad)["compliance"] == "noncompliant"

    # A command's whole life: queued, sent, acknowledged, completed; one
    # canceled, one expired.
    r = s.api("POST", "/v1/devices/%s/commands" % dev, {"type": "lock"})
    assert r.status == 201, r.raw
    lock = r.body["id"]
    r = s.api("POST", "/v1/devices/%s/commands" % other["device_id"],
              {"type": "reboot"})
    cancel = r.body["id"]
    r = s.api("POST", "/v1/commands/%s/cancel" % cancel)
    assert r.status == 200, r.raw
    r = s.api("GET", "/v1/agent/commands", token=d["device_token"])
    assert [c["id"] for c in r.body["items"]] == [lock]
    for st in ("acknowledged", "completed"):
        r = s.api("POST", "/v1/agent/commands/%s/result" % lock,
                  {"status": st}, token=d["device_token"])
        assert r.status == 200, r.raw
    r = s.api("POST", "/v1/devices/%s/commands" % dev,
              {"type": "reboot", "expires_in_s": 600})
    late = r.body["id"]
    s.execute("UPDATE commands SET expires_at = ? WHERE id = ?",
              (int(time.time()) - 5, late))
    assert s.api("GET", "/v1/commands/" + late).body["status"] == "expired"

    evs = wait_events(path, lambda e: of_type(e, "command.expired"))
    cmd = [e for e in evs if e["type"].startswith("command.")]
    assert [(e["type"], e["commandId"]) for e in cmd] == [
        ("command.queued", lock), ("command.queued", cancel),
        ("command.canceled", cancel), ("command.sent", lock),
        ("command.acknowledged", lock), ("command.completed", lock),
        ("command.queued", late), ("command.expired", late)]
    for e in cmd:
        check_common(e)
        assert e["status"] == e["type"].split(".")[1]
        assert e["commandType"] == ("lock" if e["commandId"] == lock
                                    else "reboot")
    by_id = {e["commandId"]: e for e in cmd}
    assert by_id[lock]["deviceId"] == dev
    assert by_id[lock]["userPrincipalName"] == "alice@corp.example"
    assert by_id[cancel]["deviceId"] == other["device_id"]
    assert by_id[cancel]["userPrincipalName"] is None
    sent = of_type(cmd, "command.sent")[0]
    assert sent["actor"] == "device:" + dev
    assert of_type(cmd, "command.expired")[0]["actor"] == "system"

    # Audit records: every one of the database's, exactly once, in order.
    rows = s.q("SELECT seq, action, actor, target, hash FROM audit "
               "ORDER BY seq")
    audited = [e for e in evs if "auditSeq" in e]
    assert [(e["auditSeq"], e["action"], e["actor"], e["target"],
             e["auditHash"]) for e in audited] == [tuple(r) for r in rows]
    pol = of_type(evs, "audit.policy.create")
    assert len(pol) == 1 and pol[0]["target"] == "CompliancePolicy/baseline"
    assert pol[0]["actor"].startswith("token:")
    assert pol[0]["deviceId"] is None
    upd = of_type(evs, "audit.device.update")[0]
    assert upd["deviceId"] == dev
    assert upd["userPrincipalName"] == "alice@corp.example"
    assert upd["detail"] == {"user_principal_name": "alice@corp.example"}
    assert len({e["id"] for e in evs}) == len(evs)


def test_file_rotation_keeps_n(server_factory, tmp_path):
    path = str(tmp_path / "ev" / "events.jsonl")
    os.makedirs(os.path.dirname(path))
    s = server_factory(args=["--events-file", path,
                             "--events-file-max-size", "4k",
                             "--events-file-keep", "2"])
    # Enrollment tokens: an audit record each, ~600 bytes as an event.
    for i in range(40):
        s.create_etoken(max_uses=1, labels={"i": str(i)})
    files = [path + ".2", path + ".1", path]
    n_audit = s.q1("SELECT count(*) FROM audit")

    def last_seq():
        evs = read_events(path)
        return evs and evs[-1]["auditSeq"] == n_audit
    wait_for(last_seq, what="the last event in the file")
    assert sorted(os.listdir(os.path.dirname(path))) == \
        ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]
    seqs = []
    for f in files:
        size = os.path.getsize(f)
        assert 0 < size <= 4096, (f, size)
        evs = read_events(f)
        assert evs
        seqs += [e["auditSeq"] for e in evs]
    # The newest events, contiguous, oldest first; what is older was in
    # rotated files beyond the two kept.
    assert seqs == list(range(seqs[0], n_audit + 1))
    assert seqs[0] > 1
    # Rotated before a line would cross 4 KiB: each file is full but for
    # less than one more line.
    for f in files[:2]:
        longest = max(len(json.dumps(e)) for e in read_events(f))
        assert os.path.getsize(f) > 4096 - 2 * longest


# ---- syslog ------------------------------------------------------------------------

def syslog_all(rs, path, pid):
    """Every message rsyslogd has received so far matches the file sink's
    event of the same id, framed as RFC 5424 says; returns their ids.  The
    two sinks run apart, so more events than a test waited for may have
    reached one of them: the file is read once it has every received id."""
    msgs = rs.messages()
    got = {json.loads(m["msg"])["id"] for m in msgs}
    evs = wait_events(path, lambda e: got <= {x["id"] for x in e})
    seen = syslog_matches(msgs, evs, pid)
    assert seen == got
    return seen


def syslog_matches(msgs, file_events, pid):
    """The messages rsyslogd received are the file sink's events, framed as
    RFC 5424 says."""
    by_id = {e["id"]: e for e in file_events}
    seen = set()
    for m in msgs:
        ev = json.loads(m["msg"])
        assert ev == by_id[ev["id"]], "event differs from the file's"
        seen.add(ev["id"])
        assert m["facility"] == 16  # local0
        sev = {"compliance.changed": {"noncompliant": 4, "unknown": 5,
                                      "compliant": 6}.get(
                                          ev.get("complianceState"))}
        if ev["type"].startswith("audit."):
            assert m["severity"] == 5
        elif ev["type"] == "compliance.changed":
            assert m["severity"] == sev["compliance.changed"]
        assert m["app"] == "mdmd"
        assert m["procid"] == str(pid)
        assert m["msgid"] == ev["type"][:32]
        assert m["timestamp"] == ev["time"]
        assert m["hostname"] not in ("", "-")
        sd = m["sd"]["mdm@32473"]
        assert sd["type"] == ev["type"]
        assert sd["tenant"] == ev["tenant"]
        assert sd.get("deviceId") == ev["deviceId"]
        if ev["type"] == "compliance.changed":
            assert sd["complianceState"] == ev["complianceState"]
            assert sd.get("setting") == ev["setting"]
    return seen


def test_syslog_to_rsyslog(server_factory, tmp_path):
    rs = Rsyslog(tmp_path / "rsyslog").start()
    path = str(tmp_path / "events.jsonl")
    try:
        s = server_factory(args=["--events-file", path, "--events-syslog",
                                 "tcp://127.0.0.1:%d" % rs.port])
        put_policy(s, policy())
        d = s.enroll_many(1)[0]
        set_upn(s, d["device_id"], "bob@corp.example")
        bad = make_facts(0)
        bad["encryption"]["root_encrypted"] = False
        # A value that needs escaping in structured data and in JSON.
        bad["os"]["version"] = '11 "beta"]\\'
        checkin(s, d, bad)
        evs = wait_events(path, lambda e: len(of_type(
            e, "compliance.changed", d["device_id"])) >= 3)
        rs.wait_ids([e["id"] for e in evs])
        assert {e["id"] for e in evs} <= syslog_all(rs, path, s.proc.pid)
        enc = [m for m in rs.messages()
               if m["sd"]["mdm@32473"].get("setting") == "DeviceEncryption"]
        assert len(enc) == 1 and enc[0]["severity"] == 4
        os_ev = [json.loads(m["msg"]) for m in rs.messages()
                 if m["sd"]["mdm@32473"].get("setting") == "OsVersion"]
        assert os_ev[0]["actual"] == '11 "beta"]\\'

        # The receiver goes away and comes back on the same port: what
        # was sent meanwhile arrives once it is back.
        rs.stop()
        r = s.api("POST", "/v1/devices/%s/commands" % d["device_id"],
                  {"type": "lock"})
        assert r.status == 201
        evs = wait_events(path, lambda e: of_type(e, "command.queued"))
        wait_for(lambda: "events: syslog 127.0.0.1:%d" % rs.port
                 in s.stderr(), what="mdmd to notice the receiver is gone")
        rs.start()
        rs.wait_ids([e["id"] for e in evs], timeout=60)
        assert {e["id"] for e in evs} <= syslog_all(rs, path, s.proc.pid)
    finally:
        rs.stop()


def test_syslog_tls(server_factory, tmp_path):
    certs = eventstest.make_certs(tmp_path / "certs")
    other = eventstest.make_certs(tmp_path / "other")
    rs = Rsyslog(tmp_path / "rsyslog", tls=certs).start()
    path = str(tmp_path / "events.jsonl")
    try:
        s = server_factory(args=["--events-file", path, "--events-syslog",
                                 "tls://localhost:%d" % rs.port,
                                 "--events-syslog-ca-file", certs["ca"]])
        s.enroll_many(2)
        evs = wait_events(path, lambda e: len(e) >= 5)
        rs.wait_ids([e["id"] for e in evs])
        assert {e["id"] for e in evs} <= syslog_all(rs, path, s.proc.pid)
        # A receiver whose certificate another CA signed gets nothing.
        # (Counted by the sender's PROCID: the first mdmd may still be
        # sending events of its own.)
        path2 = str(tmp_path / "events2.jsonl")
        s2 = server_factory(args=["--events-file", path2, "--events-syslog",
                                  "tls://localhost:%d" % rs.port,
                                  "--events-syslog-ca-file", other["ca"]])
        s2.enroll_many(1)
        wait_for(lambda: "certificate not trusted" in s2.stderr(),
                 what="the TLS verification failure in the log")
        from_s2 = " mdmd %d " % s2.proc.pid
        assert [ln for ln in rs.lines() if from_s2 in ln] == []
    finally:
        rs.stop()


# ---- Splunk HEC ------------------------------------------------------------------

def hec_args(tmp_path, recv, extra=()):
    tok = str(tmp_path / "hec.token")
    if not os.path.exists(tok):
        eventstest.write_token(tok)
    return ["--events-file", str(tmp_path / "events.jsonl"),
            "--events-hec-url", recv.url, "--events-hec-token-file", tok,
            "--events-hec-batch", "5", "--events-hec-batch-ms", "200"] + \
        list(extra)


def check_envelopes(recv, file_events, token):
    by_id = {e["id"]: e for e in file_events}
    for r in recv.requests:
        assert r["path"] == "/services/collector/event"
        assert r["headers"]["Authorization"] == "Splunk " + token
        assert r["headers"]["Content-Type"] == "application/json"
        assert 1 <= len(r["envelopes"]) <= 5
        for env in r["envelopes"]:
            assert set(env) == {"time", "host", "source", "sourcetype",
                                "index", "event"}
            ev = env["event"]
            assert ev == by_id[ev["id"]]
            assert env["source"] == "mdmd"
            assert env["index"] == "mdm_logs"
            assert env["host"]
            assert abs(env["time"] - mdmtest.parse_time(ev["time"])) < 0.0005
            assert env["sourcetype"] == {
                "compliance": "intune_compliance", "command": "mdm:command",
                "audit": "mdm:audit"}[ev["type"].split(".")[0]]


def test_hec_batches(server_factory, tmp_path):
    recv = HecReceiver().start()
    try:
        s = server_factory(args=hec_args(tmp_path, recv))
        token = open(tmp_path / "hec.token").read().strip()
        put_policy(s, policy())
        devs = s.enroll_many(4)
        s.api("POST", "/v1/commands", {"type": "lock", "selector": {}})
        path = str(tmp_path / "events.jsonl")
        evs = wait_events(path, lambda e: len(of_type(e, "command.queued"))
                          == 4)
        recv.wait_ids([e["id"] for e in evs])
        check_envelopes(recv, evs, token)
        # 4 bulk commands and 4 compliance events came in batches of 5.
        assert max(len(r["envelopes"]) for r in recv.requests) == 5
        assert len(devs) == 4
        # The token never reaches the log.
        assert token not in s.stderr()
    finally:
        recv.stop()


def test_hec_outage_and_restart_lose_nothing(server_factory, tmp_path):
    recv = HecReceiver().start()
    port = recv.port
    path = str(tmp_path / "events.jsonl")
    try:
        s = server_factory(args=hec_args(tmp_path, recv))
        token = open(tmp_path / "hec.token").read().strip()
        devs = s.enroll_many(2)
        evs = wait_events(path, lambda e: len(e) >= 5)
        recv.wait_ids([e["id"] for e in evs])
        # The receiver goes down; events keep coming...
        recv.stop()
        for i in range(12):
            s.create_etoken(max_uses=1, labels={"outage": str(i)})
        wait_for(lambda: "events: HEC http://127.0.0.1:%d" % port
                 in s.stderr(), what="mdmd to see the receiver is down")
        # ... mdmd restarts (the spool survives) ...
        s.restart()
        r = s.api("POST", "/v1/devices/%s/commands" % devs[0]["device_id"],
                  {"type": "lock"})
        assert r.status == 201
        evs = wait_events(path, lambda e: of_type(e, "command.queued"))
        assert len(evs) >= 19
        spool = os.path.join(s.data_dir, "events-spool", "hec")
        assert any(f.startswith("seg-") for f in os.listdir(spool))
        # ... and the receiver comes back on the same port: every event
        # arrives, at least once, and nothing else does.
        first = recv
        check_envelopes(first, evs, token)
        before = {e["id"] for e in first.events()}
        recv = HecReceiver(port=port).start()
        recv.wait_ids({e["id"] for e in evs} - before, timeout=60)
        got = before | {e["id"] for e in recv.events()}
        assert got == {e["id"] for e in evs}
        check_envelopes(recv, evs, token)
        # Sent: the spool keeps its cursor and the segment being written,
        # every line of which was sent.
        wait_for(lambda: len([f for f in os.listdir(spool)
                              if f.startswith("seg-")]) == 1,
                 what="the sent segments to go")
        seg = [f for f in os.listdir(spool) if f.startswith("seg-")][0]
        with open(os.path.join(spool, "cursor")) as f:
            cur = f.read().split()
        assert int(cur[0]) == int(seg[4:24])
        assert int(cur[1]) == os.path.getsize(os.path.join(spool, seg))
        assert token not in s.stderr()
    finally:
        recv.stop()


def test_hec_spool_after_kill9(server_factory, tmp_path):
    """mdmd killed with -9 while the receiver is away, a line torn at the
    end of the spool (as a crash mid-write would leave it): the next start
    sends every whole event and skips the torn one."""
    recv = HecReceiver().start()
    port = recv.port
    recv.stop()
    path = str(tmp_path / "events.jsonl")
    s = server_factory(args=hec_args(tmp_path, recv))
    s.enroll_many(3)
    evs = wait_events(path, lambda e: of_type(e, "audit.device.enroll")
                      and len(of_type(e, "audit.device.enroll")) == 3)
    spool = os.path.join(s.data_dir, "events-spool", "hec")

    def spooled():
        n = 0
        for f in os.listdir(spool):
            if f.startswith("seg-"):
                with open(os.path.join(spool, f), "rb") as fh:
                    n += fh.read().count(b"\n")
        return n == len(evs)
    wait_for(spooled, what="every event in the spool")
    s.kill9()
    seg = sorted(f for f in os.listdir(spool) if f.startswith("seg-"))[-1]
    with open(os.path.join(spool, seg), "ab") as fh:
        fh.write(b'{"time":1795887970.4,"host":"h","event":{"id":"torn')
    recv = HecReceiver(port=port).start()
    try:
        s.start()
        recv.wait_ids([e["id"] for e in evs])
        wait_for(lambda: "ends in a torn line" in s.stderr(),
                 what="the torn line reported")
        assert {e["id"] for e in recv.events()} == {e["id"] for e in evs}
    finally:
        recv.stop()


def test_hec_spool_cap_drops_oldest(server_factory, tmp_path):
    recv = HecReceiver().start()
    port = recv.port
    recv.stop()  # down from the start
    path = str(tmp_path / "events.jsonl")
    s = server_factory(args=hec_args(tmp_path, recv,
                                     ["--events-hec-spool-max", "64k"]))
    for i in range(150):
        s.create_etoken(max_uses=1, labels=dict(
            {k: k * 60 for k in "abcd"}, i=str(i)))
    n_audit = s.q1("SELECT count(*) FROM audit")
    evs = wait_events(path, lambda e: len(e) == n_audit)
    pat = re.compile(r"HEC spool reached its cap .*?; (\d+) lost so far")
    wait_for(lambda: pat.search(s.stderr()), what="the spool cap error")
    spool = os.path.join(s.data_dir, "events-spool", "hec")

    def spool_bytes():
        return sum(os.path.getsize(os.path.join(spool, f))
                   for f in os.listdir(spool) if f.startswith("seg-"))
    # Bounded: never much over the cap (at most one event more).
    assert spool_bytes() <= 64 * 1024 + 4096
    recv = HecReceiver(port=port).start()
    try:
        def all_accounted():
            lost = int(pat.findall(s.stderr())[-1])
            return len({e["id"] for e in recv.events()}) + lost == len(evs)
        wait_for(all_accounted, timeout=60,
                 what="every event received or counted lost")
        lost = int(pat.findall(s.stderr())[-1])
        assert 0 < lost < len(evs)
        # What arrived is the newest events, the oldest were dropped.
        got = {e["id"] for e in recv.events()}
        assert [e["id"] in got for e in evs] == \
            [False] * lost + [True] * (len(evs) - lost)
    finally:
        recv.stop()


def test_hec_stalled_receiver_shutdown(server_factory, tmp_path):
    """A receiver that accepts and never answers: mdmd still exits 0 within
    10 s of SIGTERM (Server.stop checks), and the events wait in the spool
    for the next start."""
    recv = HecReceiver().start()
    recv.mode = "stall"
    port = recv.port
    path = str(tmp_path / "events.jsonl")
    try:
        s = server_factory(args=hec_args(tmp_path, recv))
        s.enroll_many(3)
        evs = wait_events(path, lambda e: len(e) >= 7)
        wait_for(lambda: recv.n_stalled >= 1, what="a stalled request")
        t0 = time.monotonic()
        s.stop()
        assert time.monotonic() - t0 < 10
        assert recv.requests == []
        recv.stop()
        recv = HecReceiver(port=port).start()
        s.start()
        recv.wait_ids([e["id"] for e in evs], timeout=30)
    finally:
        recv.stop()


def test_splunk_search_semantics(server_factory, tmp_path):
    """index=mdm_logs sourcetype="intune_compliance"
    | where complianceState="noncompliant" AND setting="DeviceEncryption"
    | stats count by deviceId, userPrincipalName, _time
    over what the HEC receiver got: exactly the devices made unencrypted."""
    recv = HecReceiver().start()
    try:
        s = server_factory(args=hec_args(tmp_path, recv))
        put_policy(s, policy(rules=[
            {"name": "os", "fact": "os.version", "op": "version_ge",
             "value": "12"}]))
        devs = s.enroll_many(7)
        want = {}
        for i, d in enumerate(devs):
            upn = "user%d@corp.example" % i
            set_upn(s, d["device_id"], upn)
            f = make_facts(i)
            if i in (1, 3, 4):           # encryption off
                f["encryption"]["root_encrypted"] = False
                want[d["device_id"]] = upn
            if i == 4:                   # and an old OS too
                f["os"]["version"] = "10"
            if i == 5:                   # encryption not known: unknown
                f["encryption"]["root_encrypted"] = None
            if i == 6:                   # only an old OS
                f["os"]["version"] = "11"
            checkin(s, d, f)
        # The encryption rule comes with a policy change: the tenant's
        # re-evaluation emits the events.
        put_policy(s, policy())
        path = str(tmp_path / "events.jsonl")
        evs = wait_events(path, lambda e: len(
            [x for x in e if x["type"] == "compliance.changed" and
             x["setting"] == "DeviceEncryption"]) >= 4)
        recv.wait_ids([e["id"] for e in evs])

        rows = {}
        for env in recv.envelopes():
            ev = env["event"]
            if env["index"] != "mdm_logs" or \
                    env["sourcetype"] != "intune_compliance":
                continue
            if ev.get("complianceState") == "noncompliant" and \
                    ev.get("setting") == "DeviceEncryption":
                key = (ev["deviceId"], ev["userPrincipalName"], env["time"])
                rows[key] = rows.get(key, 0) + 1
        assert {(k[0], k[1]) for k in rows} == set(want.items())
        # One event per device and change (duplicates of at-least-once
        # delivery aside, which carry the same id).
        ids = {e["event"]["id"] for e in recv.envelopes()
               if e["event"].get("setting") == "DeviceEncryption" and
               e["event"].get("complianceState") == "noncompliant"}
        assert len(ids) == 3
        # The unknown encryption is reported as unknown, not noncompliant.
        unk = [e for e in evs if e["type"] == "compliance.changed" and
               e["deviceId"] == devs[5]["device_id"] and
               e["setting"] == "DeviceEncryption"]
        assert unk and all(e["complianceState"] == "unknown" for e in unk)
        for k in rows:
            assert UPN_RE.match(k[1])
    finally:
        recv.stop()


# ---- bad settings ------------------------------------------------------------------

def start_fail(tmp_path, args):
    data = str(tmp_path / "bad-data")
    p = mdmtest.run([mdmtest.MDMD, "--listen", "127.0.0.1:0", "--data-dir",
                     data] + args, timeout=30)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("mdmd: "), p.stderr
    return p.returncode, lines[0]


def test_bad_settings(tmp_path):
    tok = str(tmp_path / "tok")
    eventstest.write_token(tok, "secret-token-value", mode=0o644)
    rc, line = start_fail(tmp_path, ["--events-hec-url", "http://127.0.0.1:9",
                                     "--events-hec-token-file", tok])
    assert rc == 1 and "chmod 600" in line and tok in line
    assert "secret-token-value" not in line
    rc, line = start_fail(tmp_path, ["--events-hec-url", "ftp://splunk:8088",
                                     "--events-hec-token-file", tok])
    assert rc == 2 and "--events-hec-url" in line
    rc, line = start_fail(tmp_path, ["--events-hec-url", "http://h:8088"])
    assert rc == 1 and "--events-hec-token-file" in line
    os.chmod(tok, 0o600)
    rc, line = start_fail(tmp_path, ["--events-hec-url", "http://h:8088",
                                     "--events-hec-token-file",
                                     tok + ".missing"])
    assert rc == 1 and "cannot read" in line
    rc, line = start_fail(tmp_path, ["--events-syslog", "udp://h:514"])
    assert rc == 2 and "--events-syslog" in line
    rc, line = start_fail(tmp_path, ["--events-syslog-facility", "local9"])
    assert rc == 2
    rc, line = start_fail(tmp_path, ["--events-file",
                                     str(tmp_path / "no" / "dir" / "e")])
    assert rc == 1 and "cannot open event file" in line
    rc, line = start_fail(tmp_path, ["--events-file-max-size", "10"])
    assert rc == 2
    rc, line = start_fail(tmp_path, ["--events-syslog", "tls://h:6514",
                                     "--events-syslog-ca-file",
                                     str(tmp_path / "none.pem")])
    assert rc == 1 and "CA" in line
    # The environment and the config file say the same.
    p = mdmtest.run([mdmtest.MDMD, "--listen", "127.0.0.1:0", "--data-dir",
                     str(tmp_path / "d2")],
                    env=mdmtest.clean_env({"MDM_EVENTS_HEC_URL": "gopher://x"}))
    assert p.returncode == 2 and "MDM_EVENTS_HEC_URL" in p.stderr
    conf = tmp_path / "mdmd.conf"
    conf.write_text("events-hec-spool-max = 1k\n")
    p = mdmtest.run([mdmtest.MDMD, "--config", str(conf), "--data-dir",
                     str(tmp_path / "d3")])
    assert p.returncode == 1 and "events-hec-spool-max" in p.stderr


def test_settings_from_config_file(server_factory, tmp_path):
    path = str(tmp_path / "from-conf.jsonl")
    conf = tmp_path / "mdmd.conf"
    conf.write_text("# events\nevents-file = %s\nevents-file-keep = 1\n"
                    % path)
    s = server_factory(args=["--config", str(conf)])
    s.enroll_many(1)
    evs = wait_events(path, lambda e: of_type(e, "audit.device.enroll"))
    assert evs[0]["type"] == "audit.tenant.create"
