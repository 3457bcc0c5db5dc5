"""Conditional access over the API (docs/access.md): the brief's policy
JSON applied as written, the what-if (POST /v1/access/evaluate and
`mdmctl access evaluate`) and the gateway's check (GET /v1/access/check)
with real devices whose compliance the server computed."""
import json

import pytest

import mdmtest
from mdmtest import assert_problem, make_facts

BRIEF_SPEC = json.loads("""
{"conditions": {"deviceStates": {"requireCompliantDevice": true,
                                 "requireDomainJoinedDevice": false},
                "applications": {"includeApplications": ["All"]},
                "clientAppTypes": ["mobileApps", "browser"]},
 "grantControls": {"operator": "OR", "builtInControls": ["requireMfa"]}}
""")
COMPLIANCE = {"apiVersion": "mdm/v1", "kind": "CompliancePolicy",
              "metadata": {"name": "baseline"},
              "spec": {"rules": [{"name": "os", "fact": "os.version",
                                  "op": "version_ge", "value": "12"}]}}


def ca_doc(name="require-compliant", spec=None):
    return {"apiVersion": "mdm/v1", "kind": "ConditionalAccessPolicy",
            "metadata": {"name": name}, "spec": spec or BRIEF_SPEC}


@pytest.fixture
def setup(server):
    r = server.api("PUT", "/v1/policies/CompliancePolicy/baseline",
                   COMPLIANCE)
    assert r.status == 201, r.raw
    r = server.api("PUT", "/v1/policies/ConditionalAccessPolicy/"
                   "require-compliant", ca_doc())
    assert r.status == 201, r.raw
    et = server.create_etoken(max_uses=2)["token"]
    good = server.enroll(et, make_facts(1))
    bad = server.enroll(et, make_facts(2, os={
        "name": "Debian GNU/Linux", "version": "10", "build": None,
        "kernel": "4.19.0"}))
    return server, good, bad


def test_policy_stored_as_written(setup):
    server, _, _ = setup
    r = server.api("GET", "/v1/policies/ConditionalAccessPolicy/"
                   "require-compliant")
    assert r.status == 200, r.raw
    assert r.body["document"]["spec"] == BRIEF_SPEC
    # An invalid one is a 422 and changes nothing.
    before = server.snapshot()
    spec = dict(BRIEF_SPEC, grantControls={"operator": "XOR",
                                           "builtInControls": ["block"]})
    r = server.api("PUT", "/v1/policies/ConditionalAccessPolicy/x",
                   ca_doc("x", spec))
    assert_problem(r, 422)
    assert "spec.grantControls.operator" in r.body["detail"]
    assert server.snapshot() == before


def test_what_if(setup):
    server, good, bad = setup
    r = server.api("POST", "/v1/access/evaluate",
                   {"user": {"upn": "alice@corp.example",
                             "mfa_completed": True},
                    "device_id": good["device_id"],
                    "client_app_type": "browser", "application": "crm"})
    assert r.status == 200, r.raw
    assert r.body == {"decision": "allow", "reasons": [], "policies": [
        {"name": "require-compliant", "mode": "enabled", "applies": True,
         "decision": "allow", "reasons": []}]}
    r = server.api("POST", "/v1/access/evaluate",
                   {"user": {"mfa_completed": False},
                    "device_id": good["device_id"],
                    "client_app_type": "mobileApps"})
    assert (r.body["decision"], r.body["reasons"]) == (
        "require_mfa", ["policy require-compliant: multi-factor "
                        "authentication is required"])
    r = server.api("POST", "/v1/access/evaluate",
                   {"user": {"mfa_completed": True},
                    "device_id": bad["device_id"]})
    assert (r.body["decision"], r.body["reasons"]) == (
        "block", ["policy require-compliant: the device is noncompliant"])
    r = server.api("POST", "/v1/access/evaluate",
                   {"device_id": mdmtest.random_uuid()})
    assert (r.body["decision"], r.body["reasons"]) == (
        "block", ["policy require-compliant: the device is unknown"])
    # Another client type: the policy does not apply.
    r = server.api("POST", "/v1/access/evaluate",
                   {"device_id": bad["device_id"],
                    "client_app_type": "exchangeActiveSync"})
    assert r.body["decision"] == "allow"
    assert r.body["policies"][0]["applies"] is False


def test_what_if_bad_input_and_roles(setup):
    server, good, _ = setup
    for body, field in [
            ({"device": "x"}, "unknown field 'device'"),
            ({"device_id": "nope"}, "field 'device_id'"),
            ({"user": {"mfa_completed": "yes"}}, "user.mfa_completed"),
            ({"user": {"password_age_days": -1}}, "user.password_age_days"),
            ({"user": {"role": "x"}}, "unknown field 'user.role'"),
            ({"network": {"vpn_connected": 1}}, "network.vpn_connected"),
            ({"application": ""}, "field 'application'")]:
        r = server.api("POST", "/v1/access/evaluate", body)
        assert_problem(r, 400)
        assert field in r.body["detail"], (body, r.body)
    r = server.api("POST", "/v1/access/evaluate", raw_body=b"[1]")
    assert_problem(r, 400)
    r = server.api("POST", "/v1/access/evaluate", raw_body=b"{")
    assert_problem(r, 400)
    for role in ("helpdesk", "auditor", "operator"):
        tok = server.create_token(role)
        r = server.api("POST", "/v1/access/evaluate", {}, token=tok)
        assert r.status == 200, (role, r.raw)
    assert_problem(server.api("POST", "/v1/access/evaluate", {},
                              token=good["device_token"]), 403)
    assert_problem(server.api("POST", "/v1/access/evaluate", {}, token=None),
                   401)


