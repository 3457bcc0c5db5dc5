"""Redeeming an enrollment token is one transaction: 50 clients racing for a
10-use token make exactly 10 devices (docs/api.md: 409 when used up)."""
import threading

from mdmtest import chain
from mdmtest import HTTP_TIMEOUT, http_request, make_facts


def test_fifty_clients_race_for_ten_uses(server):
    et = server.create_etoken(max_uses=10, labels={"batch": "race"})
    n = 50
    results = [None] * n
    barrier = threading.Barrier(n)

    def client(i):
        barrier.wait(timeout=HTTP_TIMEOUT)
        try:
            # Each client its own connection (http_request opens one).
            results[i] = http_request(server.host, server.port, "POST",
                                      "/v1/enroll",
                                      body={"enrollment_token": et["token"],
                                            "facts": make_facts(i)})
        except Exception as e:  # recorded, asserted below
            results[i] = e

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=HTTP_TIMEOUT * 2)
        assert not t.is_alive()

    errors = [r for r in results if isinstance(r, Exception)]
    assert errors == []
    statuses = sorted(r.status for r in results)
    assert statuses == [201] * 10 + [409] * 40
    for r in results:
        if r.status == 409:
            assert r.headers["Content-Type"] == "application/problem+json"
            assert r.body["status"] == 409
    won = sorted(r.body["device_id"] for r in results if r.status == 201)
    assert len(set(won)) == 10
    serials = sorted(make_facts(i)["serial"] for i, r in enumerate(results)
                     if r.status == 201)

    # The API, the devices table and the token's counter agree.
    st, _, lst = server.api("GET", "/v1/devices?limit=100")
    assert st == 200 and lst["next_cursor"] is None
    assert sorted(d["id"] for d in lst["items"]) == won
    assert all(d["labels"] == {"batch": "race"} for d in lst["items"])
    rows = server.q("SELECT id, serial, enrollment_token_id FROM devices")
    assert sorted(r[0] for r in rows) == won
    assert sorted(r[1] for r in rows) == serials
    assert {r[2] for r in rows} == {et["id"]}
    assert server.q1("SELECT count(*) FROM device_status") == 10
    assert server.q1("SELECT uses, max_uses FROM enrollment_tokens "
                     "WHERE id = ?", (et["id"],)) == (10, 10)
    assert sorted(t for (t,) in server.q(
        "SELECT target FROM audit WHERE action = 'device.enroll'")) == won
    st, _, v = server.api("GET", "/v1/audit/verify")
    assert chain(v) == {"ok": True, "records": 12, "first_bad": None}


def _run_all(fns):
    results = [None] * len(fns)
    barrier = threading.Barrier(len(fns))

    def go(i):
        barrier.wait(timeout=HTTP_TIMEOUT)
        try:
            results[i] = fns[i]()
        except Exception as e:  # recorded, asserted by the caller
            results[i] = e

    threads = [threading.Thread(target=go, args=(i,))
               for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=HTTP_TIMEOUT * 2)
        assert not t.is_alive()
    return results


def test_concurrent_patches_lose_no_label(server):
    """20 clients each add their own label to one device at once: the
    merge happens in the store, so all 20 labels are there."""
    dev = server.enroll_many(1)[0]
    path = "/v1/devices/" + dev["device_id"]
    n = 20

    def patch(i):
        return lambda: http_request(server.host, server.port, "PATCH", path,
                                    body={"labels": {"k%02d" % i: "v%d" % i}},
                                    token=server.token)

    results = _run_all([patch(i) for i in range(n)])
    assert [r.status for r in results] == [200] * n, results
    want = {"k%02d" % i: "v%d" % i for i in range(n)}
    assert server.api("GET", path).body["labels"] == want
    assert server.q1("SELECT count(*) FROM audit WHERE action = "
                     "'device.update'") == n


def test_audit_chain_intact_under_concurrent_writes(server):
    """Tokens, enrollment tokens, enrollments and patches all at once: one
    audit record each, numbered 1..N without gaps, and the chain verifies."""
    devs = server.enroll_many(5)
    base = server.q1("SELECT count(*) FROM audit")
    et = server.create_etoken(max_uses=10)
    base += 1
    fns = []
    for i in range(10):
        fns.append(lambda i=i: http_request(
            server.host, server.port, "POST", "/v1/tokens",
            body={"name": "c%d" % i, "role": "auditor"}, token=server.token))
        fns.append(lambda i=i: http_request(
            server.host, server.port, "POST", "/v1/enrollment-tokens",
            body={"max_uses": i + 1}, token=server.token))
        fns.append(lambda i=i: http_request(
            server.host, server.port, "POST", "/v1/enroll",
            body={"enrollment_token": et["token"],
                  "facts": make_facts(100 + i)}))
        fns.append(lambda i=i: http_request(
            server.host, server.port, "PATCH",
            "/v1/devices/" + devs[i % 5]["device_id"],
            body={"labels": {"c%d" % i: "x"}}, token=server.token))
    results = _run_all(fns)
    assert sorted(r.status for r in results) == [200] * 10 + [201] * 30
    seqs = [s for (s,) in server.q("SELECT seq FROM audit ORDER BY seq")]
    assert seqs == list(range(1, base + 41))
    st, _, v = server.api("GET", "/v1/audit/verify")
    assert chain(v) == {"ok": True, "records": base + 40, "first_bad": None}
