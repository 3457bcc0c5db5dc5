"""Telemetry batches (docs/api.md, POST /v1/agent/telemetry): stored once per
(device, seq) however often a batch is resent, and the agent's dropped
counter adds up on the device."""
import json

from mdmtest import assert_checkin_answer, assert_problem, make_facts


def ev(seq, typ="fact_changed", **data):
    return {"seq": seq, "at": "2026-03-01T12:00:%02dZ" % (seq % 60),
            "type": typ, "data": data or {"fact": "encryption.root_encrypted",
                                          "old": True, "new": False}}


def post(server, dev, events, dropped=None):
    body = {"events": events}
    if dropped is not None:
        body["dropped"] = dropped
    r = server.api("POST", "/v1/agent/telemetry", body,
                   token=dev["device_token"])
    assert r.status == 200, r.raw
    assert r.headers["Content-Type"] == "application/json"
    return r.body


def rows(server, dev):
    return server.q("SELECT seq, at, type, data FROM telemetry "
                    "WHERE device_id = ? ORDER BY seq", (dev["device_id"],))


def test_batches_are_idempotent_by_seq(server):
    dev, other = server.enroll_many(2)
    batch = [ev(i) for i in range(1, 6)]
    assert post(server, dev, batch) == \
        {"accepted": 5, "duplicates": 0, "last_seq": 5}
    # The same batch again (a lost answer, resent): nothing new.
    assert post(server, dev, batch) == \
        {"accepted": 0, "duplicates": 5, "last_seq": 5}
    # Overlapping: 4 and 5 again, 6..8 new.
    assert post(server, dev, [ev(i) for i in range(4, 9)]) == \
        {"accepted": 3, "duplicates": 2, "last_seq": 8}
    # Out of order and with a gap: both stored; last_seq is the highest.
    assert post(server, dev, [ev(12), ev(10)]) == \
        {"accepted": 2, "duplicates": 0, "last_seq": 12}
    # An older one still missing arrives late.
    assert post(server, dev, [ev(9, "error", message="disk full")]) == \
        {"accepted": 1, "duplicates": 0, "last_seq": 12}
    # Within one batch a repeated seq counts once.
    assert post(server, dev, [ev(13), ev(13)]) == \
        {"accepted": 1, "duplicates": 1, "last_seq": 13}

    got = rows(server, dev)
    assert [r[0] for r in got] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13]
    r9 = got[8]
    assert r9[1:3] == ("2026-03-01T12:00:09Z", "error")
    assert json.loads(r9[3]) == {"message": "disk full"}
    assert json.loads(got[0][3]) == {"fact": "encryption.root_encrypted",
                                     "old": True, "new": False}
    # The first write wins: a resent seq with other content changes nothing.
    assert post(server, dev, [ev(1, "agent_stopped")]) == \
        {"accepted": 0, "duplicates": 1, "last_seq": 13}
    assert rows(server, dev)[0][2] == "fact_changed"

    # Sequence numbers are per device.
    assert post(server, other, [ev(1), ev(2)]) == \
        {"accepted": 2, "duplicates": 0, "last_seq": 2}
    assert [r[0] for r in rows(server, other)] == [1, 2]
    assert server.q1("SELECT count(*) FROM telemetry") == 14

    # An empty batch is fine and reports where the device stands.
    assert post(server, dev, []) == \
        {"accepted": 0, "duplicates": 0, "last_seq": 13}


def test_empty_batch_of_new_device(server):
    dev = server.enroll_many(1)[0]
    assert post(server, dev, []) == \
        {"accepted": 0, "duplicates": 0, "last_seq": 0}
    assert post(server, dev, [{"seq": 1, "type": "agent_started"}]) == \
        {"accepted": 1, "duplicates": 0, "last_seq": 1}
    # "at" and "data" are optional.
    assert rows(server, dev) == [(1, None, "agent_started", None)]


def test_dropped_counter_accumulates(server):
    dev, other = server.enroll_many(2)
    path = "/v1/devices/" + dev["device_id"]
    assert server.api("GET", path).body["telemetry_dropped"] == 0

    post(server, dev, [ev(1)], dropped=3)
    assert server.api("GET", path).body["telemetry_dropped"] == 3
    post(server, dev, [], dropped=4)
    assert server.api("GET", path).body["telemetry_dropped"] == 7
    post(server, dev, [ev(2), {"seq": 3, "type": "queue_overflow",
                               "data": {"dropped": 5}}], dropped=5)
    post(server, dev, [ev(4)], dropped=0)
    post(server, dev, [ev(5)])
    assert server.api("GET", path).body["telemetry_dropped"] == 12
    assert server.q1("SELECT telemetry_dropped FROM devices WHERE id = ?",
                     (dev["device_id"],)) == 12
    # The other device's counter is its own.
    assert server.api("GET", "/v1/devices/" +
                      other["device_id"]).body["telemetry_dropped"] == 0
    # A refused batch adds nothing.
    r = server.api("POST", "/v1/agent/telemetry",
                   {"events": [{"seq": 0, "type": "x"}], "dropped": 100},
                   token=dev["device_token"])
    assert_problem(r, 400)
    assert server.api("GET", path).body["telemetry_dropped"] == 12
    # It survives a restart.
    server.restart()
    assert server.api("GET", path).body["telemetry_dropped"] == 12
    assert [r[0] for r in rows(server, dev)] == [1, 2, 3, 4, 5]


def test_thousand_events_in_one_batch(server):
    dev = server.enroll_many(1)[0]
    batch = [{"seq": i, "type": "agent_started"} for i in range(1, 1001)]
    assert post(server, dev, batch) == \
        {"accepted": 1000, "duplicates": 0, "last_seq": 1000}
    assert post(server, dev, batch) == \
        {"accepted": 0, "duplicates": 1000, "last_seq": 1000}
    assert server.q1("SELECT count(*), min(seq), max(seq) FROM telemetry") \
        == (1000, 1, 1000)


def test_checkin_updates_facts_and_last_seen(server):
    dev = server.enroll_many(1)[0]
    path = "/v1/devices/" + dev["device_id"]
    new = make_facts(0, hostname="renamed", os={"name": "Debian GNU/Linux",
                                                "version": "13", "build": None,
                                                "kernel": "6.12.0"})
    r = server.api("POST", "/v1/agent/checkin", {"facts": new},
                   token=dev["device_token"])
    assert_checkin_answer(r)
    d = server.api("GET", path).body
    assert d["facts"] == new
    assert d["hostname"] == "renamed"
    assert d["os"] == new["os"]
    assert server.q1("SELECT hostname, os_version FROM devices") == \
        ("renamed", "13")
