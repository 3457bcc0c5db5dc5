"""The admin API against a real mdmd: health, API tokens, roles, enrollment
tokens, the device inventory (filters, pagination, PATCH) and the audit log
with its hash chain (docs/api.md)."""
import json
import subprocess
import time

import pytest

from mdmtest import chain
from mdmtest import (API_TOKEN_RE, RFC3339_RE, UUID_RE, assert_checkin_answer,
                     assert_problem, b64url, jwt_parts, make_facts, parse_time,
                     random_uuid, sha256_hex)


# ---- health ---------------------------------------------------------------

def test_healthz_and_readyz_need_no_credentials(server):
    for path, body in (("/healthz", {"status": "ok"}),
                       ("/readyz", {"status": "ready"})):
        st, hdrs, got = server.api("GET", path, token=None)
        assert st == 200
        assert hdrs["Content-Type"] == "application/json"
        assert got == body


# ---- API tokens -------------------------------------------------------------

def test_bootstrap_owner_token(server):
    # The token printed once on first start is the one in admin.token.
    assert server.bootstrap_token == server.token
    assert any(l.startswith("bootstrapped tenant 'default'")
               for l in server.stdout_lines)
    rows = server.q("SELECT name, role, hash, created_by FROM api_tokens")
    assert rows == [("owner", "owner", sha256_hex(server.token), "system")]
    # A later start reuses it and prints no token.
    token = server.token
    server.restart()
    assert server.bootstrap_token is None
    assert not any("mdm_at_" in l for l in server.stdout_lines)
    assert server.token == token
    assert server.api("GET", "/v1/devices").status == 200
    assert server.q1("SELECT count(*) FROM tenants") == 1


def test_token_create_list_delete(server):
    owner_id = server.owner_token_id()
    st, hdrs, tok = server.api("POST", "/v1/tokens",
                               {"name": "ci", "role": "admin"})
    assert st == 201
    assert hdrs["Content-Type"] == "application/json"
    # docs/api.md lists these; created_by (as in the list) may come too.
    assert {"id", "name", "role", "token", "created_at"} <= set(tok)
    assert set(tok) <= {"id", "name", "role", "token", "created_at",
                        "created_by"}
    assert UUID_RE.match(tok["id"])
    assert (tok["name"], tok["role"]) == ("ci", "admin")
    assert API_TOKEN_RE.match(tok["token"]), tok["token"]
    assert abs(parse_time(tok["created_at"]) - time.time()) < 60
    secret = tok["token"]

    # Stored hashed: the row has the SHA-256, and no column the secret.
    rows = server.q("SELECT id, name, role, hash, created_by FROM api_tokens"
                    " WHERE id = ?", (tok["id"],))
    assert rows == [(tok["id"], "ci", "admin", sha256_hex(secret),
                     "token:" + owner_id)]
    dump = json.dumps(server.snapshot())
    assert secret not in dump

    # The new token works.
    assert server.api("GET", "/v1/devices", token=secret).status == 200

    # The list never shows a secret.
    st, _, lst = server.api("GET", "/v1/tokens")
    assert st == 200
    assert lst["next_cursor"] is None
    by_id = {t["id"]: t for t in lst["items"]}
    assert set(by_id) == {owner_id, tok["id"]}
    for t in lst["items"]:
        assert set(t) == {"id", "name", "role", "created_at", "created_by"}
    assert by_id[tok["id"]] == {"id": tok["id"], "name": "ci", "role": "admin",
                                "created_at": tok["created_at"],
                                "created_by": "token:" + owner_id}
    assert secret not in json.dumps(lst)
    assert server.token not in json.dumps(lst)

    # Deleted: 204 with no body, 401 at once, gone from the list and the DB.
    r = server.api("DELETE", "/v1/tokens/" + tok["id"])
    assert r.status == 204 and r.raw == b""
    r = server.api("GET", "/v1/devices", token=secret)
    assert_problem(r, 401)
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert server.q("SELECT id FROM api_tokens WHERE id = ?",
                    (tok["id"],)) == []
    st, _, lst = server.api("GET", "/v1/tokens")
    assert [t["id"] for t in lst["items"]] == [owner_id]
    # Deleting again, or an unknown id: 404.
    assert_problem(server.api("DELETE", "/v1/tokens/" + tok["id"]), 404)
    assert_problem(server.api("DELETE", "/v1/tokens/not-a-uuid"), 404)


