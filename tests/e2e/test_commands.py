"""Remote commands through the HTTP API (docs/api.md "Commands"): the full
lifecycle acting as the device with its device token, cancel rules, expiry,
idempotent results, another device's command, roles, bulk selectors with
exact counts, retirement with and without a wipe, the check-in's
pending_commands on both paths, and the audit records of every transition.
"""
import time

from mdmtest import RFC3339_RE, UUID_RE, assert_problem, make_facts, \
    parse_time, random_uuid

COMMAND_KEYS = {"id", "device_id", "type", "params", "status", "detail",
                "issued_at", "expires_at", "created_by", "sent_at",
                "acknowledged_at", "completed_at", "canceled_at"}


# ---- helpers --------------------------------------------------------------

def create(server, dev_id, type_="lock", token=None, expect=201, **body):
    body["type"] = type_
    kw = {} if token is None else {"token": token}
    r = server.api("POST", "/v1/devices/%s/commands" % dev_id, body, **kw)
    assert r.status == expect, r.raw
    return r.body


def fetch(server, d, expect=200):
    r = server.api("GET", "/v1/agent/commands", token=d["device_token"])
    assert r.status == expect, r.raw
    return r.body["items"] if expect == 200 else r


def result(server, d, cmd_id, status, detail=None, expect=200):
    r = server.api("POST", "/v1/agent/commands/%s/result" % cmd_id,
                   {"status": status, "detail": detail},
                   token=d["device_token"])
    assert r.status == expect, r.raw
    return r.body


def get(server, cmd_id):
    r = server.api("GET", "/v1/commands/" + cmd_id)
    assert r.status == 200, r.raw
    return r.body


def checkin(server, d, i=0):
    r = server.api("POST", "/v1/agent/checkin", {"facts": make_facts(i)},
                   token=d["device_token"])
    assert r.status == 200, r.raw
    return r.body


def audit(server):
    items, cursor = [], None
    while True:
        path = "/v1/audit?limit=1000" + ("&cursor=" + cursor if cursor else "")
        r = server.api("GET", path)
        assert r.status == 200, r.raw
        items += r.body["items"]
        cursor = r.body["next_cursor"]
        if not cursor:
            return items


def actions_for(server, target):
    return [a["action"] for a in audit(server) if a["target"] == target]


def verify_ok(server):
    r = server.api("GET", "/v1/audit/verify")
    assert r.status == 200, r.raw
    assert r.body["ok"] is True and r.body["first_bad"] is None, r.body


def device(server, dev_id):
    r = server.api("GET", "/v1/devices/" + dev_id)
    assert r.status == 200, r.raw
    return r.body


# ---- lifecycle ------------------------------------------------------------

def test_full_lifecycle(server):
    d = server.enroll_many(1)[0]
    dev = d["device_id"]
    owner_id = server.owner_token_id()
    c = create(server, dev, "lock", params={"message": "call IT"})
    assert set(c) == COMMAND_KEYS
    assert UUID_RE.match(c["id"])
    assert c["device_id"] == dev and c["type"] == "lock"
    assert c["params"] == {"message": "call IT"}
    assert c["status"] == "queued" and c["detail"] is None
    assert c["created_by"] == "token:" + owner_id
    assert RFC3339_RE.match(c["issued_at"])
    assert parse_time(c["expires_at"]) - parse_time(c["issued_at"]) == 86400
    for k in ("sent_at", "acknowledged_at", "completed_at", "canceled_at"):
        assert c[k] is None

    items = fetch(server, d)
    assert [x["id"] for x in items] == [c["id"]]
    assert items[0]["status"] == "sent" and items[0]["sent_at"]
    assert get(server, c["id"])["status"] == "sent"
    # Fetched again while not acknowledged: still there, still sent.
    assert [x["status"] for x in fetch(server, d)] == ["sent"]

    a = result(server, d, c["id"], "acknowledged")
    assert a["status"] == "acknowledged" and a["acknowledged_at"]
    assert fetch(server, d) == []
    done = result(server, d, c["id"], "completed", "screen locked")
    assert done["status"] == "completed" and done["completed_at"]
    assert done["detail"] == "screen locked"
    # Idempotent: a repeat and a step back are 200 and change nothing.
    assert result(server, d, c["id"], "completed", "other") == done
    assert result(server, d, c["id"], "acknowledged") == done
    assert result(server, d, c["id"], "failed") == done
    assert get(server, c["id"]) == done
    assert actions_for(server, c["id"]) == [
        "command.create", "command.send", "command.result", "command.result"]

    # sent → failed directly.
    c2 = create(server, dev, "os_update")
    fetch(server, d)
    assert result(server, d, c2["id"], "failed", "no space")["status"] == \
        "failed"

    r = server.api("GET", "/v1/devices/%s/commands" % dev)
    assert r.status == 200, r.raw
    assert [x["id"] for x in r.body["items"]] == [c2["id"], c["id"]]
    assert r.body["next_cursor"] is None
    r = server.api("GET", "/v1/devices/%s/commands?status=completed" % dev)
    assert [x["id"] for x in r.body["items"]] == [c["id"]]
    verify_ok(server)


