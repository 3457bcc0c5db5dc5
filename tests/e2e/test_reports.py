"""The compliance report, GET /v1/reports/compliance (docs/api.md "Reports")
and `mdmctl report compliance`: CSV read back with Python's csv module to
the exact values of the devices the tests made, tenant isolation, roles,
and a STIX 2.1 bundle validated against the OASIS STIX 2.1 JSON schemas kept
in tests/standards/stix-2.1 (with checks the schemas cannot make: references
resolve, identity classes, deterministic ids).

Runs under /usr/bin/pytest-3: Debian's python3-jsonschema (4.10).
"""
import copy
import csv
import datetime
import glob
import io
import json
import os
import subprocess
import uuid

import jsonschema
import pytest

from mdmtest import MDMCTL, REPO, assert_problem, clean_env, make_facts, run

SCHEMAS = os.path.join(REPO, "tests", "standards", "stix-2.1", "schemas")
# docs/api.md "Reports": the namespace of mdm's STIX ids, and STIX 2.1's
# own for SCOs (§2.9).
NS_MDM = uuid.UUID("96603a11-51cb-5950-8b61-47f159617388")
NS_SCO = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")

CSV_HEADER = ["id", "serialNumber", "deviceName", "userPrincipalName",
              "operatingSystem", "osVersion", "complianceState",
              "failingRules", "lastSyncDateTime", "enrolledDateTime"]

POLICY = {"apiVersion": "mdm/v1", "kind": "CompliancePolicy",
          "metadata": {"name": "baseline"},
          "spec": {"rules": [
              {"name": "os-min", "fact": "os.version", "op": "version_ge",
               "value": "12"},
              {"name": "disk", "fact": "encryption.root_encrypted",
               "op": "is_true"}]}}

# Hostnames and owners a CSV writer must quote.
TRICKY_HOST = 'web,01 "prod"\nrack 4'
TRICKY_UPN = 'pat "the cat",\r\nsmith@corp.example'
FORMULA_HOST = '=HYPERLINK("http://evil.example")'


# ---- helpers ---------------------------------------------------------------

def utc_s(epoch):
    return datetime.datetime.fromtimestamp(
        epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_ms(epoch):
    return datetime.datetime.fromtimestamp(
        epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def today():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d")


def get_report(server, fmt=None, token=None):
    path = "/v1/reports/compliance"
    if fmt is not None:
        path += "?format=" + fmt
    if token is None:
        return server.api("GET", path)
    return server.api("GET", path, token=token)


def read_csv(raw):
    text = raw.decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline="")))


@pytest.fixture
def fleet(server):
    """Three devices under one policy: one failing both rules with a
    hostname and owner that need quoting, one compliant, one unknown (no
    OS version) whose hostname looks like a spreadsheet formula."""
    r = server.api("PUT", "/v1/policies/CompliancePolicy/baseline", POLICY)
    assert r.status == 201, r.raw
    et = server.create_etoken(max_uses=3)
    bad = make_facts(1, hostname=TRICKY_HOST)
    bad["os"]["version"] = "11"
    bad["encryption"]["root_encrypted"] = False
    good = make_facts(2)
    unknown = make_facts(3, platform="android", hostname=FORMULA_HOST)
    unknown["os"] = {"name": "Android", "version": None, "build": None,
                     "kernel": None}
    devs = {"bad": server.enroll(et["token"], bad),
            "good": server.enroll(et["token"], good),
            "unknown": server.enroll(et["token"], unknown)}
    r = server.api("PATCH", "/v1/devices/" + devs["bad"]["device_id"],
                   {"user_principal_name": TRICKY_UPN})
    assert r.status == 200, r.raw
    states = {k: server.api("GET", "/v1/devices/" + d["device_id"])
              .body["compliance"] for k, d in devs.items()}
    assert states == {"bad": "noncompliant", "good": "compliant",
                      "unknown": "unknown"}
    return devs


def expected_rows(server, devs):
    """What the CSV must say of each device, from the database."""
    want = {"bad": ["SN-000001", TRICKY_HOST, TRICKY_UPN, "linux", "11",
                    "noncompliant", "baseline/os-min;baseline/disk"],
            "good": ["SN-000002", "host-2", "", "linux", "12", "compliant",
                     ""],
            "unknown": ["SN-000003", "'" + FORMULA_HOST, "", "android", "",
                        "unknown", ""]}
    rows = []
    for k, d in devs.items():
        dev_id = d["device_id"]
        seen = server.q1("SELECT last_seen FROM device_status WHERE "
                         "device_id = ?", (dev_id,))
        enrolled = server.q1("SELECT enrolled_at FROM devices WHERE id = ?",
                             (dev_id,))
        rows.append([dev_id] + want[k] + [utc_s(seen), utc_s(enrolled)])
    return sorted(rows)