def test_token_of_every_role_can_be_made(server):
    for role in ("owner", "admin", "operator", "helpdesk", "auditor"):
        st, _, t = server.api("POST", "/v1/tokens",
                              {"name": "r-" + role, "role": role})
        assert st == 201 and t["role"] == role
    roles = sorted(r for (r,) in server.q("SELECT role FROM api_tokens"))
    assert roles == sorted(["owner", "owner", "admin", "operator", "helpdesk",
                            "auditor"])


# ---- roles ------------------------------------------------------------------

def test_roles(server):
    dev = server.enroll_many(1)[0]
    dpath = "/v1/devices/" + dev["device_id"]
    tok = {role: server.create_token(role)
           for role in ("admin", "operator", "helpdesk", "auditor")}
    before = server.snapshot()

    # auditor: reads everything, changes nothing.
    aud = tok["auditor"]
    assert_problem(server.api("POST", "/v1/enrollment-tokens", {},
                              token=aud), 403)
    assert_problem(server.api("PATCH", dpath, {"labels": {"x": "y"}},
                              token=aud), 403)
    assert_problem(server.api("POST", "/v1/tokens",
                              {"name": "x", "role": "owner"}, token=aud), 403)
    st, _, lst = server.api("GET", "/v1/devices", token=aud)
    assert st == 200 and [d["id"] for d in lst["items"]] == [dev["device_id"]]
    assert server.api("GET", dpath, token=aud).status == 200
    st, _, a = server.api("GET", "/v1/audit", token=aud)
    assert st == 200 and len(a["items"]) > 0
    st, _, v = server.api("GET", "/v1/audit/verify", token=aud)
    assert st == 200 and v["ok"] is True

    # helpdesk: reads devices, not the audit log.
    hd = tok["helpdesk"]
    assert server.api("GET", "/v1/devices", token=hd).status == 200
    assert server.api("GET", dpath, token=hd).status == 200
    assert_problem(server.api("GET", "/v1/audit", token=hd), 403)
    assert_problem(server.api("GET", "/v1/audit/verify", token=hd), 403)
    assert_problem(server.api("PATCH", dpath, {"labels": {"x": "y"}},
                              token=hd), 403)
    assert_problem(server.api("POST", "/v1/enrollment-tokens", {},
                              token=hd), 403)

    # operator: reads everything including audit; no tokens.
    op = tok["operator"]
    assert server.api("GET", "/v1/audit", token=op).status == 200
    assert server.api("GET", "/v1/devices", token=op).status == 200
    assert_problem(server.api("GET", "/v1/tokens", token=op), 403)

    # admin: everything but API tokens.
    adm = tok["admin"]
    assert_problem(server.api("GET", "/v1/tokens", token=adm), 403)
    assert_problem(server.api("POST", "/v1/tokens",
                              {"name": "x", "role": "admin"}, token=adm), 403)
    owner_id = server.owner_token_id()
    assert_problem(server.api("DELETE", "/v1/tokens/" + owner_id,
                              token=adm), 403)
    assert server.snapshot() == before  # no refused request wrote anything

    r = server.api("PATCH", dpath, {"labels": {"x": "y"}}, token=adm)
    assert r.status == 200 and r.body["labels"] == {"x": "y"}
    r = server.api("POST", "/v1/enrollment-tokens", {}, token=adm)
    assert r.status == 201
    assert server.api("GET", "/v1/audit", token=adm).status == 200


# ---- enrollment tokens ------------------------------------------------------