def test_list_pages_newest_first(server):
    d = server.enroll_many(1)[0]
    ids = [create(server, d["device_id"], "reboot")["id"] for _ in range(5)]
    seen, cursor, pages = [], None, 0
    while True:
        path = "/v1/devices/%s/commands?limit=2" % d["device_id"]
        if cursor:
            path += "&cursor=" + cursor
        r = server.api("GET", path)
        assert r.status == 200, r.raw
        seen += [x["id"] for x in r.body["items"]]
        cursor = r.body["next_cursor"]
        pages += 1
        if not cursor:
            break
    assert seen == ids[::-1]
    assert pages == 3
    assert_problem(server.api("GET", "/v1/devices/%s/commands?cursor=zz!"
                              % d["device_id"]), 400)
    assert_problem(server.api("GET", "/v1/devices/%s/commands?status=done"
                              % d["device_id"]), 400)
    assert_problem(server.api("GET", "/v1/devices/%s/commands"
                              % random_uuid()), 404)
    assert_problem(server.api("GET", "/v1/commands/" + random_uuid()), 404)


def test_pending_commands_in_checkin(server):
    d = server.enroll_many(1)[0]
    # The full path, then the fast path (a byte-identical body).
    assert checkin(server, d)["pending_commands"] == 0
    assert checkin(server, d)["pending_commands"] == 0
    c1 = create(server, d["device_id"], "lock")
    create(server, d["device_id"], "reboot")
    assert checkin(server, d)["pending_commands"] == 2   # fast path
    assert checkin(server, d, i=7)["pending_commands"] == 2  # full path
    fetch(server, d)
    assert checkin(server, d, i=7)["pending_commands"] == 2  # sent counts
    result(server, d, c1["id"], "acknowledged")
    assert checkin(server, d, i=7)["pending_commands"] == 1
    assert checkin(server, d, i=8)["pending_commands"] == 1


# ---- cancel, expiry, other devices ------------------------------------------

