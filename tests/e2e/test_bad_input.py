"""Bad input never writes: every case gets its 4xx as application/problem+json
(RFC 9457: type, title, status, detail) and the database is row-for-row what
it was before the request (CONTRACT §2: "never a 5xx for bad input; never a
partial write")."""
import hashlib
import hmac
import json
import time
import types

import pytest

from mdmtest import chain
from mdmtest import (assert_problem, b64url, jwt_forge, jwt_parts,
                     jwt_swap_payload, make_facts, random_uuid, raw_request)

JSON = {"Content-Type": "application/json"}


def refused(server, status, method, path, **kw):
    """The request gets `status` as a problem and changes no row."""
    before = server.snapshot()
    r = server.api(method, path, **kw)
    body = assert_problem(r, status)
    assert server.snapshot() == before, "the refused request wrote to the DB"
    return r, body


@pytest.fixture(scope="module")
def world(module_server):
    """A tenant with an auditor token, one device and a spare 50-use
    enrollment token."""
    s = module_server
    w = types.SimpleNamespace(s=s)
    w.owner = s.token
    w.auditor = s.create_token("auditor")
    w.et = s.create_etoken(max_uses=50, labels={"dept": "sales"})
    d = s.enroll(w.et["token"], make_facts(1))
    w.dev_id, w.dev_token = d["device_id"], d["device_token"]
    w.dev = "/v1/devices/" + w.dev_id
    return w


def enroll_body(w, **over):
    b = {"enrollment_token": w.et["token"], "facts": make_facts(99)}
    b.update(over)
    return b


def events(n, start=1):
    return [{"seq": i, "at": "2026-01-01T00:00:00Z", "type": "agent_started",
             "data": {}} for i in range(start, start + n)]


# Each case: (status, method, path, kwargs for api()); a callable path or
# kwargs is given the world.  token "device"/"auditor" pick those tokens.
def C(status, method, path, **kw):
    return (status, method, path, kw)