def test_enrollment_token_defaults(server):
    t0 = time.time()
    st, hdrs, et = server.api("POST", "/v1/enrollment-tokens", {})
    assert st == 201
    assert set(et) == {"id", "token", "expires_at", "max_uses", "labels"}
    assert UUID_RE.match(et["id"])
    assert et["max_uses"] == 1
    assert et["labels"] == {}
    exp = parse_time(et["expires_at"])
    assert t0 + 3600 - 2 <= exp <= time.time() + 3600 + 1

    header, claims, sig = jwt_parts(et["token"])
    assert header["alg"] == "ES256"
    assert claims["iss"] == "mdm"
    assert claims["aud"] == "mdm-enroll"
    assert claims["sub"] == et["id"] and claims["jti"] == et["id"]
    assert claims["tenant"] == server.tenant_id()
    assert claims["exp"] == int(exp)
    assert len(sig) == 86  # 64-byte raw ES256 signature, base64url

    row = server.q("SELECT tenant_id, expires_at, max_uses, uses, labels,"
                   " revoked FROM enrollment_tokens WHERE id = ?", (et["id"],))
    assert row == [(server.tenant_id(), int(exp), 1, 0, "{}", 0)]

    st, _, lst = server.api("GET", "/v1/enrollment-tokens")
    assert st == 200
    items = {i["id"]: i for i in lst["items"]}
    it = items[et["id"]]
    for k in ("id", "expires_at", "max_uses", "uses", "labels", "created_at",
              "revoked"):
        assert k in it, k
    assert (it["max_uses"], it["uses"], it["labels"], it["revoked"]) == \
        (1, 0, {}, False)
    assert "token" not in it


def test_enrollment_token_explicit_values_and_revoke(server):
    st, _, et = server.api("POST", "/v1/enrollment-tokens",
                           {"ttl_seconds": 60, "max_uses": 100000,
                            "labels": {"dept": "sales"}})
    assert st == 201
    assert et["max_uses"] == 100000 and et["labels"] == {"dept": "sales"}
    assert abs(parse_time(et["expires_at"]) - (time.time() + 60)) < 5
    r = server.api("DELETE", "/v1/enrollment-tokens/" + et["id"])
    assert r.status == 204
    assert server.q1("SELECT revoked FROM enrollment_tokens WHERE id = ?",
                     (et["id"],)) == 1
    # A revoked token enrolls nothing.
    r = server.api("POST", "/v1/enroll", {"enrollment_token": et["token"],
                                          "facts": make_facts()}, token=None)
    assert_problem(r, 401)
    assert server.q1("SELECT count(*) FROM devices") == 0
    assert_problem(server.api("DELETE", "/v1/enrollment-tokens/" + et["id"]),
                   404)


def test_enroll_inherits_token_labels(server):
    et = server.create_etoken(max_uses=2,
                              labels={"dept": "sales", "site": "ber"})
    facts = make_facts(7)
    t0 = int(time.time())
    st, hdrs, d = server.api("POST", "/v1/enroll",
                             {"enrollment_token": et["token"],
                              "facts": facts}, token=None)
    assert st == 201
    assert set(d) == {"device_id", "device_token", "checkin_interval_s",
                      "mqtt", "policy_key"}
    assert d["policy_key"].startswith("-----BEGIN PUBLIC KEY-----")
    assert UUID_RE.match(d["device_id"])
    assert d["checkin_interval_s"] == 5
    assert d["mqtt"] is None
    h, c, _ = jwt_parts(d["device_token"])
    assert h["alg"] == "ES256"
    assert c["aud"] == "mdm-device" and c["sub"] == d["device_id"]
    assert c["tenant"] == server.tenant_id() and c["iss"] == "mdm"

    st, _, dev = server.api("GET", "/v1/devices/" + d["device_id"])
    assert st == 200
    assert dev["id"] == d["device_id"]
    assert dev["labels"] == {"dept": "sales", "site": "ber"}
    assert dev["state"] == "active" and dev["compliance"] == "unknown"
    assert dev["user_principal_name"] is None
    assert dev["facts"] == facts
    assert (dev["serial"], dev["platform"], dev["hostname"], dev["model"]) == \
        (facts["serial"], "linux", facts["hostname"], facts["model"])
    assert dev["os"] == facts["os"]
    assert t0 - 1 <= parse_time(dev["enrolled_at"]) <= time.time() + 1
    assert dev["last_seen"] is not None

    row = server.q("SELECT labels, enrollment_token_id, serial FROM devices"
                   " WHERE id = ?", (d["device_id"],))
    assert json.loads(row[0][0]) == {"dept": "sales", "site": "ber"}
    assert row[0][1:] == (et["id"], facts["serial"])
    assert server.q1("SELECT uses FROM enrollment_tokens WHERE id = ?",
                     (et["id"],)) == 1


