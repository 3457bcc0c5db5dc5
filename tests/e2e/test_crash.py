"""kill -9 of mdmd while 200 agents enroll and check in: after a restart,
every enrollment and check-in that got a 2xx is there (acknowledged means
durable), nothing is half-written, and the audit chain verifies."""
import http.client
import math
import queue
import threading
import time

import pytest

from mdmtest import chain
from mdmtest import HTTP_TIMEOUT, http_request, make_facts, parse_time

N_AGENTS = 200
N_THREADS = 32


@pytest.mark.parametrize("with_checkin", [
    pytest.param(True, id="enroll+checkin"),
    pytest.param(False, id="enroll-only"),
])
def test_kill9_while_agents_check_in(server, with_checkin):
    et = server.create_etoken(max_uses=N_AGENTS, labels={"fleet": "crash"})
    todo = queue.Queue()
    for i in range(N_AGENTS):
        todo.put(i)
    lock = threading.Lock()
    enrolled = {}      # device_id -> device token (got a 201)
    checked_in = {}    # device_id -> time the acknowledged check-in was sent
    answers = []       # every HTTP status received
    no_answer = [0]    # requests that got no (complete) answer

    def call(*a, **kw):
        try:
            r = http_request(server.host, server.port, *a, **kw)
        except (OSError, http.client.HTTPException):
            with lock:
                no_answer[0] += 1
            return None
        with lock:
            answers.append(r.status)
        return r

    def agent():
        while True:
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            facts = make_facts(i)
            r = call("POST", "/v1/enroll",
                     body={"enrollment_token": et["token"], "facts": facts})
            if r is None or r.status != 201:
                continue
            dev_id, dev_tok = r.body["device_id"], r.body["device_token"]
            with lock:
                enrolled[dev_id] = dev_tok
                is_half = len(enrolled) == N_AGENTS // 2
            if is_half:
                # Mid-way, from the agent that got there: the other agents
                # have requests in flight (a watcher thread may not get the
                # GIL before they all finish).
                kill()
            if not with_checkin:
                continue
            facts["hostname"] = "checked-in-%d" % i
            sent = time.time()
            r = call("POST", "/v1/agent/checkin", body={"facts": facts},
                     token=dev_tok)
            if r is not None and r.status == 200:
                with lock:
                    checked_in[dev_id] = sent

    killed = threading.Event()

    def kill():
        server.kill9()
        killed.set()

    threads = [threading.Thread(target=agent) for _ in range(N_THREADS)]
    for t in threads:
        t.start()
    assert killed.wait(timeout=120), "half the enrollments never came"
    for t in threads:
        t.join(timeout=HTTP_TIMEOUT * 4)
        assert not t.is_alive()

    assert len(enrolled) >= N_AGENTS // 2
    assert len(enrolled) < N_AGENTS, "all done before the kill: no crash tested"
    assert no_answer[0] > 0
    # Before the kill every answer was a success; bad input never happened.
    assert set(answers) <= {200, 201}, sorted(set(answers))

    server.start()
    st, _, lst = server.api("GET", "/v1/devices?limit=1000")
    assert st == 200 and lst["next_cursor"] is None
    by_id = {d["id"]: d for d in lst["items"]}
    missing = set(enrolled) - set(by_id)
    assert not missing, "acknowledged enrollments lost: %s" % sorted(missing)
    for dev_id, sent in checked_in.items():
        d = by_id[dev_id]
        assert d["last_seen"] is not None
        # The server stamps last_seen (whole seconds) when it handles the
        # check-in, which is after the agent sent it.
        assert parse_time(d["last_seen"]) >= math.floor(sent), (d, sent)
        assert d["hostname"].startswith("checked-in-"), d
    if with_checkin:
        assert checked_in, "no check-in was acknowledged before the kill"
        assert d["facts"]["hostname"] == d["hostname"]

    # Nothing half-written: every device has its status row and its audit
    # record, and the token counted exactly the devices that exist.
    n_dev = server.q1("SELECT count(*) FROM devices")
    assert n_dev == len(by_id)
    assert server.q1("SELECT count(*) FROM device_status") == n_dev
    assert server.q1("SELECT count(*) FROM devices d JOIN device_status s "
                     "ON s.device_id = d.id") == n_dev
    assert server.q1("SELECT count(*) FROM audit WHERE action = "
                     "'device.enroll'") == n_dev
    assert sorted(t for (t,) in server.q(
        "SELECT target FROM audit WHERE action = 'device.enroll'")) == \
        sorted(by_id)
    assert server.q1("SELECT uses FROM enrollment_tokens WHERE id = ?",
                     (et["id"],)) == n_dev
    st, _, v = server.api("GET", "/v1/audit/verify")
    assert st == 200
    assert chain(v) == {"ok": True, "records": 2 + n_dev, "first_bad": None}

    # The acknowledged devices' tokens still work after the restart.
    for dev_id, tok in list(enrolled.items())[:50]:
        r = server.api("POST", "/v1/agent/telemetry",
                       {"events": [{"seq": 1, "type": "agent_started"}]},
                       token=tok)
        assert r.status == 200, r.raw
    # And the token can finish its uses: exactly N_AGENTS devices in all.
    left = N_AGENTS - n_dev
    for i in range(left):
        server.enroll(et["token"], make_facts(1000 + i))
    server.enroll(et["token"], make_facts(5000), expect=409)
    assert server.q1("SELECT count(*) FROM devices") == N_AGENTS