CASES = {
    # -- malformed JSON --
    "json-truncated": C(400, "POST", "/v1/enrollment-tokens",
                        raw_body='{"ttl_seconds": ', headers=JSON),
    "json-trailing-comma": C(400, "POST", "/v1/tokens",
                             raw_body='{"name": "x", "role": "admin",}',
                             headers=JSON),
    "json-not-json-enroll": C(400, "POST", "/v1/enroll", token=None,
                              raw_body="enrollment_token=x", headers=JSON),
    "json-patch-unclosed": C(400, "PATCH", "DEV",
                             raw_body='{"labels": {"a": "b"}', headers=JSON),
    "json-checkin-bare-keys": C(400, "POST", "/v1/agent/checkin",
                                token="device", raw_body="{facts: {}}",
                                headers=JSON),
    "json-telemetry-bad-array": C(400, "POST", "/v1/agent/telemetry",
                                  token="device", raw_body='{"events": [}',
                                  headers=JSON),
    "json-top-level-array": C(400, "POST", "/v1/enrollment-tokens",
                              raw_body='[{"max_uses": 1}]', headers=JSON),
    "json-top-level-string": C(400, "POST", "/v1/enrollment-tokens",
                               raw_body='"max_uses"', headers=JSON),
    "json-trailing-garbage": C(400, "POST", "/v1/enrollment-tokens",
                               raw_body='{} {}', headers=JSON),
    "json-duplicate-key": C(400, "POST", "/v1/enrollment-tokens",
                            raw_body='{"max_uses": 1, "max_uses": 2}',
                            headers=JSON),
    "json-nul-in-string": C(400, "POST", "/v1/tokens",
                            raw_body='{"name": "a\\u0000b", "role": "admin"}',
                            headers=JSON),
    "json-invalid-utf8": C(400, "POST", "/v1/tokens",
                           raw_body=b'{"name": "\xff\xfe", "role": "admin"}',
                           headers=JSON),
    "json-lone-surrogate": C(400, "POST", "/v1/tokens",
                             raw_body='{"name": "\\ud800", "role": "admin"}',
                             headers=JSON),
    "json-deep-nesting": C(400, "POST", "/v1/enrollment-tokens",
                           raw_body='{"labels": ' + "[" * 100000 +
                           "]" * 100000 + "}", headers=JSON),
    "json-integer-overflow": C(400, "POST", "/v1/enrollment-tokens",
                               raw_body='{"max_uses": 99999999999999999999999}',
                               headers=JSON),
    "json-real-overflow": C(400, "POST", "/v1/enrollment-tokens",
                            raw_body='{"max_uses": 1e400}', headers=JSON),
    "json-empty-body": C(400, "POST", "/v1/enrollment-tokens", raw_body="",
                         headers=JSON),
    # -- content type --
    "ctype-text-plain": C(415, "POST", "/v1/enrollment-tokens",
                          raw_body='{"max_uses": 1}',
                          headers={"Content-Type": "text/plain"}),
    "ctype-missing": C(415, "POST", "/v1/enrollment-tokens",
                       raw_body='{"max_uses": 1}'),
    "ctype-form": C(415, "POST", "/v1/enroll", token=None,
                    raw_body="enrollment_token=x&facts=y",
                    headers={"Content-Type":
                             "application/x-www-form-urlencoded"}),
    "ctype-jsonp": C(415, "POST", "/v1/tokens",
                     raw_body='{"name": "x", "role": "admin"}',
                     headers={"Content-Type": "application/jsonp"}),
    "ctype-json-patch": C(415, "PATCH", "DEV",
                          raw_body='{"labels": {"a": "b"}}',
                          headers={"Content-Type":
                                   "application/json-patch+json"}),
    "ctype-checkin-xml": C(415, "POST", "/v1/agent/checkin", token="device",
                           raw_body='{"facts": {}}',
                           headers={"Content-Type": "application/xml"}),
    # -- missing fields --
    "missing-token-role": C(400, "POST", "/v1/tokens", body={"name": "x"}),
    "missing-token-name": C(400, "POST", "/v1/tokens", body={"role": "admin"}),
    "missing-token-all": C(400, "POST", "/v1/tokens", body={}),
    "missing-enroll-token": C(400, "POST", "/v1/enroll", token=None,
                              body={"facts": make_facts(2)}),
    "missing-enroll-facts": C(400, "POST", "/v1/enroll", token=None,
                              body=lambda w: {"enrollment_token":
                                              w.et["token"]}),
    "missing-checkin-facts": C(400, "POST", "/v1/agent/checkin",
                               token="device", body={}),
    "missing-telemetry-events": C(400, "POST", "/v1/agent/telemetry",
                                  token="device", body={"dropped": 1}),
    "missing-event-seq": C(400, "POST", "/v1/agent/telemetry", token="device",
                           body={"events": [{"type": "agent_started"}]}),
    "missing-event-type": C(400, "POST", "/v1/agent/telemetry",
                            token="device", body={"events": [{"seq": 1}]}),
    "missing-patch-all": C(400, "PATCH", "DEV", body={}),
    # -- unknown fields --
    "unknown-etoken": C(400, "POST", "/v1/enrollment-tokens",
                        body={"max_uses": 1, "color": "red"}),
    "unknown-token": C(400, "POST", "/v1/tokens",
                       body={"name": "x", "role": "admin", "scopes": ["*"]}),
    "unknown-enroll": C(400, "POST", "/v1/enroll", token=None,
                        body=lambda w: enroll_body(w, extra=1)),
    "unknown-checkin": C(400, "POST", "/v1/agent/checkin", token="device",
                         body={"facts": make_facts(1), "extra": 1}),
    "unknown-telemetry": C(400, "POST", "/v1/agent/telemetry", token="device",
                           body={"events": events(1), "x": 1}),
    "unknown-event-field": C(400, "POST", "/v1/agent/telemetry",
                             token="device",
                             body={"events": [{"seq": 1, "type": "x",
                                               "level": "high"}]}),
    "unknown-patch": C(400, "PATCH", "DEV",
                       body={"labels": {"a": "b"}, "state": "retired"}),
    # -- wrong types and ranges --
    "type-ttl-string": C(400, "POST", "/v1/enrollment-tokens",
                         body={"ttl_seconds": "3600"}),
    "type-ttl-real": C(400, "POST", "/v1/enrollment-tokens",
                       body={"ttl_seconds": 3600.5}),
    "type-ttl-null": C(400, "POST", "/v1/enrollment-tokens",
                       body={"ttl_seconds": None}),
    "range-ttl-59": C(400, "POST", "/v1/enrollment-tokens",
                      body={"ttl_seconds": 59}),
    "range-ttl-too-long": C(400, "POST", "/v1/enrollment-tokens",
                            body={"ttl_seconds": 31536001}),
    "range-uses-0": C(400, "POST", "/v1/enrollment-tokens",
                      body={"max_uses": 0}),
    "range-uses-negative": C(400, "POST", "/v1/enrollment-tokens",
                             body={"max_uses": -1}),
    "range-uses-100001": C(400, "POST", "/v1/enrollment-tokens",
                           body={"max_uses": 100001}),
    "type-uses-bool": C(400, "POST", "/v1/enrollment-tokens",
                        body={"max_uses": True}),
    "type-uses-real": C(400, "POST", "/v1/enrollment-tokens",
                        body={"max_uses": 1.0}),
    "type-labels-array": C(400, "POST", "/v1/enrollment-tokens",
                           body={"labels": ["dept=sales"]}),
    "type-labels-string": C(400, "POST", "/v1/enrollment-tokens",
                            body={"labels": "dept=sales"}),
    "type-label-value-int": C(400, "POST", "/v1/enrollment-tokens",
                              body={"labels": {"k": 1}}),
    "type-label-value-null": C(400, "POST", "/v1/enrollment-tokens",
                               body={"labels": {"k": None}}),
    "label-empty-key": C(400, "POST", "/v1/enrollment-tokens",
                         body={"labels": {"": "v"}}),
    "label-bad-chars": C(400, "POST", "/v1/enrollment-tokens",
                         body={"labels": {"k": "v v"}}),
    "label-value-too-long": C(400, "POST", "/v1/enrollment-tokens",
                              body={"labels": {"k": "v" * 64}}),
    "label-too-many": C(400, "POST", "/v1/enrollment-tokens",
                        body={"labels": {"k%d" % i: "v" for i in range(65)}}),
    "type-token-name-int": C(400, "POST", "/v1/tokens",
                             body={"name": 5, "role": "admin"}),
    "range-token-name-empty": C(400, "POST", "/v1/tokens",
                                body={"name": "", "role": "admin"}),
    "range-token-name-long": C(400, "POST", "/v1/tokens",
                               body={"name": "n" * 65, "role": "admin"}),
    "token-role-unknown": C(400, "POST", "/v1/tokens",
                            body={"name": "x", "role": "root"}),
    "token-role-case": C(400, "POST", "/v1/tokens",
                         body={"name": "x", "role": "OWNER"}),
    "type-enroll-token-int": C(400, "POST", "/v1/enroll", token=None,
                               body={"enrollment_token": 5,
                                     "facts": make_facts(2)}),
    "type-enroll-facts-string": C(400, "POST", "/v1/enroll", token=None,
                                  body=lambda w: enroll_body(w, facts="x")),
    "type-enroll-facts-array": C(400, "POST", "/v1/enroll", token=None,
                                 body=lambda w: enroll_body(w, facts=[])),
    "type-enroll-serial-int": C(400, "POST", "/v1/enroll", token=None,
                                body=lambda w: enroll_body(
                                    w, facts=make_facts(3, serial=5))),
    "type-enroll-os-string": C(400, "POST", "/v1/enroll", token=None,
                               body=lambda w: enroll_body(
                                   w, facts=make_facts(3, os="linux"))),
    "type-enroll-os-version-int": C(400, "POST", "/v1/enroll", token=None,
                                    body=lambda w: enroll_body(
                                        w, facts=make_facts(
                                            3, os={"name": "x",
                                                   "version": 12}))),
    "range-enroll-hostname-long": C(400, "POST", "/v1/enroll", token=None,
                                    body=lambda w: enroll_body(
                                        w, facts=make_facts(
                                            3, hostname="h" * 257))),
    "toobig-enroll-facts": C(413, "POST", "/v1/enroll", token=None,
                             body=lambda w: enroll_body(
                                 w, facts=make_facts(3, blob="x" * 70000))),
    "type-checkin-facts-null": C(400, "POST", "/v1/agent/checkin",
                                 token="device", body={"facts": None}),
    "type-checkin-model-obj": C(400, "POST", "/v1/agent/checkin",
                                token="device",
                                body={"facts": make_facts(1, model={})}),
    "toobig-checkin-facts": C(413, "POST", "/v1/agent/checkin",
                              token="device",
                              body={"facts": make_facts(1,
                                                        blob="x" * 70000)}),
    "type-patch-upn-int": C(400, "PATCH", "DEV",
                            body={"user_principal_name": 5}),
    "type-patch-labels-null": C(400, "PATCH", "DEV", body={"labels": None}),
    # -- telemetry --
    "telemetry-seq-0": C(400, "POST", "/v1/agent/telemetry", token="device",
                         body={"events": [{"seq": 0, "type": "x"}]}),
    "telemetry-seq-negative": C(400, "POST", "/v1/agent/telemetry",
                                token="device",
                                body={"events": [{"seq": -5, "type": "x"}]}),
    "telemetry-seq-string": C(400, "POST", "/v1/agent/telemetry",
                              token="device",
                              body={"events": [{"seq": "1", "type": "x"}]}),
    "telemetry-seq-real": C(400, "POST", "/v1/agent/telemetry",
                            token="device",
                            body={"events": [{"seq": 1.5, "type": "x"}]}),
    "telemetry-1001-events": C(413, "POST", "/v1/agent/telemetry",
                               token="device", body={"events": events(1001)}),
    "telemetry-at-words": C(400, "POST", "/v1/agent/telemetry",
                            token="device",
                            body={"events": [{"seq": 1, "type": "x",
                                              "at": "yesterday"}]}),
    "telemetry-at-feb-30": C(400, "POST", "/v1/agent/telemetry",
                             token="device",
                             body={"events": [{"seq": 1, "type": "x",
                                               "at": "2026-02-30T00:00:00Z"}]}),
    "telemetry-at-no-zone": C(400, "POST", "/v1/agent/telemetry",
                              token="device",
                              body={"events": [{"seq": 1, "type": "x",
                                                "at": "2026-01-01T00:00:00"}]}),
    "telemetry-at-space": C(400, "POST", "/v1/agent/telemetry",
                            token="device",
                            body={"events": [{"seq": 1, "type": "x",
                                              "at": "2026-01-01 00:00:00Z"}]}),
    "telemetry-at-number": C(400, "POST", "/v1/agent/telemetry",
                             token="device",
                             body={"events": [{"seq": 1, "type": "x",
                                               "at": 1767225600}]}),
    "telemetry-type-empty": C(400, "POST", "/v1/agent/telemetry",
                              token="device",
                              body={"events": [{"seq": 1, "type": ""}]}),
    "telemetry-type-long": C(400, "POST", "/v1/agent/telemetry",
                             token="device",
                             body={"events": [{"seq": 1, "type": "t" * 65}]}),
    "telemetry-events-object": C(400, "POST", "/v1/agent/telemetry",
                                 token="device", body={"events": {}}),
    "telemetry-event-not-object": C(400, "POST", "/v1/agent/telemetry",
                                    token="device", body={"events": [5]}),
    "telemetry-dropped-negative": C(400, "POST", "/v1/agent/telemetry",
                                    token="device",
                                    body={"events": [], "dropped": -1}),
    "telemetry-dropped-string": C(400, "POST", "/v1/agent/telemetry",
                                  token="device",
                                  body={"events": [], "dropped": "3"}),
    # One bad event among good ones: nothing of the batch is stored.
    "telemetry-one-bad-in-batch": C(400, "POST", "/v1/agent/telemetry",
                                    token="device",
                                    body={"events": events(5) +
                                          [{"seq": 6, "type": "x",
                                            "at": "bad"}] + events(4, 7),
                                          "dropped": 3}),
    # -- credentials --
    "auth-none-devices": C(401, "GET", "/v1/devices", token=None),
    "auth-none-etoken": C(401, "POST", "/v1/enrollment-tokens", token=None,
                          body={}),
    "auth-none-checkin": C(401, "POST", "/v1/agent/checkin", token=None,
                           body={"facts": make_facts(1)}),
    "auth-basic": C(401, "GET", "/v1/devices", token=None,
                    headers={"Authorization": "Basic dXNlcjpwYXNz"}),
    "auth-empty-bearer": C(401, "GET", "/v1/devices", token=None,
                           headers={"Authorization": "Bearer "}),
    "auth-unknown-api-token": C(401, "GET", "/v1/devices",
                                token="mdm_at_" + "A" * 43),
    "auth-api-token-suffix": C(401, "GET", "/v1/devices",
                               token=lambda w: w.owner + "x"),
    "auth-garbage-jwt": C(401, "POST", "/v1/agent/checkin", token="abc.def.ghi",
                          body={"facts": make_facts(1)}),
    "auth-not-a-jwt": C(401, "POST", "/v1/agent/checkin", token="x" * 5000,
                        body={"facts": make_facts(1)}),
    "auth-enroll-token-as-device": C(401, "POST", "/v1/agent/checkin",
                                     token=lambda w: w.et["token"],
                                     body={"facts": make_facts(1)}),
    "auth-device-token-as-enroll": C(401, "POST", "/v1/enroll", token=None,
                                     body=lambda w: enroll_body(
                                         w, enrollment_token=w.dev_token)),
    "auth-enroll-bad-signature": C(401, "POST", "/v1/enroll", token=None,
                                   body=lambda w: enroll_body(
                                       w, enrollment_token=w.et["token"][:-4] +
                                       ("AAAA" if not w.et["token"].endswith(
                                           "AAAA") else "BBBB"))),
    "auth-enroll-payload-changed": C(401, "POST", "/v1/enroll", token=None,
                                 body=lambda w: enroll_body(
                                     w, enrollment_token=jwt_swap_payload(
                                         w.et["token"], max_uses=1000))),
    "auth-device-token-sub-swapped": C(401, "POST", "/v1/agent/checkin",
                                       token=lambda w: jwt_swap_payload(
                                           w.dev_token, sub=random_uuid()),
                                       body={"facts": make_facts(1)}),
    # -- device credentials on admin routes, and the reverse --
    "device-on-devices": C(403, "GET", "/v1/devices", token="device"),
    "device-on-device-get": C(403, "GET", "DEV", token="device"),
    "device-on-etoken": C(403, "POST", "/v1/enrollment-tokens", token="device",
                          body={}),
    "device-on-patch": C(403, "PATCH", "DEV", token="device",
                         body={"labels": {"a": "b"}}),
    "device-on-audit": C(403, "GET", "/v1/audit", token="device"),
    "device-on-tokens": C(403, "POST", "/v1/tokens", token="device",
                          body={"name": "x", "role": "owner"}),
    "owner-on-checkin": C(403, "POST", "/v1/agent/checkin",
                          body={"facts": make_facts(1)}),
    "owner-on-telemetry": C(403, "POST", "/v1/agent/telemetry",
                            body={"events": events(1)}),
    # -- auditor on write routes --
    "auditor-etoken": C(403, "POST", "/v1/enrollment-tokens", token="auditor",
                        body={}),
    "auditor-etoken-revoke": C(403, "DELETE",
                               lambda w: "/v1/enrollment-tokens/" + w.et["id"],
                               token="auditor"),
    "auditor-patch": C(403, "PATCH", "DEV", token="auditor",
                       body={"labels": {"a": "b"}}),
    "auditor-token-create": C(403, "POST", "/v1/tokens", token="auditor",
                              body={"name": "x", "role": "owner"}),
    "auditor-token-delete": C(403, "DELETE", lambda w: "/v1/tokens/" +
                              w.s.owner_token_id(), token="auditor"),
    # -- routes --
    "path-unknown": C(404, "GET", "/v1/nope"),
    "path-unknown-no-auth": C(404, "GET", "/v1/nope", token=None),
    "path-v2": C(404, "GET", "/v2/devices"),
    "path-root": C(404, "GET", "/"),
    "path-trailing-slash": C(404, "GET", "/v1/devices/"),
    "path-extra-segment": C(404, "GET", lambda w: "/v1/devices/" + w.dev_id +
                            "/x"),
    "path-metrics-post": C(404, "POST", "/v1/metrics", body={}),
    "method-delete-devices": C(405, "DELETE", "/v1/devices"),
    "method-put-healthz": C(405, "PUT", "/healthz", token=None),
    "method-get-enroll": C(405, "GET", "/v1/enroll", token=None),
    "method-post-device": C(405, "POST", "DEV", body={}),
    "method-get-checkin": C(405, "GET", "/v1/agent/checkin", token="device"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused(world, case):
    status, method, path, kw = CASES[case]
    w = world
    kw = dict(kw)
    if callable(path):
        path = path(w)
    elif path == "DEV":
        path = w.dev
    for k in ("body", "token"):
        if callable(kw.get(k)):
            kw[k] = kw[k](w)
    tok = kw.get("token", "owner")
    kw["token"] = {"owner": w.owner, "device": w.dev_token,
                   "auditor": w.auditor}.get(tok, tok)
    r, body = refused(w.s, status, method, path, **kw)
    if status == 401:
        assert r.headers["WWW-Authenticate"] == "Bearer"
    if status == 405:
        assert r.headers["Allow"]
    # The spare token was never consumed by a refused enrollment.
    assert w.s.q1("SELECT uses FROM enrollment_tokens WHERE id = ?",
                  (w.et["id"],)) == 1


def test_accepts_json_with_charset(world):
    r = world.s.api("POST", "/v1/enrollment-tokens",
                    raw_body='{"max_uses": 2}',
                    headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status == 201 and r.body["max_uses"] == 2


def test_method_not_allowed_lists_every_method(world):
    """RFC 9110 §15.5.6: a 405 has an Allow header with the methods the
    resource supports."""
    r, _ = refused(world.s, 405, "POST", world.dev, body={})
    allowed = {m.strip() for m in r.headers["Allow"].split(",")}
    assert allowed == {"GET", "PATCH"}
    r, _ = refused(world.s, 405, "PUT", "/v1/tokens", body={})
    allowed = {m.strip() for m in r.headers["Allow"].split(",")}
    assert allowed == {"GET", "POST"}



def test_bearer_scheme_is_case_insensitive(world):
    """RFC 9110 §11.1: the auth scheme is case-insensitive."""
    r = world.s.api("GET", "/v1/devices", token=None,
                    headers={"Authorization": "bearer " + world.owner})
    assert r.status == 200



# ---- oversized bodies ------------------------------------------------------

def _head(w, length=None, chunked=False, expect=False):
    h = ["POST /v1/enrollment-tokens HTTP/1.1", "Host: 127.0.0.1",
         "Content-Type: application/json",
         "Authorization: Bearer " + w.owner, "Connection: close"]
    if chunked:
        h.append("Transfer-Encoding: chunked")
    else:
        h.append("Content-Length: %d" % length)
    if expect:
        h.append("Expect: 100-continue")
    return "\r\n".join(h)


def _body(total, chunked=False, piece=64 * 1024):
    # A valid JSON object, padded with spaces: only its size is wrong.
    data = b'{"max_uses": 1' + b" " * (total - 16) + b"}\n"
    for i in range(0, len(data), piece):
        c = data[i:i + piece]
        yield (b"%x\r\n" % len(c) + c + b"\r\n") if chunked else c
    if chunked:
        yield b"0\r\n\r\n"


@pytest.mark.parametrize("how", ["content-length", "expect-100",
                                 "chunked", "one-byte-over"])
def test_body_too_large(world, how):
    s = world.s
    total = {"one-byte-over": 1024 * 1024 + 1,
             "chunked": 2 * 1024 * 1024}.get(how, 10 * 1024 * 1024)
    before = s.snapshot()
    r = raw_request(s.host, s.port,
                    _head(world, total, chunked=how == "chunked",
                          expect=how == "expect-100"),
                    _body(total, chunked=how == "chunked"),
                    expect_continue=how == "expect-100")
    assert_problem(r, 413)
    assert s.snapshot() == before
    # The server is fine afterwards.
    assert s.api("GET", "/healthz").status == 200


def test_body_at_the_limit_is_read(world):
    """Exactly 1 MiB is allowed: the answer is about its content (201)."""
    s = world.s
    total = 1024 * 1024
    r = raw_request(s.host, s.port, _head(world, total), _body(total))
    assert r.status == 201, r.raw


# ---- enrollment tokens that must not work ----------------------------------

def test_expired_enrollment_token(server):
    et = server.create_etoken(max_uses=5)
    # The JWT is still valid; the record says it expired.
    n = server.execute("UPDATE enrollment_tokens SET expires_at = ? "
                       "WHERE id = ?", (int(time.time()) - 10, et["id"]))
    assert n == 1
    _, body = refused(server, 401, "POST", "/v1/enroll", token=None,
                      body={"enrollment_token": et["token"],
                            "facts": make_facts(1)})
    assert "expired" in body["detail"]
    assert server.q1("SELECT uses FROM enrollment_tokens") == 0
    assert server.q1("SELECT count(*) FROM devices") == 0


def test_used_up_enrollment_token(server):
    et = server.create_etoken()  # one use
    server.enroll(et["token"], make_facts(1))
    refused(server, 409, "POST", "/v1/enroll", token=None,
            body={"enrollment_token": et["token"], "facts": make_facts(2)})
    assert server.q1("SELECT uses FROM enrollment_tokens") == 1
    assert server.q1("SELECT count(*) FROM devices") == 1
    et2 = server.create_etoken(max_uses=2)
    server.enroll(et2["token"], make_facts(3))
    server.enroll(et2["token"], make_facts(4))
    refused(server, 409, "POST", "/v1/enroll", token=None,
            body={"enrollment_token": et2["token"], "facts": make_facts(5)})
    assert server.q1("SELECT uses FROM enrollment_tokens WHERE id = ?",
                     (et2["id"],)) == 2


def test_tenants_are_isolated(server):
    default_id = server.tenant_id()
    et = server.create_etoken(max_uses=3)
    dev = server.enroll(et["token"], make_facts(1))

    acme_id, acme = server.create_tenant("acme")
    assert acme_id != default_id
    assert server.tenant_id("acme") == acme_id

    # acme sees none of default's devices.
    r = server.api("GET", "/v1/devices", token=acme)
    assert r.status == 200 and r.body == {"items": [], "next_cursor": None}
    refused(server, 404, "GET", "/v1/devices/" + dev["device_id"], token=acme)
    refused(server, 404, "PATCH", "/v1/devices/" + dev["device_id"],
            token=acme, body={"labels": {"owned": "acme"}})
    r = server.api("GET", "/v1/audit", token=acme)
    assert [(i["action"], i["target"]) for i in r.body["items"]] == \
        [("tenant.create", acme_id)]
    assert [t["role"] for t in server.api("GET", "/v1/tokens",
                                          token=acme).body["items"]] == \
        ["owner"]

    acme_et = server.create_etoken(token=acme, max_uses=3)
    assert jwt_parts(acme_et["token"])[1]["tenant"] == acme_id

    # default's token claiming to be acme's (and the reverse): 401.
    forged = jwt_swap_payload(et["token"], tenant=acme_id)
    refused(server, 401, "POST", "/v1/enroll", token=None,
            body={"enrollment_token": forged, "facts": make_facts(2)})
    forged = jwt_swap_payload(acme_et["token"], tenant=default_id)
    refused(server, 401, "POST", "/v1/enroll", token=None,
            body={"enrollment_token": forged, "facts": make_facts(3)})
    # Also a device token moved to the other tenant.
    forged = jwt_swap_payload(dev["device_token"], tenant=acme_id)
    refused(server, 401, "POST", "/v1/agent/checkin", token=forged,
            body={"facts": make_facts(1)})
    # A token naming a tenant that does not exist.
    forged = jwt_swap_payload(et["token"], tenant=random_uuid())
    refused(server, 401, "POST", "/v1/enroll", token=None,
            body={"enrollment_token": forged, "facts": make_facts(2)})

    # acme's own token enrolls into acme only.
    adev = server.enroll(acme_et["token"], make_facts(9))
    assert server.q1("SELECT tenant_id FROM devices WHERE id = ?",
                     (adev["device_id"],)) == acme_id
    ids = [d["id"] for d in server.api("GET", "/v1/devices",
                                       token=acme).body["items"]]
    assert ids == [adev["device_id"]]
    ids = [d["id"] for d in server.api("GET", "/v1/devices").body["items"]]
    assert ids == [dev["device_id"]]
    refused(server, 404, "GET", "/v1/devices/" + adev["device_id"])
    # Each tenant's chain is its own and intact.
    assert chain(server.api("GET", "/v1/audit/verify", token=acme).body) == \
        {"ok": True, "records": 3, "first_bad": None}
    assert chain(server.api("GET", "/v1/audit/verify").body) == \
        {"ok": True, "records": 3, "first_bad": None}


def _hs256(header, payload, key):
    h = b64url(json.dumps(header, separators=(",", ":")))
    p = b64url(json.dumps(payload, separators=(",", ":")))
    sig = hmac.new(key, ("%s.%s" % (h, p)).encode(), hashlib.sha256).digest()
    return "%s.%s.%s" % (h, p, b64url(sig))


def test_unsigned_and_hmac_tokens_are_refused(server):
    et = server.create_etoken(max_uses=10)
    dev = server.enroll(et["token"], make_facts(1))
    _, claims, sig = jwt_parts(et["token"])
    _, dclaims, dsig = jwt_parts(dev["device_token"])
    pem, kid = server.q("SELECT private_pem, kid FROM tenant_keys")[0]

    none_hdr = {"alg": "none", "typ": "JWT"}
    bad_enroll = [
        jwt_forge(none_hdr, claims, ""),
        jwt_forge(none_hdr, claims, sig),
        jwt_forge({"alg": "None", "typ": "JWT"}, claims, ""),
        jwt_forge({"alg": "ES256", "typ": "JWT", "crit": ["exp"]}, claims,
                  sig),
        _hs256({"alg": "HS256", "typ": "JWT"}, claims, b"secret"),
        _hs256({"alg": "HS256", "typ": "JWT", "kid": kid}, claims,
               pem.encode()),
        _hs256({"alg": "HS256", "typ": "JWT"}, claims, kid.encode()),
        jwt_forge({"alg": "ES256", "typ": "JWT"}, claims, ""),
    ]
    for tok in bad_enroll:
        refused(server, 401, "POST", "/v1/enroll", token=None,
                body={"enrollment_token": tok, "facts": make_facts(2)})
    bad_device = [
        jwt_forge(none_hdr, dclaims, ""),
        jwt_forge(none_hdr, dclaims, dsig),
        _hs256({"alg": "HS256", "typ": "JWT"}, dclaims, b"secret"),
        _hs256({"alg": "HS256", "typ": "JWT", "kid": kid}, dclaims,
               pem.encode()),
    ]
    for tok in bad_device:
        refused(server, 401, "POST", "/v1/agent/checkin", token=tok,
                body={"facts": make_facts(1)})
        refused(server, 401, "POST", "/v1/agent/telemetry", token=tok,
                body={"events": events(1)})
    # The genuine tokens still work.
    assert server.api("POST", "/v1/agent/telemetry", {"events": events(1)},
                      token=dev["device_token"]).status == 200
    assert server.q1("SELECT uses FROM enrollment_tokens") == 1
