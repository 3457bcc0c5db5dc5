"""GET /metrics (docs/metrics.md) scraped by a real Prometheus (Debian's
prometheus, started here on a free loopback port with a 1 s scrape interval
and its data in a temp dir).  The brief's query
`sum by (complianceState) (mdm_device_compliance{region="us-east"})`, run
through Prometheus' HTTP API, must give exactly the devices this test made
compliant and non-compliant, and follow them when they change; every query
of deploy/grafana/mdm-dashboard.json must be one Prometheus accepts; the
exposition must pass `promtool check metrics`."""
import json
import os
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request

import pytest
import yaml

import mdmtest
from mdmtest import make_facts, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
DASHBOARD = os.path.join(HERE, "..", "..", "deploy", "grafana",
                         "mdm-dashboard.json")
SCRAPE_CONFIG = os.path.join(HERE, "..", "..", "deploy", "prometheus",
                             "prometheus.yml")
BRIEF_QUERY = 'sum by (complianceState) (mdm_device_compliance{region="us-east"})'

POLICY = {"apiVersion": "mdm/v1", "kind": "CompliancePolicy",
          "metadata": {"name": "baseline"},
          "spec": {"rules": [{"name": "os", "fact": "os.version",
                              "op": "version_ge", "value": "12"}]}}


def old_os(i):
    return make_facts(i, os={"name": "Debian GNU/Linux", "version": "10",
                             "build": None, "kernel": "4.19.0-26-amd64"})


def scrape(server, token=None):
    r = server.api("GET", "/metrics", token=token)
    return r


def metrics_text(server, token=None):
    host, port = "127.0.0.1", server.port
    req = urllib.request.Request("http://%s:%d/metrics" % (host, port))
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
        ctype = resp.headers["Content-Type"]
        return ctype, resp.read().decode()