def test_cancel_rules(server):
    d = server.enroll_many(1)[0]
    dev = d["device_id"]
    queued = create(server, dev, "lock")
    r = server.api("POST", "/v1/commands/%s/cancel" % queued["id"])
    assert r.status == 200, r.raw
    assert r.body["status"] == "canceled" and r.body["canceled_at"]
    # Again: unchanged.
    r2 = server.api("POST", "/v1/commands/%s/cancel" % queued["id"])
    assert r2.status == 200 and r2.body == r.body
    assert actions_for(server, queued["id"]) == ["command.create",
                                                 "command.cancel"]
    # A result for a canceled command is a conflict.
    assert_problem(server.api("POST", "/v1/agent/commands/%s/result"
                              % queued["id"], {"status": "completed"},
                              token=d["device_token"]), 409)

    sent = create(server, dev, "reboot")
    fetch(server, d)
    r = server.api("POST", "/v1/commands/%s/cancel" % sent["id"])
    assert r.status == 200 and r.body["status"] == "canceled"
    assert fetch(server, d) == []

    acked = create(server, dev, "reboot")
    fetch(server, d)
    result(server, d, acked["id"], "acknowledged")
    assert_problem(server.api("POST", "/v1/commands/%s/cancel" % acked["id"]),
                   409)
    result(server, d, acked["id"], "completed")
    assert_problem(server.api("POST", "/v1/commands/%s/cancel" % acked["id"]),
                   409)
    assert_problem(server.api("POST", "/v1/commands/%s/cancel"
                              % random_uuid()), 404)
    verify_ok(server)


def test_expiry(server):
    d = server.enroll_many(1)[0]
    dev = d["device_id"]
    c = create(server, dev, "lock", expires_in_s=60)
    assert parse_time(c["expires_at"]) - parse_time(c["issued_at"]) == 60
    keep = create(server, dev, "reboot")
    assert checkin(server, d)["pending_commands"] == 2
    past = int(time.time()) - 5
    assert server.execute("UPDATE commands SET expires_at = ? WHERE id = ?",
                          (past, c["id"])) == 1
    # Not counted, not fetched; any read stores the expiry, audited once.
    assert checkin(server, d)["pending_commands"] == 1
    assert get(server, c["id"])["status"] == "expired"
    assert get(server, c["id"])["status"] == "expired"
    assert [x["id"] for x in fetch(server, d)] == [keep["id"]]
    assert actions_for(server, c["id"]) == ["command.create",
                                            "command.expire"]
    assert_problem(server.api("POST", "/v1/agent/commands/%s/result"
                              % c["id"], {"status": "acknowledged"},
                              token=d["device_token"]), 409)
    assert_problem(server.api("POST", "/v1/commands/%s/cancel" % c["id"]),
                   409)
    # A sent command expires too, at the agent's fetch.
    assert server.execute("UPDATE commands SET expires_at = ? WHERE id = ?",
                          (past, keep["id"])) == 1
    assert fetch(server, d) == []
    r = server.api("GET", "/v1/devices/%s/commands?status=expired" % dev)
    assert len(r.body["items"]) == 2
    verify_ok(server)


def test_another_devices_command(server):
    a, b = server.enroll_many(2)
    c = create(server, a["device_id"], "lock")
    assert_problem(server.api("POST", "/v1/agent/commands/%s/result" % c["id"],
                              {"status": "completed"},
                              token=b["device_token"]), 404)
    assert_problem(server.api("POST", "/v1/agent/commands/%s/result"
                              % random_uuid(), {"status": "completed"},
                              token=b["device_token"]), 404)
    assert fetch(server, b) == []
    assert get(server, c["id"])["status"] == "queued"
    # Another tenant does not see it either.
    _, other = server.create_tenant("acme")
    assert_problem(server.api("GET", "/v1/commands/" + c["id"], token=other),
                   404)
    assert_problem(server.api("POST", "/v1/devices/%s/commands"
                              % a["device_id"], {"type": "lock"},
                              token=other), 404)