def test_device_shape_matches_api_doc(server):
    """docs/api.md: a device has exactly these fields, "tenant" among them."""
    d = server.enroll_many(1)[0]
    st, _, dev = server.api("GET", "/v1/devices/" + d["device_id"])
    assert st == 200
    assert "tenant" in dev, sorted(dev)
    assert dev["tenant"] == "default"
    assert {"id", "tenant", "serial", "platform", "hostname", "model", "os",
            "state", "compliance", "labels", "user_principal_name",
            "enrolled_at", "last_seen", "facts"} <= set(dev)



# ---- device list: filters and pagination -------------------------------------

def _ids(server, query, token=None):
    r = server.api("GET", "/v1/devices" + query)
    assert r.status == 200, r.raw
    assert r.body["next_cursor"] is None
    return [d["id"] for d in r.body["items"]]


def test_device_list_filters(server):
    lin = server.enroll_many(3, labels={"dept": "sales", "site": "ber"},
                             platform="linux")
    win = server.enroll_many(2, labels={"dept": "sales", "site": "muc"},
                             platform="windows", start=10)
    mac = server.enroll_many(1, labels={"dept": "eng"}, platform="macos",
                             start=20)
    lin_ids = sorted(d["device_id"] for d in lin)
    win_ids = sorted(d["device_id"] for d in win)
    mac_ids = sorted(d["device_id"] for d in mac)
    every = sorted(lin_ids + win_ids + mac_ids)

    assert _ids(server, "") == every  # ordered by id
    assert _ids(server, "?platform=linux") == lin_ids
    assert _ids(server, "?platform=windows") == win_ids
    assert _ids(server, "?platform=android") == []
    assert _ids(server, "?label=dept=sales") == sorted(lin_ids + win_ids)
    assert _ids(server, "?label=dept=sales&label=site=muc") == win_ids
    assert _ids(server, "?label=dept=sales&label=site=nowhere") == []
    assert _ids(server, "?label=dept=eng&platform=macos") == mac_ids
    assert _ids(server, "?label=dept=eng&platform=linux") == []
    assert _ids(server, "?state=active") == every
    assert _ids(server, "?compliance=unknown") == every
    assert _ids(server, "?compliance=compliant") == []

    # No API sets state or compliance yet: set them in the store.
    server.execute("UPDATE device_status SET state = 'retired' "
                   "WHERE device_id = ?", (lin_ids[0],))
    server.execute("UPDATE device_status SET compliance = 'compliant' "
                   "WHERE device_id IN (?, ?)", (win_ids[0], lin_ids[1]))
    assert _ids(server, "?state=retired") == [lin_ids[0]]
    assert _ids(server, "?state=active") == [i for i in every
                                             if i != lin_ids[0]]
    assert _ids(server, "?compliance=compliant") == sorted(
        [win_ids[0], lin_ids[1]])
    assert _ids(server, "?compliance=compliant&platform=windows") == \
        [win_ids[0]]
    assert _ids(server, "?state=retired&platform=linux&label=site=ber") == \
        [lin_ids[0]]
    r = server.api("GET", "/v1/devices/" + lin_ids[0])
    assert r.body["state"] == "retired"

    for q in ("?platform=beos", "?state=gone", "?compliance=maybe",
              "?label=novalue", "?label==x", "?label=a%20b=c", "?limit=0",
              "?limit=1001", "?limit=abc", "?limit=-1"):
        assert_problem(server.api("GET", "/v1/devices" + q), 400)