# ---- CSV -------------------------------------------------------------------

def test_csv_round_trips_exact_values(server, fleet):
    before = today()
    r = get_report(server, "csv")
    assert r.status == 200, r.raw
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert r.headers["Content-Disposition"] in (
        'attachment; filename="compliance_%s.csv"' % d
        for d in {before, today()})
    assert r.headers["Content-Length"] == str(len(r.raw))
    rows = read_csv(r.raw)
    assert rows[0] == CSV_HEADER
    assert rows[1:] == expected_rows(server, fleet)
    # RFC 4180 on the wire: CRLF after every record, quotes doubled, the
    # field with a line break quoted.
    assert r.raw.startswith(",".join(CSV_HEADER).encode() + b"\r\n")
    assert r.raw.endswith(b"\r\n")
    assert b'"web,01 ""prod""\nrack 4"' in r.raw
    assert b'"pat ""the cat"",\r\nsmith@corp.example"' in r.raw
    assert b'"\'=HYPERLINK(""http://evil.example"")"' in r.raw
    # No spool file stays behind in the data directory.
    assert glob.glob(os.path.join(server.data_dir, ".report-*")) == []


def test_csv_is_the_default_and_bad_formats_are_refused(server, fleet):
    default = get_report(server)
    assert default.status == 200
    assert default.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert read_csv(default.raw)[1:] == expected_rows(server, fleet)
    for bad in ("xml", "CSV", "", "csv,stix"):
        body = assert_problem(get_report(server, bad), 400)
        assert body["detail"] == "query 'format': expected csv or stix"


def test_empty_tenant_has_only_the_header(server):
    r = get_report(server, "csv")
    assert r.status == 200
    assert r.raw == (",".join(CSV_HEADER) + "\r\n").encode()


def test_retired_devices_are_left_out(server, fleet):
    gone = fleet["good"]["device_id"]
    r = server.api("POST", "/v1/devices/%s/retire" % gone, {"wipe": "none"})
    assert r.status in (200, 202), r.raw
    ids = [row[0] for row in read_csv(get_report(server, "csv").raw)[1:]]
    assert ids == sorted([fleet["bad"]["device_id"],
                          fleet["unknown"]["device_id"]])


def test_tenants_see_only_their_devices(server, fleet):
    acme_id, acme = server.create_tenant("acme")
    et = server.create_etoken(token=acme, max_uses=2)
    mine = [server.enroll(et["token"], make_facts(40 + i))["device_id"]
            for i in range(2)]
    default_ids = sorted(d["device_id"] for d in fleet.values())
    rows = read_csv(get_report(server, "csv").raw)
    assert [r[0] for r in rows[1:]] == default_ids
    rows = read_csv(get_report(server, "csv", token=acme).raw)
    assert [r[0] for r in rows[1:]] == sorted(mine)
    bundle = json.loads(get_report(server, "stix", token=acme).raw)
    ids = sorted(ext_of(o)["device_id"] for o in bundle["objects"]
                 if o["type"] == "observed-data")
    assert ids == sorted(mine)
    tenant = [o for o in bundle["objects"] if o["type"] == "identity"
              and o["identity_class"] == "organization"]
    assert [t["name"] for t in tenant] == ["acme"]
    assert tenant[0]["id"] == "identity--%s" % uuid.uuid5(
        NS_MDM, "identity:tenant:%s" % acme_id)


def test_roles(server, fleet):
    for role in ("auditor", "operator", "admin"):
        tok = server.create_token(role)
        for fmt in ("csv", "stix"):
            assert get_report(server, fmt, token=tok).status == 200, role
    helpdesk = server.create_token("helpdesk")
    assert_problem(get_report(server, "csv", token=helpdesk), 403)
    assert_problem(get_report(server, "stix", token=helpdesk), 403)
    assert_problem(server.api("GET", "/v1/reports/compliance", token=None),
                   401)
    device = fleet["good"]["device_token"]
    assert_problem(get_report(server, "csv", token=device), 403)
    assert_problem(server.api("POST", "/v1/reports/compliance", {}), 405)


# ---- STIX ------------------------------------------------------------------