def check(server, token, **q):
    qs = "&".join("%s=%s" % kv for kv in q.items())
    return server.api("GET", "/v1/access/check" + ("?" + qs if qs else ""),
                      token=token)


def test_gateway_check(setup):
    server, good, bad = setup
    r = check(server, good["device_token"], client_app_type="browser",
              mfa="true", application="crm")
    assert r.status == 200, r.raw
    assert r.headers["X-MDM-Decision"] == "allow"
    assert r.headers["X-MDM-Device"] == good["device_id"]
    r = check(server, good["device_token"], client_app_type="browser",
              mfa="false")
    assert_problem(r, 403)
    assert r.headers["X-MDM-Decision"] == "require_mfa"
    r = check(server, bad["device_token"], mfa="true")
    assert_problem(r, 403)
    assert r.headers["X-MDM-Decision"] == "block"
    assert "the device is noncompliant" in r.body["detail"]
    # The denial is logged with its reasons.
    mdmtest.wait_for(lambda: "access block: device %s" % bad["device_id"]
                     in server.stderr(), what="the denial logged")
    # No credential, an admin token, a bad value: refused before deciding.
    assert_problem(check(server, None), 401)
    assert check(server, server.token).status in (401, 403)
    assert_problem(check(server, good["device_token"], mfa="maybe"), 400)
    # The device turns compliant: allowed at once (no cache to wait for).
    r = server.api("POST", "/v1/agent/checkin", {"facts": make_facts(2)},
                   token=bad["device_token"])
    assert r.status == 200 and r.body["compliance"] == "compliant"
    assert check(server, bad["device_token"], mfa="true").status == 200
    # Retired: its credential opens nothing.
    r = server.api("POST", "/v1/devices/%s/retire" % bad["device_id"],
                   {"wipe": "none"})
    assert r.status == 200, r.raw
    assert_problem(check(server, bad["device_token"], mfa="true"), 401)
    # Every real decision is counted.
    r = server.api("GET", "/metrics", token=None)
    text = r.raw.decode()
    assert 'mdm_access_decisions_total{result="allow"} 2' in text
    assert 'mdm_access_decisions_total{result="block"} 1' in text
    assert 'mdm_access_decisions_total{result="require_mfa"} 1' in text


def test_report_only_does_not_enforce(setup):
    server, good, bad = setup
    r = server.api("DELETE", "/v1/policies/ConditionalAccessPolicy/"
                   "require-compliant")
    assert r.status in (200, 204), r.raw
    spec = dict(BRIEF_SPEC, state="reportOnly")
    r = server.api("PUT", "/v1/policies/ConditionalAccessPolicy/trial",
                   ca_doc("trial", spec))
    assert r.status == 201, r.raw
    r = check(server, bad["device_token"], mfa="true")
    assert r.status == 200, r.raw
    r = server.api("POST", "/v1/access/evaluate",
                   {"device_id": bad["device_id"],
                    "user": {"mfa_completed": True}})
    assert r.body["decision"] == "allow"
    assert r.body["policies"] == [{
        "name": "trial", "mode": "reportOnly", "applies": True,
        "decision": "block",
        "reasons": ["the device is noncompliant"]}]


def test_mdmctl_access_evaluate(setup, tmp_path):
    server, good, _ = setup
    ctx = tmp_path / "context.json"
    ctx.write_text(json.dumps({"user": {"mfa_completed": False},
                               "device_id": good["device_id"],
                               "client_app_type": "browser"}))
    env = mdmtest.clean_env({"MDM_SERVER": server.url,
                             "MDM_TOKEN": server.token})
    p = mdmtest.run([mdmtest.MDMCTL, "access", "evaluate", "-f", str(ctx),
                     "-o", "table"], env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "decision: require_mfa",
        "  policy require-compliant: multi-factor authentication is "
        "required",
        "policy require-compliant (enabled): require_mfa"]
    p = mdmtest.run([mdmtest.MDMCTL, "access", "evaluate", "-f", str(ctx),
                     "-o", "json"], env=env)
    assert json.loads(p.stdout)["decision"] == "require_mfa"
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    p = mdmtest.run([mdmtest.MDMCTL, "access", "evaluate", "-f", str(bad)],
                    env=env)
    assert p.returncode == 1
    assert p.stderr.strip() == "mdmctl: %s: expected a JSON object" % bad
    p = mdmtest.run([mdmtest.MDMCTL, "access", "evaluate"], env=env)
    assert p.returncode == 2


def test_denial_is_an_event(server_factory, tmp_path):
    """A denied check becomes one access.denied event for the SIEM."""
    events = tmp_path / "events.jsonl"
    srv = server_factory(args=["--events-file", str(events)], name="ev")
    r = srv.api("PUT", "/v1/policies/CompliancePolicy/baseline", COMPLIANCE)
    assert r.status == 201, r.raw
    r = srv.api("PUT", "/v1/policies/ConditionalAccessPolicy/"
                "require-compliant", ca_doc())
    assert r.status == 201, r.raw
    bad = srv.enroll(srv.create_etoken()["token"], make_facts(2, os={
        "name": "Debian GNU/Linux", "version": "10", "build": None,
        "kernel": "4.19.0"}))
    r = check(srv, bad["device_token"], mfa="true", application="crm",
              upn="bob@corp.example")
    assert r.status == 403

    def denied():
        if not events.exists():
            return None
        for line in events.read_text().splitlines():
            e = json.loads(line)
            if e.get("type") == "access.denied":
                return e
        return None
    e = mdmtest.wait_for(denied, what="the access.denied event")
    assert e["deviceId"] == bad["device_id"]
    assert e["userPrincipalName"] == "bob@corp.example"
    assert e["decision"] == "block"
    assert e["application"] == "crm"
    assert e["reasons"] == ["policy require-compliant: the device is "
                            "noncompliant"]