def test_retired_device_token_stops_working(server):
    d = server.enroll_many(1)[0]
    ev = {"events": [{"seq": 1, "type": "agent_started"}]}
    r = server.api("POST", "/v1/agent/telemetry", ev, token=d["device_token"])
    assert r.status == 200
    server.execute("UPDATE device_status SET state = 'retired' "
                   "WHERE device_id = ?", (d["device_id"],))
    before = server.snapshot()
    ev = {"events": [{"seq": 2, "type": "agent_started"}], "dropped": 1}
    r = server.api("POST", "/v1/agent/telemetry", ev, token=d["device_token"])
    assert_problem(r, 401)
    assert server.snapshot() == before
    # Admin reads still show it, as retired.
    assert server.api("GET", "/v1/devices/" +
                      d["device_id"]).body["state"] == "retired"


def test_retired_device_cannot_check_in(server):
    d = server.enroll_many(1)[0]
    r = server.api("POST", "/v1/agent/checkin", {"facts": make_facts()},
                   token=d["device_token"])
    assert_checkin_answer(r)
    server.execute("UPDATE device_status SET state = 'retired' "
                   "WHERE device_id = ?", (d["device_id"],))
    r = server.api("POST", "/v1/agent/checkin", {"facts": make_facts()},
                   token=d["device_token"])
    assert_problem(r, 401)
    r = server.api("POST", "/v1/agent/telemetry",
                   {"events": [{"seq": 1, "type": "agent_started"}]},
                   token=d["device_token"])
    assert_problem(r, 401)
    assert server.q1("SELECT count(*) FROM telemetry") == 0