class Stix:
    """The OASIS STIX 2.1 schemas, with $refs resolved from the local
    copies (every file is registered under its $id)."""

    def __init__(self):
        self.store, self.by_type = {}, {}
        for p in glob.glob(os.path.join(SCHEMAS, "*", "*.json")):
            with open(p) as f:
                s = json.load(f)
            self.store[s["$id"]] = s
            self.by_type[os.path.basename(p)[:-len(".json")]] = s
        assert "bundle" in self.by_type and "identity" in self.by_type

    def errors(self, schema_name, instance):
        schema = self.by_type[schema_name]
        cls = jsonschema.validators.validator_for(schema)
        resolver = jsonschema.RefResolver(schema["$id"], schema,
                                          store=self.store)
        return [e.message for e in
                cls(schema, resolver=resolver).iter_errors(instance)]

    def bundle_errors(self, bundle):
        """The bundle against bundle.json, and each object against its own
        type's schema (bundle.json alone checks objects loosely).
        bundle.json (3bf9e69) has no branch for extension-definition, and
        its custom-object branch (oneOf core, cyber-observable-core) matches
        both for any SDO-shaped object, so extension definitions are checked
        against extension-definition.json only."""
        envelope = dict(bundle)
        envelope["objects"] = [o for o in bundle.get("objects", [])
                               if o.get("type") != "extension-definition"]
        errs = self.errors("bundle", envelope)
        for o in bundle.get("objects", []):
            t = o.get("type")
            if t not in self.by_type:
                errs.append("no schema for type %r" % t)
                continue
            errs += ["%s: %s" % (o.get("id"), e) for e in self.errors(t, o)]
        return errs


@pytest.fixture(scope="module")
def stix():
    return Stix()


def ext_of(od):
    (ext,) = od["extensions"].values()
    return ext


def check_semantics(bundle, tenant_id):
    """What the schemas leave open: every reference resolves to an object
    of the right type, ids are unique, identity classes, created_by_ref,
    modified >= created.  Returns the objects by type."""
    objs = bundle["objects"]
    by_id = {o["id"]: o for o in objs}
    assert len(by_id) == len(objs), "duplicate ids"
    by_type = {}
    for o in objs:
        by_type.setdefault(o["type"], []).append(o)
    tenant_ref = "identity--%s" % uuid.uuid5(NS_MDM,
                                             "identity:tenant:%s" % tenant_id)
    assert by_id[tenant_ref]["identity_class"] == "organization"
    for o in objs:
        if o["type"] in ("identity", "extension-definition", "observed-data",
                         "indicator", "sighting"):
            assert o["spec_version"] == "2.1"
            assert o["modified"] >= o["created"], o["id"]
            if o["id"] != tenant_ref:
                assert o["created_by_ref"] == tenant_ref, o["id"]
        if o["type"] == "identity" and o["id"] != tenant_ref:
            assert o["identity_class"] == "system", o["id"]

    def ref(r, t):
        assert r in by_id and by_id[r]["type"] == t, (r, t)
        return by_id[r]

    (ext_def,) = by_type["extension-definition"]
    assert ext_def["extension_types"] == ["property-extension"]
    for od in by_type.get("observed-data", []):
        assert list(od["extensions"]) == [ext_def["id"]]
        ext = ext_of(od)
        assert ext["extension_type"] == "property-extension"
        ref(ext["device_ref"], "identity")
        for r in od["object_refs"]:
            ref(r, "software")
    for s in by_type.get("sighting", []):
        ref(s["sighting_of_ref"], "indicator")
        for r in s["where_sighted_refs"]:
            assert by_id[r]["identity_class"] == "system"
        for r in s["observed_data_refs"]:
            ref(r, "observed-data")
    return by_type