def test_bad_input(server):
    d = server.enroll_many(1)[0]
    path = "/v1/devices/%s/commands" % d["device_id"]
    before = server.q1("SELECT count(*) FROM commands")
    for body in ({"type": "selfdestruct"}, {}, {"type": 5},
                 {"type": "lock", "params": []},
                 {"type": "lock", "params": "x"},
                 {"type": "lock", "expires_in_s": 59},
                 {"type": "lock", "expires_in_s": 2592001},
                 {"type": "lock", "expires_in_s": "60"},
                 {"type": "lock", "colour": "red"}):
        assert_problem(server.api("POST", path, body), 400)
    assert_problem(server.api("POST", path,
                              {"type": "lock",
                               "params": {"x": "a" * 17000}}), 413)
    for body in ({"type": "lock"},
                 {"type": "lock", "selector": []},
                 {"type": "lock", "selector": {"os": "x"}},
                 {"type": "lock", "selector": {"platform": "beos"}},
                 {"type": "lock", "selector": {"compliance": "good"}},
                 {"type": "lock", "selector": {"labels": {"a": 1}}},
                 {"type": "nope", "selector": {}}):
        assert_problem(server.api("POST", "/v1/commands", body), 400)
    assert_problem(server.api("POST", "/v1/agent/commands/%s/result"
                              % random_uuid(), {"status": "done"},
                              token=d["device_token"]), 400)
    assert_problem(server.api("POST", "/v1/agent/commands/%s/result"
                              % random_uuid(),
                              {"status": "completed", "x": 1},
                              token=d["device_token"]), 400)
    assert_problem(server.api("POST", "/v1/devices/%s/retire"
                              % d["device_id"], {"wipe": "some"}), 400)
    assert_problem(server.api("POST", "/v1/devices/%s/commands"
                              % random_uuid(), {"type": "lock"}), 404)
    assert server.q1("SELECT count(*) FROM commands") == before == 0
    # A device credential never opens the admin side, nor a token the agent's.
    assert_problem(server.api("POST", path, {"type": "lock"},
                              token=d["device_token"]), 403)
    assert_problem(server.api("GET", "/v1/agent/commands"), 403)


# ---- roles -------------------------------------------------------------------

def test_roles(server):
    devs = server.enroll_many(2)
    dev = devs[0]["device_id"]
    helpdesk = server.create_token("helpdesk")
    auditor = server.create_token("auditor")
    operator = server.create_token("operator")
    admin = server.create_token("admin")
    for t in ("lock", "reboot", "refresh_inventory"):
        create(server, dev, t, token=helpdesk)
    for t in ("wipe", "selective_wipe", "os_update", "install_profile",
              "remove_profile", "rotate_certificate"):
        assert_problem(server.api("POST", "/v1/devices/%s/commands" % dev,
                                  {"type": t}, token=helpdesk), 403)
    assert_problem(server.api("POST", "/v1/commands",
                              {"type": "wipe", "selector": {}},
                              token=helpdesk), 403)
    r = server.api("POST", "/v1/commands", {"type": "lock", "selector": {}},
                   token=helpdesk)
    assert r.status == 201 and r.body["count"] == 2, r.raw
    assert_problem(server.api("POST", "/v1/devices/%s/retire" % dev,
                              {"wipe": "none"}, token=helpdesk), 403)
    for t in ("lock", "wipe", "reboot"):
        assert_problem(server.api("POST", "/v1/devices/%s/commands" % dev,
                                  {"type": t}, token=auditor), 403)
    assert_problem(server.api("POST", "/v1/commands",
                              {"type": "lock", "selector": {}},
                              token=auditor), 403)
    assert_problem(server.api("POST", "/v1/devices/%s/retire" % dev, {},
                              token=auditor), 403)
    # Everyone reads.
    r = server.api("GET", "/v1/devices/%s/commands" % dev, token=auditor)
    assert r.status == 200 and len(r.body["items"]) == 4
    wipe = create(server, dev, "wipe", token=operator)
    create(server, dev, "selective_wipe", token=admin)
    # Helpdesk may not cancel what it may not create; cancels a lock.
    assert_problem(server.api("POST", "/v1/commands/%s/cancel" % wipe["id"],
                              token=helpdesk), 403)
    lock = r.body["items"][0]
    r = server.api("POST", "/v1/commands/%s/cancel" % lock["id"],
                   token=helpdesk)
    assert r.status == 200, r.raw
    assert_problem(server.api("POST", "/v1/commands/%s/cancel" % lock["id"],
                              token=auditor), 403)
    assert server.q1("SELECT count(*) FROM commands WHERE type = 'wipe'") == 1


