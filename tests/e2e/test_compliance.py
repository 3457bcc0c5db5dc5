"""Compliance through the API: verdicts at enrollment and check-in, label
selectors, re-evaluation on policy and label changes, the fast check-in
path, and a verdict that must not land under replaced policies."""

from mdmtest import make_facts


def policy(name="baseline", min_os="12", labels=None):
    spec = {"rules": [
        {"name": "os", "fact": "os.version", "op": "version_ge",
         "value": min_os},
        {"name": "disk", "fact": "encryption.root_encrypted", "op": "is_true"},
    ]}
    if labels:
        spec["assign"] = {"labels": labels}
    return {"apiVersion": "mdm/v1", "kind": "CompliancePolicy",
            "metadata": {"name": name}, "spec": spec}


def device(server, dev_id):
    r = server.api("GET", "/v1/devices/" + dev_id)
    assert r.status == 200, r.raw
    return r.body


def checkin(server, d, facts):
    r = server.api("POST", "/v1/agent/checkin", {"facts": facts},
                   token=d["device_token"])
    assert r.status == 200, r.raw
    return r.body


def test_verdict_at_enrollment_and_checkin(server):
    r = server.api("PUT", "/v1/policies/CompliancePolicy/baseline", policy())
    assert r.status == 201, r.raw
    et = server.create_etoken(max_uses=2)
    good = server.enroll(et["token"], make_facts(1))
    bad_facts = make_facts(2)
    bad_facts["encryption"]["root_encrypted"] = False
    bad = server.enroll(et["token"], bad_facts)
    # Evaluated at enrollment: no check-in yet.
    assert device(server, good["device_id"])["compliance"] == "compliant"
    d = device(server, bad["device_id"])
    assert d["compliance"] == "noncompliant"
    assert [x["message"] for x in d["compliance_reasons"]] == \
        ["encryption.root_encrypted is false, expected true"]
    # The check-in answer carries the state; a fixed device becomes compliant.
    assert checkin(server, bad, bad_facts)["compliance"] == "noncompliant"
    fixed = make_facts(2)
    assert checkin(server, bad, fixed)["compliance"] == "compliant"
    assert device(server, bad["device_id"])["compliance_reasons"] == []
    # Byte-identical check-ins (the fast path) keep the state and move
    # last_seen.
    server.execute("UPDATE device_status SET last_seen = 1 WHERE device_id = ?",
                   (bad["device_id"],))
    assert checkin(server, bad, fixed)["compliance"] == "compliant"
    assert server.q1("SELECT last_seen FROM device_status WHERE device_id = ?",
                     (bad["device_id"],)) > 1


def test_null_fact_is_unknown_never_compliant(server):
    server.api("PUT", "/v1/policies/CompliancePolicy/baseline", policy())
    et = server.create_etoken()
    facts = make_facts(3)
    facts["encryption"]["root_encrypted"] = None
    d = server.enroll(et["token"], facts)
    dev = device(server, d["device_id"])
    assert dev["compliance"] == "unknown"
    assert dev["compliance_reasons"][0]["state"] == "unknown"
    r = server.api("GET", "/v1/devices?compliance=unknown")
    assert [x["id"] for x in r.body["items"]] == [d["device_id"]]


def test_label_change_reevaluates_at_once(server):
    # The policy only applies to dept=sales; others have no policy: unknown.
    server.api("PUT", "/v1/policies/CompliancePolicy/sales",
               policy("sales", min_os="13", labels={"dept": "sales"}))
    d = server.enroll_many(1)[0]
    assert device(server, d["device_id"])["compliance"] == "unknown"
    r = server.api("PATCH", "/v1/devices/" + d["device_id"],
                   {"labels": {"dept": "sales"}})
    assert r.status == 200, r.raw
    # The answer and the stored device agree, without a check-in.
    assert r.body["compliance"] == "noncompliant"
    assert r.body["compliance_reasons"][0]["message"] == "os.version 12 < 13"
    assert device(server, d["device_id"])["compliance"] == "noncompliant"
    r = server.api("PATCH", "/v1/devices/" + d["device_id"],
                   {"labels": {"dept": None}})
    assert r.body["compliance"] == "unknown"


def test_policy_change_reevaluates_and_checkins_stay_fast(server):
    server.api("PUT", "/v1/policies/CompliancePolicy/baseline", policy())
    devs = server.enroll_many(5)
    facts = [make_facts(i) for i in range(5)]
    for d, f in zip(devs, facts):
        assert checkin(server, d, f)["compliance"] == "compliant"
    r = server.api("PUT", "/v1/policies/CompliancePolicy/baseline",
                   policy(min_os="13"))
    assert r.status == 200, r.raw
    assert r.body["compliance"]["changed"] == 5
    assert r.body["compliance"]["counts"] == \
        {"compliant": 0, "noncompliant": 5, "unknown": 0}
    for d in devs:
        assert device(server, d["device_id"])["compliance"] == "noncompliant"
    gen = server.q1("SELECT policy_gen FROM tenants WHERE name = 'default'")
    # Every verdict is of the new generation: the next identical check-in
    # needs no evaluation.
    assert server.q("SELECT DISTINCT eval_gen FROM device_status") == [(gen,)]
    # A no-op re-apply changes nothing at all.
    r = server.api("PUT", "/v1/policies/CompliancePolicy/baseline",
                   policy(min_os="13"))
    assert r.body["results"][0]["action"] == "unchanged"
    assert r.body["compliance"]["changed"] == 0
    # Deleting the only policy makes every device unknown.
    r = server.api("DELETE", "/v1/policies/CompliancePolicy/baseline")
    assert r.status == 200, r.raw
    assert r.body["results"] == [{"kind": "CompliancePolicy",
                                  "name": "baseline", "action": "deleted",
                                  "version": 2}]
    assert r.body["compliance"]["counts"]["unknown"] == 5


def test_stale_verdict_does_not_land(server):
    """A check-in whose facts changed while the stored verdict was computed
    under older policies must not leave that verdict marked current."""
    server.api("PUT", "/v1/policies/CompliancePolicy/baseline", policy())
    d = server.enroll_many(1)[0]
    dev_id = d["device_id"]
    # Pretend the stored verdict is from an older generation.
    server.execute("UPDATE device_status SET eval_gen = 0 WHERE device_id = ?",
                   (dev_id,))
    f = make_facts(0)
    f["encryption"]["root_encrypted"] = False
    assert checkin(server, d, f)["compliance"] == "noncompliant"
    gen = server.q1("SELECT policy_gen FROM tenants WHERE name = 'default'")
    assert server.q1("SELECT eval_gen FROM device_status WHERE device_id = ?",
                     (dev_id,)) == gen