def test_stix_bundle_validates(server, fleet, stix):
    tenant_id = server.tenant_id()
    r = get_report(server, "stix")
    assert r.status == 200, r.raw
    assert r.headers["Content-Type"] == "application/stix+json;version=2.1"
    assert r.headers["Content-Disposition"] in (
        'attachment; filename="compliance_%s.stix.json"' % d
        for d in {today()})
    bundle = json.loads(r.raw)
    assert bundle["type"] == "bundle"
    assert stix.bundle_errors(bundle) == []
    by_type = check_semantics(bundle, tenant_id)

    # One identity and one observed-data per device, with its state.
    ods = {ext_of(o)["device_id"]: o for o in by_type["observed-data"]}
    assert sorted(ods) == sorted(d["device_id"] for d in fleet.values())
    by_id = {o["id"]: o for o in bundle["objects"]}
    for k, d in fleet.items():
        dev_id = d["device_id"]
        ext = ext_of(ods[dev_id])
        ident = by_id[ext["device_ref"]]
        assert ident["id"] == "identity--%s" % uuid.uuid5(
            NS_MDM, "identity:device:%s:%s" % (tenant_id, dev_id))
        enrolled = server.q1("SELECT enrolled_at FROM devices WHERE id = ?",
                             (dev_id,))
        seen = server.q1("SELECT last_seen FROM device_status WHERE "
                         "device_id = ?", (dev_id,))
        assert ident["created"] == utc_ms(enrolled)
        assert ods[dev_id]["first_observed"] == utc_ms(seen)
        assert ext["enrolled_at"] == utc_ms(enrolled)
        assert ext["last_seen"] == utc_ms(seen)
    bad = ext_of(ods[fleet["bad"]["device_id"]])
    assert bad["compliance_state"] == "noncompliant"
    assert bad["failing_rules"] == ["baseline/os-min", "baseline/disk"]
    assert bad["hostname"] == TRICKY_HOST
    assert bad["user_principal_name"] == TRICKY_UPN
    assert by_id[bad["device_ref"]]["name"] == TRICKY_HOST
    good = ext_of(ods[fleet["good"]["device_id"]])
    assert good["compliance_state"] == "compliant"
    assert "failing_rules" not in good and "user_principal_name" not in good
    unknown = ext_of(ods[fleet["unknown"]["device_id"]])
    assert unknown["compliance_state"] == "unknown"
    assert unknown["hostname"] == FORMULA_HOST   # JSON needs no defusing
    assert "os_version" not in unknown

    # The OS as a software SCO with STIX's own deterministic id.
    sw = {o["id"]: o for o in by_type["software"]}
    linux = "software--%s" % uuid.uuid5(
        NS_SCO, json.dumps({"name": "Debian GNU/Linux", "version": "12"},
                           sort_keys=True, separators=(",", ":")))
    assert sw[linux]["name"] == "Debian GNU/Linux"
    assert ods[fleet["good"]["device_id"]]["object_refs"] == [linux]
    assert len(sw) == 3   # Debian 12, Debian 11, Android

    # Failing rules: one indicator each, sighted at the failing device.
    inds = {o["name"]: o for o in by_type["indicator"]}
    assert sorted(inds) == ["baseline/disk", "baseline/os-min"]
    for key, ind in inds.items():
        assert ind["id"] == "indicator--%s" % uuid.uuid5(
            NS_MDM, "indicator:%s:%s" % (tenant_id, key))
        assert ind["pattern_type"] == "mdm-compliance-rule"
    assert json.loads(inds["baseline/os-min"]["pattern"]) == \
        {"fact": "os.version", "op": "version_ge", "value": "12"}
    assert json.loads(inds["baseline/disk"]["pattern"]) == \
        {"fact": "encryption.root_encrypted", "op": "is_true"}
    sightings = by_type["sighting"]
    assert sorted(by_id[s["sighting_of_ref"]]["name"] for s in sightings) \
        == ["baseline/disk", "baseline/os-min"]
    for s in sightings:
        assert s["where_sighted_refs"] == [bad["device_ref"]]
        assert s["observed_data_refs"] == \
            [ods[fleet["bad"]["device_id"]]["id"]]
        assert s["count"] == 1


def test_stix_validation_can_fail(server, fleet, stix):
    """The checks above would catch a broken bundle."""
    tenant_id = server.tenant_id()
    bundle = json.loads(get_report(server, "stix").raw)
    assert stix.bundle_errors(bundle) == []

    def broken(kind, change):
        b = copy.deepcopy(bundle)
        o = [o for o in b["objects"] if o["type"] == kind][-1]
        change(o)
        return b

    for b in (broken("identity", lambda o: o.update(id="identity--nope")),
              broken("identity", lambda o: o.pop("name")),
              broken("observed-data", lambda o: o.pop("object_refs")),
              broken("observed-data",
                     lambda o: o.update(created=o["created"][:19] + "Z")),
              broken("observed-data",
                     lambda o: ext_of(o).update(failing_rules=[])),
              broken("sighting", lambda o: o.pop("sighting_of_ref")),
              broken("indicator", lambda o: o.pop("pattern")),
              broken("extension-definition", lambda o: o.pop("schema"))):
        assert stix.bundle_errors(b) != []
    # What only the semantic checks see.
    for b in (broken("identity", lambda o: o.pop("identity_class")),
              broken("sighting",
                     lambda o: o.update(where_sighted_refs=[
                         "identity--%s" % uuid.uuid4()]))):
        assert stix.bundle_errors(b) == []
        with pytest.raises((AssertionError, KeyError)):
            check_semantics(b, tenant_id)