# ---- bulk --------------------------------------------------------------------

def test_bulk_selectors(server):
    policy = {"apiVersion": "mdm/v1", "kind": "CompliancePolicy",
              "metadata": {"name": "disk"},
              "spec": {"rules": [{"name": "disk",
                                  "fact": "encryption.root_encrypted",
                                  "op": "is_true"}]}}
    r = server.api("PUT", "/v1/policies/CompliancePolicy/disk", policy)
    assert r.status == 201, r.raw
    sales = server.enroll_many(3, labels={"dept": "sales"})
    ops = server.enroll_many(2, labels={"dept": "ops"}, platform="macos",
                             start=10)
    et = server.create_etoken()
    bad = make_facts(20)
    bad["encryption"]["root_encrypted"] = False
    nonc = server.enroll(et["token"], bad)
    gone = server.enroll_many(1, start=30)[0]
    r = server.api("POST", "/v1/devices/%s/retire" % gone["device_id"],
                   {"wipe": "none"})
    assert r.status == 200, r.raw

    def bulk(selector, type_="lock"):
        r = server.api("POST", "/v1/commands",
                       {"type": type_, "selector": selector})
        assert r.status == 201, r.raw
        assert set(r.body) == {"count", "ids"}
        assert r.body["count"] == len(r.body["ids"])
        return r.body

    got = bulk({"labels": {"dept": "sales"}})
    assert got["count"] == 3
    devs = {server.q1("SELECT device_id FROM commands WHERE id = ?", (i,))
            for i in got["ids"]}
    assert devs == {d["device_id"] for d in sales}
    assert bulk({"platform": "macos"})["count"] == 2
    assert bulk({"platform": "macos", "labels": {"dept": "sales"}})["count"] \
        == 0
    got = bulk({"compliance": "noncompliant"}, "refresh_inventory")
    assert got["count"] == 1
    assert get(server, got["ids"][0])["device_id"] == nonc["device_id"]
    assert bulk({"compliance": "compliant"})["count"] == 5
    assert bulk({})["count"] == 6   # every active device, not the retired
    assert server.q1("SELECT count(*) FROM commands WHERE device_id = ?",
                     (gone["device_id"],)) == 0
    creates = [a for a in audit(server) if a["action"] == "command.create"]
    assert len(creates) == 3 + 2 + 0 + 1 + 5 + 6
    assert all(a["detail"]["bulk"] is True for a in creates)
    verify_ok(server)


# ---- retirement --------------------------------------------------------------

def test_retire_without_wipe(server):
    d = server.enroll_many(1)[0]
    dev = d["device_id"]
    c = create(server, dev, "lock")
    assert checkin(server, d)["pending_commands"] == 1
    r = server.api("POST", "/v1/devices/%s/retire" % dev, {"wipe": "none"})
    assert r.status == 200, r.raw
    assert r.body["state"] == "retired"
    assert r.body["retire_pending"] is False
    assert r.body["retire_command_id"] is None
    # The token opens nothing, at once.
    assert_problem(server.api("POST", "/v1/agent/checkin",
                              {"facts": make_facts(0)},
                              token=d["device_token"]), 401)
    assert_problem(server.api("GET", "/v1/agent/commands",
                              token=d["device_token"]), 401)
    assert_problem(server.api("POST", "/v1/agent/commands/%s/result"
                              % c["id"], {"status": "completed"},
                              token=d["device_token"]), 401)
    assert_problem(server.api("GET", "/v1/agent/policy",
                              token=d["device_token"]), 401)
    assert_problem(server.api("POST", "/v1/agent/telemetry",
                              {"events": []}, token=d["device_token"]), 401)
    # Its open commands can never be delivered: canceled.
    assert get(server, c["id"])["status"] == "canceled"
    assert actions_for(server, dev)[-2:] == ["device.retire",
                                             "device.retired"]
    assert_problem(server.api("POST", "/v1/devices/%s/retire" % dev,
                              {"wipe": "none"}), 409)
    assert_problem(server.api("POST", "/v1/devices/%s/commands" % dev,
                              {"type": "lock"}), 409)
    assert_problem(server.api("POST", "/v1/devices/%s/retire"
                              % random_uuid(), {}), 404)
    verify_ok(server)