def test_device_list_pagination(server):
    ids = sorted(d["device_id"] for d in server.enroll_many(7))
    pages, cursor = [], None
    for _ in range(5):
        q = "/v1/devices?limit=3" + ("&cursor=" + cursor if cursor else "")
        st, _, page = server.api("GET", q)
        assert st == 200
        pages.append([d["id"] for d in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor
    assert [len(p) for p in pages] == [3, 3, 1]
    flat = [i for p in pages for i in p]
    assert flat == ids  # no duplicates, nothing missed, in id order

    # Exactly a page's worth: no phantom next page.
    st, _, page = server.api("GET", "/v1/devices?limit=7")
    assert len(page["items"]) == 7 and page["next_cursor"] is None
    st, _, page = server.api("GET", "/v1/devices?limit=6")
    assert len(page["items"]) == 6 and page["next_cursor"] is not None

    for bad in ("!!!", "abc", b64url("not-a-uuid"), "%00", b64url("")):
        assert_problem(server.api("GET", "/v1/devices?cursor=" + bad), 400)


def test_device_list_label_keys_with_dots_and_slashes(server):
    a = server.enroll_many(2, labels={"team.example.com/owner": "it",
                                      "app.kubernetes.io/name": "kiosk"})
    b = server.enroll_many(2, labels={"team.example.com/owner": "hr"},
                           start=10)
    a_ids = sorted(d["device_id"] for d in a)
    b_ids = sorted(d["device_id"] for d in b)
    assert _ids(server, "?label=team.example.com/owner=it") == a_ids
    assert _ids(server, "?label=team.example.com/owner=hr") == b_ids
    assert _ids(server, "?label=app.kubernetes.io/name=kiosk"
                        "&label=team.example.com/owner=it") == a_ids
    # A key that is a prefix of a real key matches nothing.
    assert _ids(server, "?label=team=it") == []
    assert _ids(server, "?label=team.example.com=it") == []


def test_device_list_pagination_with_filter(server):
    lin = sorted(d["device_id"] for d in server.enroll_many(
        5, labels={"k": "v"}, platform="linux"))
    server.enroll_many(4, labels={"k": "v"}, platform="windows", start=10)
    pages, cursor = [], None
    for _ in range(5):
        q = "/v1/devices?platform=linux&label=k=v&limit=2"
        st, _, page = server.api("GET", q + ("&cursor=" + cursor
                                             if cursor else ""))
        assert st == 200
        pages.append([d["id"] for d in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [i for p in pages for i in p] == lin


def test_keep_alive_connection_serves_many_requests(server):
    import http.client
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    auth = {"Authorization": "Bearer " + server.token}
    try:
        for i in range(3):
            conn.request("GET", "/v1/devices", headers=auth)
            r = conn.getresponse()
            assert r.status == 200
            assert json.loads(r.read()) == {"items": [], "next_cursor": None}
            conn.request("POST", "/v1/enrollment-tokens", body="{bad",
                         headers=dict(auth, **{"Content-Type":
                                               "application/json"}))
            r = conn.getresponse()
            assert r.status == 400
            assert json.loads(r.read())["status"] == 400
            conn.request("POST", "/v1/enrollment-tokens",
                         body=json.dumps({"max_uses": i + 1}),
                         headers=dict(auth, **{"Content-Type":
                                               "application/json"}))
            r = conn.getresponse()
            assert r.status == 201
            assert json.loads(r.read())["max_uses"] == i + 1
    finally:
        conn.close()
    assert sorted(n for (n,) in server.q(
        "SELECT max_uses FROM enrollment_tokens")) == [1, 2, 3]


# ---- PATCH -------------------------------------------------------------------

def test_patch_labels_merge_and_upn(server):
    et = server.create_etoken(labels={"dept": "sales", "old": "x"})
    d = server.enroll(et["token"])
    path = "/v1/devices/" + d["device_id"]

    st, _, dev = server.api("PATCH", path,
                            {"labels": {"tier": "gold", "old": None}})
    assert st == 200
    assert dev["labels"] == {"dept": "sales", "tier": "gold"}
    assert dev["id"] == d["device_id"]
    st, _, dev = server.api("PATCH", path,
                            {"labels": {"dept": "eng", "absent": None},
                             "user_principal_name": "alice@corp.example"})
    assert st == 200
    assert dev["labels"] == {"dept": "eng", "tier": "gold"}
    assert dev["user_principal_name"] == "alice@corp.example"
    row = server.q("SELECT labels, upn FROM devices WHERE id = ?",
                   (d["device_id"],))
    assert json.loads(row[0][0]) == {"dept": "eng", "tier": "gold"}
    assert row[0][1] == "alice@corp.example"

    # Only the upn: labels stay; null clears the upn.
    st, _, dev = server.api("PATCH", path, {"user_principal_name": None})
    assert st == 200
    assert dev["user_principal_name"] is None
    assert dev["labels"] == {"dept": "eng", "tier": "gold"}
    assert server.q1("SELECT upn FROM devices WHERE id = ?",
                     (d["device_id"],)) is None
    # GET agrees with what PATCH returned.
    assert server.api("GET", path).body == dev

    before = server.snapshot()
    for body in ({}, {"user_principal_name": "no-at-sign"},
                 {"user_principal_name": ""}, {"labels": {"bad key": "v"}},
                 {"labels": {"k": 5}}, {"labels": ["k"]}, {"state": "wiped"}):
        assert_problem(server.api("PATCH", path, body), 400)
    assert server.snapshot() == before


def test_patch_cannot_grow_labels_past_64(server):
    """A request may carry at most 64 labels, and so may an enrollment
    token; the merged result of PATCHes must not exceed that bound either
    (every input-grown store has a maximum)."""
    d = server.enroll_many(1)[0]
    path = "/v1/devices/" + d["device_id"]
    r = server.api("PATCH", path,
                   {"labels": {"a%d" % i: "v" for i in range(60)}})
    assert r.status == 200 and len(r.body["labels"]) == 60
    before = server.snapshot()
    r = server.api("PATCH", path,
                   {"labels": {"b%d" % i: "v" for i in range(60)}})
    assert_problem(r, 400)
    assert server.snapshot() == before



def test_device_get_unknown_or_invalid_id(server):
    server.enroll_many(1)
    for bad in (random_uuid(), "not-a-uuid", "1", random_uuid().upper(),
                "%27%20OR%201=1--"):
        assert_problem(server.api("GET", "/v1/devices/" + bad), 404)
        assert_problem(server.api("PATCH", "/v1/devices/" + bad,
                                  {"labels": {"a": "b"}}), 404)
    assert server.q1("SELECT count(*) FROM audit WHERE action = "
                     "'device.update'") == 0


# ---- audit -------------------------------------------------------------------

def test_audit_records_every_mutation_and_detects_tampering(server):
    owner = "token:" + server.owner_token_id()
    tid = server.tenant_id()
    st, _, tok = server.api("POST", "/v1/tokens",
                            {"name": "ci", "role": "auditor"})
    assert st == 201
    et = server.create_etoken(max_uses=2, labels={"dept": "sales"})
    d = server.enroll(et["token"], make_facts(3))
    st, _, _ = server.api("PATCH", "/v1/devices/" + d["device_id"],
                          {"labels": {"tier": "gold"}})
    assert st == 200
    assert server.api("DELETE", "/v1/tokens/" + tok["id"]).status == 204
    assert server.api("DELETE", "/v1/enrollment-tokens/" +
                      et["id"]).status == 204
    # Reads and refused requests leave no record.
    server.api("GET", "/v1/devices")
    server.api("GET", "/v1/audit")
    assert server.api("POST", "/v1/tokens", {"name": "x"}).status == 400

    st, _, log = server.api("GET", "/v1/audit")
    assert st == 200 and log["next_cursor"] is None
    items = log["items"]
    got = [(i["seq"], i["actor"], i["action"], i["target"]) for i in items]
    assert got == [
        (1, "system", "tenant.create", tid),
        (2, owner, "token.create", tok["id"]),
        (3, owner, "enrollment_token.create", et["id"]),
        (4, "enrollment_token:" + et["id"], "device.enroll", d["device_id"]),
        (5, owner, "device.update", d["device_id"]),
        (6, owner, "token.delete", tok["id"]),
        (7, owner, "enrollment_token.revoke", et["id"]),
    ]
    for i in items:
        assert set(i) == {"seq", "at", "actor", "action", "target", "detail",
                          "prev_hash", "hash"}
        assert RFC3339_RE.match(i["at"])
        assert len(i["hash"]) == 64
    assert items[0]["prev_hash"] == ""
    for a, b in zip(items, items[1:]):
        assert b["prev_hash"] == a["hash"]
    assert items[1]["detail"] == {"name": "ci", "role": "auditor"}
    assert items[2]["detail"] == {"ttl_seconds": 3600, "max_uses": 2,
                                  "labels": {"dept": "sales"}}
    assert items[3]["detail"] == {"enrollment_token": et["id"],
                                  "serial": "SN-000003",
                                  "hostname": "host-3"}
    assert items[4]["detail"] == {"labels": {"tier": "gold"}}
    # No secret in the log.
    assert tok["token"] not in json.dumps(items)
    assert server.token not in json.dumps(items)
    assert d["device_token"] not in json.dumps(items)

    # Paging the log: limit=3 gives 3+3+1 and the same records.
    pages, cursor = [], None
    while True:
        q = "/v1/audit?limit=3" + ("&cursor=" + cursor if cursor else "")
        st, _, page = server.api("GET", q)
        assert st == 200
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None or len(pages) > 5:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == items
    assert_problem(server.api("GET", "/v1/audit?cursor=xyz"), 400)

    st, _, v = server.api("GET", "/v1/audit/verify")
    assert st == 200
    assert chain(v) == {"ok": True, "records": 7, "first_bad": None}

    # Tamper with record 2 while the server is down.
    server.stop()
    p = subprocess.run(["sqlite3", server.db_path,
                        "UPDATE audit SET detail='{}' WHERE seq=2"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert server.q1("SELECT detail FROM audit WHERE seq = 2") == "{}"
    server.start()
    st, _, v = server.api("GET", "/v1/audit/verify")
    assert st == 200
    assert chain(v) == {"ok": False, "records": 7, "first_bad": 2}


def test_audit_verify_finds_deleted_record(server):
    server.enroll_many(2)
    n = server.q1("SELECT count(*) FROM audit")
    assert n == 4  # tenant.create, enrollment_token.create, 2x device.enroll
    assert chain(server.api("GET", "/v1/audit/verify").body) == \
        {"ok": True, "records": 4, "first_bad": None}
    server.stop()
    p = subprocess.run(["sqlite3", server.db_path,
                        "DELETE FROM audit WHERE seq=3"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    server.start()
    assert chain(server.api("GET", "/v1/audit/verify").body) == \
        {"ok": False, "records": 3, "first_bad": 4}