def test_stix_ids_are_deterministic(server, fleet):
    one = json.loads(get_report(server, "stix").raw)
    two = json.loads(get_report(server, "stix").raw)
    assert one["id"] != two["id"]     # each export is a new bundle
    assert one["objects"] == two["objects"]
    # The device fixes its disk: its observation and sightings change, its
    # identity and the indicators do not.
    d = fleet["bad"]
    facts = make_facts(1, hostname=TRICKY_HOST)
    facts["os"]["version"] = "11"
    server.execute("UPDATE device_status SET last_seen = last_seen + 7 "
                   "WHERE device_id = ?", (d["device_id"],))
    r = server.api("POST", "/v1/agent/checkin", {"facts": facts},
                   token=d["device_token"])
    assert r.status == 200, r.raw
    three = json.loads(get_report(server, "stix").raw)

    def ids(b, t):
        return {o["id"] for o in b["objects"] if o["type"] == t}
    os_min = "indicator--%s" % uuid.uuid5(
        NS_MDM, "indicator:%s:baseline/os-min" % server.tenant_id())
    assert ids(three, "identity") == ids(one, "identity")
    assert os_min in ids(one, "indicator")
    assert ids(three, "indicator") == {os_min}
    assert ids(three, "observed-data") != ids(one, "observed-data")
    assert len(ids(three, "sighting")) == 1


# ---- mdmctl report ---------------------------------------------------------

def ctl(server, cwd, *args, token_file=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDM_")}
    env["HOME"] = str(cwd)
    return run([MDMCTL, "report", "compliance"] + list(args) +
               ["--server", server.url, "--token-file",
                token_file or os.path.join(server.data_dir, "admin.token")],
               cwd=str(cwd), env=env)


def test_mdmctl_writes_the_dated_file(server, fleet, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    p = ctl(server, work)
    assert p.returncode == 0, p.stderr
    name = "compliance_%s.csv" % today()
    assert p.stdout == name + "\n"
    assert p.stderr == ""
    assert sorted(os.listdir(work)) == [name]
    assert os.stat(work / name).st_mode & 0o777 == 0o600
    api = get_report(server, "csv").raw
    assert (work / name).read_bytes() == api

    p = ctl(server, work, "--format", "stix")
    assert p.returncode == 0, p.stderr
    sname = "compliance_%s.stix.json" % today()
    assert p.stdout == sname + "\n"
    assert sorted(os.listdir(work)) == sorted([name, sname])
    got = json.loads((work / sname).read_text())
    assert got["objects"] == json.loads(get_report(server, "stix").raw)[
        "objects"]


def test_mdmctl_output_file_and_stdout(server, fleet, tmp_path):
    tmp_path = tmp_path / "cli"    # the server's files are beside it
    tmp_path.mkdir()
    p = ctl(server, tmp_path, "-o", "out.csv")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "out.csv\n"
    api = get_report(server, "csv").raw
    assert (tmp_path / "out.csv").read_bytes() == api
    # An existing file is replaced whole.
    (tmp_path / "old.csv").write_text("x" * 100000)
    p = ctl(server, tmp_path, "-o", "old.csv")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "old.csv").read_bytes() == api
    # -o -: the bytes on standard output, nothing written.
    p = subprocess.run(
        [MDMCTL, "report", "compliance", "--format=csv", "-o", "-",
         "--server", server.url, "--token-file",
         os.path.join(server.data_dir, "admin.token")],
        cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=clean_env({"HOME": str(tmp_path)}), timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout == api
    assert sorted(os.listdir(tmp_path)) == ["old.csv", "out.csv"]


def test_mdmctl_failures_leave_nothing(server, fleet, tmp_path):
    tmp_path = tmp_path / "cli"
    tmp_path.mkdir()
    p = ctl(server, tmp_path, "--format", "xml")
    assert p.returncode == 2
    assert p.stderr.startswith("mdmctl: invalid value 'xml' for --format: "
                               "expected csv or stix\n")
    helpdesk = tmp_path / "helpdesk.token"
    helpdesk.write_text(server.create_token("helpdesk") + "\n")
    os.chmod(helpdesk, 0o600)
    p = ctl(server, tmp_path, token_file=str(helpdesk))
    assert p.returncode == 1
    assert p.stdout == ""
    assert p.stderr == ("mdmctl: GET /v1/reports/compliance: 403 forbidden: "
                        "role 'helpdesk' may not GET /v1/reports/compliance\n")
    p = ctl(server, tmp_path, "-o", "nodir/x.csv")
    assert p.returncode == 1
    assert p.stderr.startswith("mdmctl: cannot create 'nodir/x.csv.tmp.")
    assert sorted(os.listdir(tmp_path)) == ["helpdesk.token"]