def samples(text):
    """{(name, frozenset(labels)): value} of an exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, value = line.rsplit(" ", 1)
        if "{" in name_labels:
            name, rest = name_labels.split("{", 1)
            labels = {}
            for part in rest.rstrip("}").split('",'):
                k, v = part.split("=", 1)
                labels[k] = v.strip('"')
            key = (name, frozenset(labels.items()))
        else:
            key = (name_labels, frozenset())
        out[key] = float(value)
    return out


def value(s, name, **labels):
    return s.get((name, frozenset(labels.items())))


class Prometheus:
    def __init__(self, workdir, target_port, token_file=None):
        self.dir = str(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self.port = mdmtest.free_port_closed()
        # deploy/prometheus/prometheus.yml's job (with its relabeling), on
        # this mdmd and scraped every second.
        with open(SCRAPE_CONFIG) as f:
            job = yaml.safe_load(f)["scrape_configs"][0]
        job.update({"scrape_interval": "1s", "scrape_timeout": "1s",
                    "static_configs": [
                        {"targets": ["127.0.0.1:%d" % target_port]}]})
        if token_file:
            job["authorization"] = {"type": "Bearer",
                                    "credentials_file": token_file}
        conf = os.path.join(self.dir, "prometheus.yml")
        with open(conf, "w") as f:
            json.dump({"global": {"scrape_interval": "1s",
                                  "evaluation_interval": "1s"},
                       "scrape_configs": [job]}, f)   # JSON is YAML
        self.log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file=" + conf,
             "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        wait_for(self._ready, timeout=30, what="prometheus ready")

    def _ready(self):
        assert self.proc.poll() is None, "prometheus exited"
        try:
            with urllib.request.urlopen(
                    "http://127.0.0.1:%d/-/ready" % self.port, timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, q):
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (
            self.port, urllib.parse.urlencode({"query": q}))
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            return json.load(e)

    def targets_up(self):
        r = self.query('up{job="mdm"}')
        res = r["data"]["result"]
        return bool(res) and res[0]["value"][1] == "1"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(20)
        self.log.close()


def by_state(prom, q=BRIEF_QUERY):
    r = prom.query(q)
    assert r["status"] == "success", r
    return {x["metric"].get("complianceState"): int(float(x["value"][1]))
            for x in r["data"]["result"]}


pytestmark = pytest.mark.skipif(
    not (shutil.which("prometheus") and shutil.which("promtool")),
    reason="prometheus is not installed")


@pytest.fixture
def srv(server_factory):
    return server_factory(args=["--region", "us-east"], name="metrics")


def test_brief_query_through_prometheus(srv, tmp_path):
    r = srv.api("PUT", "/v1/policies/CompliancePolicy/baseline", POLICY)
    assert r.status == 201, r.raw
    et = srv.create_etoken(max_uses=5)["token"]
    good = [srv.enroll(et, make_facts(i), i=i) for i in range(3)]
    bad = [srv.enroll(et, old_os(10 + i)) for i in range(2)]
    # Another tenant in another region must not count in us-east.
    _, other_tok = srv.create_tenant("acme", region="eu-west")
    r = srv.api("POST", "/v1/enrollment-tokens", {"max_uses": 1},
                token=other_tok)
    assert r.status == 201, r.raw
    srv.enroll(r.body["token"], make_facts(50))

    prom = Prometheus(tmp_path / "prom", srv.port)
    try:
        wait_for(prom.targets_up, timeout=30, what="mdmd scraped")
        wait_for(lambda: by_state(prom) == {"compliant": 3,
                                            "noncompliant": 2},
                 timeout=30, what="the brief's query: 3 compliant, 2 not")
        # The other tenant: its own region, "unknown" (no policy there).
        assert by_state(prom, 'sum by (complianceState) '
                        '(mdm_device_compliance{region="eu-west"})') == \
            {"unknown": 1}
        # A device turns compliant: the next scrapes say so.
        r = srv.api("POST", "/v1/agent/checkin", {"facts": make_facts(10)},
                    token=bad[0]["device_token"])
        assert r.status == 200 and r.body["compliance"] == "compliant"
        wait_for(lambda: by_state(prom) == {"compliant": 4,
                                            "noncompliant": 1},
                 timeout=30, what="the query after the change")
        # Retired devices leave the gauge.
        r = srv.api("POST", "/v1/devices/%s/retire" % good[0]["device_id"],
                    {"wipe": "none"})
        assert r.status == 200, r.raw
        wait_for(lambda: by_state(prom) == {"compliant": 3,
                                            "noncompliant": 1},
                 timeout=30, what="the query after a retirement")

        # Every query of the Grafana dashboard is valid PromQL here.
        with open(DASHBOARD) as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        assert len(exprs) >= 9
        assert any("mdm_device_compliance{region=" in e for e in exprs)
        for e in exprs:
            q = e.replace("$region", "us-east").replace("$tenant", ".*")
            r = prom.query(q)
            assert r["status"] == "success", (e, r)
        # The brief's panel itself returns data.
        r = prom.query(exprs[0].replace("$region", "us-east"))
        assert r["data"]["result"], r
    finally:
        prom.stop()


def test_exposition_is_valid_and_true(srv):
    r = srv.api("PUT", "/v1/policies/CompliancePolicy/baseline", POLICY)
    assert r.status == 201, r.raw
    et = srv.create_etoken(max_uses=3, labels={"department": "sales"})
    devs = [srv.enroll(et["token"], make_facts(i), i=i) for i in range(2)]
    devs.append(srv.enroll(et["token"], old_os(9)))
    for d in devs:
        r = srv.api("POST", "/v1/agent/checkin", {"facts": make_facts(0)},
                    token=d["device_token"])
        assert r.status == 200
    r = srv.api("POST", "/v1/devices/%s/commands" % devs[0]["device_id"],
                {"type": "lock"})
    assert r.status == 201
    srv.api("GET", "/v1/devices/%s" % devs[0]["device_id"])
    srv.api("GET", "/v1/devices/not-a-uuid")
    srv.api("GET", "/nowhere", token=None)

    ctype, text = metrics_text(srv)
    assert ctype == "text/plain; version=0.0.4; charset=utf-8"
    p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    assert p.returncode == 0 and not p.stdout and not p.stderr, \
        (p.stdout, p.stderr)
    s = samples(text)
    tenant = "default"
    # All three checked in as compliant (facts of device 0).
    assert value(s, "mdm_device_compliance", tenant=tenant, region="us-east",
                 platform="linux", compliance_state="compliant") == 3
    assert value(s, "mdm_device_compliance_by_label", tenant=tenant,
                 label="department", value="sales",
                 compliance_state="compliant") == 3
    assert value(s, "mdm_checkins_total") == 3
    assert value(s, "mdm_enrollments_total") == 3
    assert value(s, "mdm_commands", tenant=tenant, type="lock",
                 state="queued") == 1
    assert value(s, "mdm_http_requests_total", method="POST",
                 route="/v1/agent/checkin", status="200") == 3
    assert value(s, "mdm_http_requests_total", method="GET",
                 route="/v1/devices/{id}", status="404") == 1
    assert value(s, "mdm_http_requests_total", method="other",
                 route="unmatched", status="404") == 1
    assert value(s, "mdm_http_request_duration_seconds_count",
                 method="POST", route="/v1/agent/checkin") == 3
    assert value(s, "mdm_http_request_duration_seconds_bucket",
                 method="POST", route="/v1/agent/checkin", le="+Inf") == 3
    assert value(s, "mdm_build_info", version="0.1.0") == 1
    assert value(s, "mdm_access_decisions_total", result="block") == 0
    # No label names a device or a user.
    # The label promtool's lint accepts; Prometheus renames it at ingestion
    # (deploy/prometheus/prometheus.yml) for the brief's query.
    assert not any(k == "complianceState" for (_, ls) in s for k, _v in ls)
    for (name, labels) in s:
        for k, v in labels:
            assert k not in ("device", "device_id", "deviceId", "user", "upn")
            for d in devs:
                assert d["device_id"] not in v


def test_metrics_token(server_factory, tmp_path):
    tok = tmp_path / "metrics.token"
    tok.write_text("s3cret-metrics-token-0123456789\n")
    os.chmod(tok, 0o644)
    p = mdmtest.run([mdmtest.MDMD, "--listen", "127.0.0.1:0", "--data-dir",
                     str(tmp_path / "d"), "--metrics-token-file", str(tok)],
                    timeout=10)
    assert p.returncode != 0 and "chmod 600" in p.stderr, p.stderr
    os.chmod(tok, 0o600)
    srv = server_factory(args=["--metrics-token-file", str(tok)], name="tok")
    r = srv.api("GET", "/metrics", token=None)
    assert r.status == 401
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
    r = srv.api("GET", "/metrics", token="wrong")
    assert r.status == 401
    ctype, text = metrics_text(srv, token="s3cret-metrics-token-0123456789")
    assert "mdm_build_info" in text
    # An admin API token is not the metrics token.
    r = srv.api("GET", "/metrics")
    assert r.status == 401
    # Prometheus with the token in its scrape config.
    prom = Prometheus(tmp_path / "prom", srv.port, token_file=str(tok))
    try:
        wait_for(prom.targets_up, timeout=30, what="scraped with the token")
    finally:
        prom.stop()


def test_label_values_are_bounded(srv):
    """At most 100 values of a label key per tenant are named; the rest are
    counted as value="other" (so a label cannot blow up the series)."""
    for i in range(102):
        et = srv.create_etoken(labels={"department": "d%03d" % i})
        srv.enroll(et["token"], make_facts(i), i=i)
    _, text = metrics_text(srv)
    s = samples(text)
    named = [ls for (name, ls) in s if name ==
             "mdm_device_compliance_by_label" and
             dict(ls).get("value") not in ("other",)]
    assert len(named) == 100
    # Equal counts come in value order: d100 and d101 are the "other" two.
    assert value(s, "mdm_device_compliance_by_label", tenant="default",
                 label="department", value="other",
                 compliance_state="unknown") == 2
    assert value(s, "mdm_device_compliance_by_label", tenant="default",
                 label="department", value="d099",
                 compliance_state="unknown") == 1