def test_retire_with_selective_wipe(server):
    d = server.enroll_many(1)[0]
    dev = d["device_id"]
    operator = server.create_token("operator")
    # No body: the default is a selective wipe.
    r = server.api("POST", "/v1/devices/%s/retire" % dev, token=operator)
    assert r.status == 202, r.raw
    assert r.body["state"] == "active"
    assert r.body["retire_pending"] is True
    wid = r.body["retire_command_id"]
    assert UUID_RE.match(wid)
    assert get(server, wid)["type"] == "selective_wipe"
    assert device(server, dev)["retire_pending"] is True
    assert_problem(server.api("POST", "/v1/devices/%s/retire" % dev,
                              {"wipe": "full"}), 409)
    # Still active: it checks in, sees the wipe, acknowledges it.
    assert checkin(server, d)["pending_commands"] == 1
    assert [x["id"] for x in fetch(server, d)] == [wid]
    result(server, d, wid, "acknowledged")
    assert device(server, dev)["state"] == "active"
    done = result(server, d, wid, "completed", "work profile removed")
    assert done["status"] == "completed"
    dv = device(server, dev)
    assert dv["state"] == "retired"
    assert dv["retire_pending"] is False and dv["retire_command_id"] == wid
    assert_problem(server.api("POST", "/v1/agent/checkin",
                              {"facts": make_facts(0)},
                              token=d["device_token"]), 401)
    assert_problem(server.api("POST", "/v1/agent/commands/%s/result" % wid,
                              {"status": "completed"},
                              token=d["device_token"]), 401)
    assert "device.retired" in actions_for(server, dev)
    verify_ok(server)


def test_retire_full_wipe_and_expiry(server):
    a, b, c = server.enroll_many(3)
    r = server.api("POST", "/v1/devices/%s/retire" % a["device_id"],
                   {"wipe": "full"})
    assert r.status == 202, r.raw
    wid = r.body["retire_command_id"]
    assert get(server, wid)["type"] == "wipe"
    fetch(server, a)
    result(server, a, wid, "completed")
    assert device(server, a["device_id"])["state"] == "wiped"

    # A failed wipe still retires (not wiped).
    r = server.api("POST", "/v1/devices/%s/retire" % b["device_id"],
                   {"wipe": "full"})
    result(server, b, r.body["retire_command_id"], "failed", "denied")
    assert device(server, b["device_id"])["state"] == "retired"

    # An expired wipe retires the device when next touched.
    r = server.api("POST", "/v1/devices/%s/retire" % c["device_id"], {})
    wid = r.body["retire_command_id"]
    server.execute("UPDATE commands SET expires_at = ? WHERE id = ?",
                   (int(time.time()) - 1, wid))
    assert get(server, wid)["status"] == "expired"
    assert device(server, c["device_id"])["state"] == "retired"
    assert_problem(server.api("GET", "/v1/agent/commands",
                              token=c["device_token"]), 401)
    verify_ok(server)


def test_retire_canceled_wipe_keeps_device(server):
    d = server.enroll_many(1)[0]
    r = server.api("POST", "/v1/devices/%s/retire" % d["device_id"], {})
    wid = r.body["retire_command_id"]
    r = server.api("POST", "/v1/commands/%s/cancel" % wid)
    assert r.status == 200, r.raw
    dv = device(server, d["device_id"])
    assert dv["state"] == "active" and dv["retire_pending"] is False
    assert checkin(server, d)["pending_commands"] == 0
    # It may be retired again.
    r = server.api("POST", "/v1/devices/%s/retire" % d["device_id"],
                   {"wipe": "none"})
    assert r.status == 200 and r.body["state"] == "retired", r.raw
