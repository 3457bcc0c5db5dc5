"""Policies as code: mdmctl apply / diff / export / policies against a real
mdmd, with three real agents (the fake device roots in tests/fixtures/devices)
enrolled and checked in once.  The documents are the example repository in
deploy/gitops/mdm/policies, applied as a CI pipeline would.

What the example baseline makes of the three devices:
  debian12-luks     Debian 12, LUKS, firewall on          -> compliant
  ubuntu2204-plain  Ubuntu 22.04, unencrypted, no firewall -> noncompliant
  alpine-old        Alpine 3.9.6, unencrypted, rooted      -> noncompliant
"""
import http.server
import json
import os
import re
import shutil
import threading

import pytest

from mdmtest import AGENT, MDM_FIXTURES, MDMCTL, REPO, run

POLICIES = os.path.join(REPO, "deploy", "gitops", "mdm", "policies")
DEVICES = ["debian12-luks", "ubuntu2204-plain", "alpine-old"]
HOSTNAMES = {"debian12-luks": "deb-ws-0042", "ubuntu2204-plain": "ubuntu-dev-17",
             "alpine-old": "alpine-kiosk-3"}
# The documents of the example, in the loader's order (files sorted by name).
DOCS = [("CompliancePolicy", "baseline"),
        ("ConfigurationProfile", "device-encryption"),
        ("ConfigurationProfile", "os-update"),
        ("ConfigurationProfile", "corp-vpn")]
ESC = "\033"


@pytest.fixture(scope="module", autouse=True)
def _programs():
    for prog in (AGENT, MDMCTL):
        assert os.access(prog, os.X_OK), "missing %s" % prog
    assert os.path.isdir(POLICIES), POLICIES


@pytest.fixture
def env(tmp_path):
    """No mdmctl config or MDM_* settings of the user's; no colors asked."""
    e = {k: v for k, v in os.environ.items()
         if not k.startswith("MDM_") or k in ("MDM_BIN", "MDM_FIXTURES")}
    e["HOME"] = str(tmp_path / "home")
    e.pop("XDG_CONFIG_HOME", None)
    e.pop("NO_COLOR", None)
    return e


def ctl(server, env, *args, cwd=None):
    return run([MDMCTL] + list(args) +
               ["--server", server.url, "--token-file",
                os.path.join(server.data_dir, "admin.token")],
               env=env, cwd=cwd)


@pytest.fixture
def fleet(server, env, tmp_path):
    """Enroll the three fixture devices with real agents and check each in
    once; returns {root name: device id}."""
    p = ctl(server, env, "enroll-token", "create", "--uses", str(len(DEVICES)))
    assert p.returncode == 0, p.stderr
    token = p.stdout.strip()
    ids = {}
    for name in DEVICES:
        root = os.path.join(MDM_FIXTURES, "devices", name)
        state = str(tmp_path / ("agent-" + name))
        p = run([AGENT, "enroll", "--server", server.url, "--token", token,
                 "--state-dir", state, "--root", root], env=env)
        assert p.returncode == 0, p.stderr
        p = run([AGENT, "run", "--once", "--state-dir", state, "--root", root],
                env=env)
        assert p.returncode == 0, p.stderr
    r = server.api("GET", "/v1/devices")
    assert r.status == 200, r.raw
    by_host = {d["hostname"]: d["id"] for d in r.body["items"]}
    for name in DEVICES:
        ids[name] = by_host[HOSTNAMES[name]]
    assert len(set(ids.values())) == 3
    return ids


def copy_policies(tmp_path, name="policies"):
    dst = tmp_path / name
    shutil.copytree(POLICIES, dst)
    return dst


def policies(server):
    r = server.api("GET", "/v1/policies")
    assert r.status == 200, r.raw
    return r.body["items"]


def versions(server):
    return {(p["kind"], p["name"]): p["version"] for p in policies(server)}


def device(server, dev_id):
    r = server.api("GET", "/v1/devices/" + dev_id)
    assert r.status == 200, r.raw
    return r.body


def states(server, ids):
    return {name: device(server, i)["compliance"] for name, i in ids.items()}


def lines(text):
    return text.splitlines()


def result_lines(stdout, action_of):
    """The per-document lines apply prints for {(kind, name): action}."""
    want = []
    for kind, name in DOCS:
        if (kind, name) in action_of:
            act, v = action_of[(kind, name)]
            want.append("%s %s/%s (v%d)" % (act, kind, name, v))
    return want


def change_rows(stdout):
    """{device id: (hostname, from, to)} from apply's table of changes."""
    rows = {}
    for line in lines(stdout):
        m = re.match(r"^([0-9a-f-]{36})\s+(\S+)\s+(\S+)\s+(\S+)$", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3), m.group(4))
    return rows


def line_of(path, needle):
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if needle in line:
                return i
    raise AssertionError("%r not in %s" % (needle, path))


# ---- apply ----------------------------------------------------------------

def test_apply_creates_and_evaluates_the_fleet(server, env, fleet):
    assert states(server, fleet) == {n: "unknown" for n in DEVICES}
    p = ctl(server, env, "apply", "-f", POLICIES)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    assert ESC not in p.stdout          # not a terminal: no colors
    out = lines(p.stdout)
    assert out[:4] == ["created %s/%s (v1)" % d for d in DOCS], p.stdout
    assert out[4] == "3 devices changed compliance state:", p.stdout
    assert re.match(r"^DEVICE\s+HOSTNAME\s+FROM\s+TO$", out[5]), p.stdout
    assert change_rows(p.stdout) == {
        fleet["debian12-luks"]: ("deb-ws-0042", "unknown", "compliant"),
        fleet["ubuntu2204-plain"]: ("ubuntu-dev-17", "unknown", "noncompliant"),
        fleet["alpine-old"]: ("alpine-kiosk-3", "unknown", "noncompliant"),
    }
    assert out[-1] == ("compliance now: 1 compliant, 2 noncompliant, "
                       "0 unknown (3 devices)"), p.stdout
    assert len(out) == 4 + 2 + 3 + 1

    # The states are stored at once, without a check-in.
    assert states(server, fleet) == {"debian12-luks": "compliant",
                                     "ubuntu2204-plain": "noncompliant",
                                     "alpine-old": "noncompliant"}
    failing = {n: sorted((r["rule"], r["state"])
                         for r in device(server, i)["compliance_reasons"])
               for n, i in fleet.items()}
    assert failing == {
        "debian12-luks": [],
        "ubuntu2204-plain": [("disk-encrypted", "noncompliant"),
                             ("firewall-on", "noncompliant")],
        "alpine-old": [("disk-encrypted", "noncompliant"),
                       ("firewall-on", "unknown"),
                       ("not-rooted", "noncompliant"),
                       ("os-current", "noncompliant")],
    }
    p = ctl(server, env, "devices", "list", "--compliance", "noncompliant",
            "-o", "json")
    assert p.returncode == 0, p.stderr
    assert sorted(d["id"] for d in json.loads(p.stdout)) == sorted(
        [fleet["ubuntu2204-plain"], fleet["alpine-old"]])
    assert versions(server) == {d: 1 for d in DOCS}

    # Again: every document unchanged, no version moves, no state moves.
    p = ctl(server, env, "apply", "-f", POLICIES)
    assert p.returncode == 0, p.stderr
    out = lines(p.stdout)
    assert out == ["unchanged %s/%s (v1)" % d for d in DOCS] + [
        "0 devices changed compliance state",
        "compliance now: 1 compliant, 2 noncompliant, 0 unknown (3 devices)"]
    assert versions(server) == {d: 1 for d in DOCS}

    # -o json: the server's answer as it is.
    p = ctl(server, env, "apply", "-f", POLICIES, "-o", "json")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["dry_run"] is False
    assert res["results"] == [{"kind": k, "name": n, "action": "unchanged",
                               "version": 1} for k, n in DOCS]
    assert res["compliance"]["changed"] == 0
    assert res["compliance"]["changes"] == []
    assert res["compliance"]["counts"] == {"compliant": 1, "noncompliant": 2,
                                           "unknown": 0}

    # The audit log names the token that made each change.
    audit = server.api("GET", "/v1/audit?limit=1000").body["items"]
    changes = [a for a in audit if "polic" in a["action"]]
    assert len(changes) == 4, audit


def test_dry_run_then_apply_moves_a_device_without_check_in(server, env,
                                                            fleet, tmp_path):
    assert ctl(server, env, "apply", "-f", POLICIES).returncode == 0
    before = policies(server)
    seen = {n: device(server, i)["last_seen"] for n, i in fleet.items()}
    assert states(server, fleet)["debian12-luks"] == "compliant"

    pol = copy_policies(tmp_path)
    path = pol / "compliance.yaml"
    text = path.read_text()
    assert text.count('value: "12"') == 1
    path.write_text(text.replace('value: "12"', 'value: "13"'))

    p = ctl(server, env, "apply", "-f", str(pol), "--dry-run")
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    out = lines(p.stdout)
    assert out[0] == "dry run: nothing was changed on the server"
    assert out[1:5] == ["updated CompliancePolicy/baseline (v2)"] + [
        "unchanged %s/%s (v1)" % d for d in DOCS[1:]]
    assert out[5] == "1 device would change compliance state:"
    assert change_rows(p.stdout) == {
        fleet["debian12-luks"]: ("deb-ws-0042", "compliant", "noncompliant")}
    assert out[-1] == ("compliance after the change: 0 compliant, "
                       "3 noncompliant, 0 unknown (3 devices)")
    # Nothing stored: the same documents, versions and hashes; no state moved.
    assert policies(server) == before
    assert states(server, fleet)["debian12-luks"] == "compliant"

    p = ctl(server, env, "apply", "-f", str(pol), "--dry-run", "-o", "json")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["dry_run"] is True
    assert res["compliance"]["changes"] == [
        {"device_id": fleet["debian12-luks"], "from": "compliant",
         "to": "noncompliant"}]
    assert policies(server) == before

    p = ctl(server, env, "apply", "-f", str(pol))
    assert p.returncode == 0, p.stderr
    out = lines(p.stdout)
    assert out[0] == "updated CompliancePolicy/baseline (v2)"
    assert out[4] == "1 device changed compliance state:"
    assert change_rows(p.stdout) == {
        fleet["debian12-luks"]: ("deb-ws-0042", "compliant", "noncompliant")}
    deb = device(server, fleet["debian12-luks"])
    assert deb["compliance"] == "noncompliant"
    assert [(r["rule"], r["message"]) for r in deb["compliance_reasons"]] == \
        [("os-current", "os.version 12 < 13")]
    # No agent ran: the re-evaluation came from the apply alone.
    assert {n: device(server, i)["last_seen"]
            for n, i in fleet.items()} == seen
    assert versions(server)[("CompliancePolicy", "baseline")] == 2


# ---- diff -----------------------------------------------------------------

def test_diff_reports_drift_and_only_drift(server, env, fleet, tmp_path):
    assert ctl(server, env, "apply", "-f", POLICIES).returncode == 0
    p = ctl(server, env, "diff", "-f", POLICIES)
    assert (p.returncode, p.stderr) == (0, ""), p.stdout
    assert p.stdout == "no drift: 4 documents match the server\n"

    # Someone changes the VPN on the server, outside the repository.
    doc = server.api("GET", "/v1/policies/ConfigurationProfile/corp-vpn").body
    doc = doc["document"]
    doc["spec"]["settings"]["vpn"]["port"] = 443
    r = server.api("PUT", "/v1/policies/ConfigurationProfile/corp-vpn", doc)
    assert r.status == 200, r.raw

    p = ctl(server, env, "diff", "-f", POLICIES)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert p.stderr == ""
    out = lines(p.stdout)
    vpn_file = os.path.join(POLICIES, "vpn.yaml")
    assert out[0] == "--- server/ConfigurationProfile/corp-vpn"
    assert out[1] == "+++ " + vpn_file
    assert re.match(r"^@@ -\d+,\d+ \+\d+,\d+ @@$", out[2]), out
    body = out[3:-1]
    assert [x for x in body if x[:1] in "+-"] == ["-      port: 443",
                                                  "+      port: 1194"]
    assert all(x.startswith(" ") for x in body if x[:1] not in "+-")
    assert out[-1] == ("drift: 1 changed, 0 not on the server, 0 only on "
                       "the server")

    p = ctl(server, env, "diff", "-f", POLICIES, "-o", "json")
    assert p.returncode == 1
    rep = json.loads(p.stdout)
    assert rep["drift"] is True
    assert [(d["kind"], d["name"], d["status"]) for d in rep["documents"]] == [
        (k, n, "changed" if n == "corp-vpn" else "unchanged") for k, n in DOCS]

    p = ctl(server, env, "apply", "-f", POLICIES)
    assert p.returncode == 0, p.stderr
    assert "updated ConfigurationProfile/corp-vpn (v3)" in lines(p.stdout)
    p = ctl(server, env, "diff", "-f", POLICIES)
    assert (p.returncode, p.stderr) == (0, ""), p.stdout

    # A new document is all '+'; a document only on the server is named.
    pol = copy_policies(tmp_path)
    os.unlink(pol / "os_update.yaml")
    (pol / "wifi.yaml").write_text(
        "apiVersion: mdm/v1\nkind: ConfigurationProfile\nmetadata:\n"
        "  name: corp-wifi\nspec:\n  settings:\n    wifi:\n"
        "      ssid: CORP-WIFI\n      security: wpa2-enterprise\n")
    p = ctl(server, env, "diff", "-f", str(pol))
    assert p.returncode == 1
    assert p.stderr == ""
    out = lines(p.stdout)
    i = out.index("--- server/ConfigurationProfile/corp-wifi "
                  "(not on the server)")
    assert out[i + 1] == "+++ " + str(pol / "wifi.yaml")
    assert out[i + 2] == "@@ -0,0 +1,9 @@"
    assert out[i + 3:i + 12] == [
        "+apiVersion: mdm/v1", "+kind: ConfigurationProfile", "+metadata:",
        "+  name: corp-wifi", "+spec:", "+  settings:", "+    wifi:",
        "+      security: wpa2-enterprise", "+      ssid: CORP-WIFI"]
    assert ("server/ConfigurationProfile/os-update: only on the server "
            "(apply --prune would delete it)") in out
    assert out[-1] == ("drift: 0 changed, 1 not on the server, 1 only on "
                       "the server")


def test_diff_errors_are_not_drift(server, env, tmp_path):
    # An unreachable server: exit 1, one line on stderr, nothing on stdout.
    p = run([MDMCTL, "diff", "-f", POLICIES, "--server",
             "http://127.0.0.1:1", "--token", "mdm_at_" + "x" * 43], env=env)
    assert p.returncode == 1
    assert p.stdout == ""
    assert re.match(r"^mdmctl: cannot connect to http://127\.0\.0\.1:1: ",
                    p.stderr), p.stderr
    assert len(lines(p.stderr)) == 1
    # Bad usage: 2.
    p = ctl(server, env, "diff")
    assert p.returncode == 2
    assert p.stderr.startswith("mdmctl: missing -f PATH")


# ---- export ---------------------------------------------------------------

TRICKY = {
    "apiVersion": "mdm/v1",
    "kind": "ConfigurationProfile",
    "metadata": {"name": "tricky", "labels": {
        "zip": "0123", "num": "12", "real": "13.10", "exp": "1e3",
        "bool": "true", "yes": "yes", "null": "null", "empty": "",
        "colon": "a: b", "hash": "# not a comment", "space": " lead",
        "time": "22:00", "date": "2026-01-31", "star": "*alias",
        "quote": "it's \"q\"", "unicode": "gr\u00fc\u00dfe \u2603"}},
    "spec": {
        "assign": {"platforms": ["linux"], "labels": {"ring": "1"}},
        "settings": {
            "password": {"min_length": 12, "max_age_days": 0},
            "os_update": {"window": "22:00-04:00", "deadline": "7d"},
            # Unknown settings are kept as they are: every JSON type.
            "custom": {"int": 7, "neg": -3, "big": 9007199254740993,
                       "real": 13.1, "tiny": 1e-07, "t": True, "f": False,
                       "none": None, "list": [1, "1", 1.5, None, [], {}],
                       "nested": {"a": {"b": {"c": "d"}}},
                       "multi": "line one\nline two\n", "tab": "a\tb"}}},
}


def test_export_then_apply_is_unchanged(server, env, fleet, tmp_path):
    assert ctl(server, env, "apply", "-f", POLICIES).returncode == 0
    r = server.api("PUT", "/v1/policies/ConfigurationProfile/tricky", TRICKY)
    assert r.status == 201, r.raw
    out_dir = tmp_path / "export"
    # Files of other names stay; a file of the same name is replaced.
    (out_dir / "configuration-profile").mkdir(parents=True)
    (out_dir / "notes.txt").write_text("keep me\n")
    (out_dir / "configuration-profile" / "corp-vpn.yaml").write_text("stale\n")

    p = ctl(server, env, "export", "-o", str(out_dir))
    assert p.returncode == 0, p.stderr
    files = sorted(os.path.relpath(os.path.join(d, f), out_dir)
                   for d, _, fs in os.walk(out_dir) for f in fs)
    assert files == ["compliance-policy/baseline.yaml",
                     "configuration-profile/corp-vpn.yaml",
                     "configuration-profile/device-encryption.yaml",
                     "configuration-profile/os-update.yaml",
                     "configuration-profile/tricky.yaml",
                     "notes.txt"]
    assert (out_dir / "notes.txt").read_text() == "keep me\n"
    assert lines(p.stdout)[-1] == "exported 5 documents to %s" % out_dir
    assert "wrote %s (ConfigurationProfile/tricky v1)" % (
        out_dir / "configuration-profile" / "tricky.yaml") in lines(p.stdout)

    before = policies(server)
    p = ctl(server, env, "apply", "-f", str(out_dir))
    assert p.returncode == 0, p.stderr
    out = lines(p.stdout)
    assert sorted(out[:5]) == sorted(
        ["unchanged %s/%s (v1)" % d for d in DOCS] +
        ["unchanged ConfigurationProfile/tricky (v1)"]), p.stdout
    assert out[5] == "0 devices changed compliance state"
    assert policies(server) == before
    p = ctl(server, env, "diff", "-f", str(out_dir))
    assert (p.returncode, p.stderr) == (0, ""), p.stdout

    # export's -o is the directory; a format goes before the command.
    p = ctl(server, env, "export", "-o", str(out_dir), "-o", "json")
    assert p.returncode == 2
    assert "-o given twice" in p.stderr
    p = run([MDMCTL, "--output", "json", "--server", server.url,
             "--token-file", os.path.join(server.data_dir, "admin.token"),
             "export", "--output", str(tmp_path / "again")], env=env)
    assert p.returncode == 0, p.stderr
    listed = json.loads(p.stdout)
    assert sorted((x["kind"], x["name"], x["version"]) for x in listed) == \
        sorted([(k, n, 1) for k, n in DOCS] +
               [("ConfigurationProfile", "tricky", 1)])
    p = ctl(server, env, "export")
    assert p.returncode == 2
    assert p.stderr.startswith("mdmctl: missing -o DIR")


# ---- prune ----------------------------------------------------------------

def test_prune_deletes_only_what_is_gone(server, env, fleet, tmp_path):
    assert ctl(server, env, "apply", "-f", POLICIES).returncode == 0
    pol = copy_policies(tmp_path)
    os.unlink(pol / "vpn.yaml")

    # Without --prune nothing is deleted.
    p = ctl(server, env, "apply", "-f", str(pol))
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    assert "deleted" not in p.stdout
    assert len(versions(server)) == 4

    p = ctl(server, env, "apply", "-f", str(pol), "--prune", "--dry-run")
    assert p.returncode == 0, p.stderr
    assert p.stderr == ("mdmctl: warning: --prune would delete 1 document "
                        "not in '%s'\n" % pol)
    assert "DELETE deleted ConfigurationProfile/corp-vpn (v1)" in \
        lines(p.stdout)
    assert len(versions(server)) == 4

    p = ctl(server, env, "apply", "-f", str(pol), "--prune")
    assert p.returncode == 0, p.stderr
    assert p.stderr == ("mdmctl: warning: --prune deletes 1 document not in "
                        "'%s'\n" % pol)
    out = lines(p.stdout)
    assert out[:4] == ["unchanged %s/%s (v1)" % d for d in DOCS[:3]] + [
        "DELETE deleted ConfigurationProfile/corp-vpn (v1)"]
    assert out[4] == "0 devices changed compliance state"
    assert versions(server) == {d: 1 for d in DOCS[:3]}
    r = server.api("GET", "/v1/policies/ConfigurationProfile/corp-vpn")
    assert r.status == 404

    # Nothing left to prune: no warning, nothing deleted.
    p = ctl(server, env, "apply", "-f", str(pol), "--prune")
    assert (p.returncode, p.stderr) == (0, "")
    assert "deleted" not in p.stdout

    # A directory with no documents is an error, not "delete everything".
    (tmp_path / "empty").mkdir()
    p = ctl(server, env, "apply", "-f", str(tmp_path / "empty"), "--prune")
    assert p.returncode == 1
    assert p.stderr == ("mdmctl: no policy documents in '%s' (files *.yaml, "
                        "*.yml, *.json)\n" % (tmp_path / "empty"))
    assert versions(server) == {d: 1 for d in DOCS[:3]}


# ---- invalid documents ----------------------------------------------------

def test_invalid_file_names_file_line_field_and_changes_nothing(
        server, env, fleet, tmp_path):
    assert ctl(server, env, "apply", "-f", POLICIES).returncode == 0
    before = policies(server)
    audit_before = server.api("GET", "/v1/audit?limit=1000").body["items"]
    pol = copy_policies(tmp_path)
    path = pol / "compliance.yaml"
    text = path.read_text()
    assert text.count("op: is_false") == 1
    path.write_text(text.replace("op: is_false", "op: bogus"))
    line = line_of(path, "op: bogus")
    # Another change in the same set, which must not be stored either.
    vpn = pol / "vpn.yaml"
    vpn.write_text(vpn.read_text().replace("port: 1194", "port: 443"))

    for args in (["apply", "-f", str(pol)],
                 ["apply", "-f", str(pol), "--prune"],
                 ["apply", "-f", str(pol), "--dry-run"],
                 ["diff", "-f", str(pol)]):
        p = ctl(server, env, *args)
        assert p.returncode == 1, (args, p.stdout)
        assert p.stdout == ""
        assert p.stderr == (
            "mdmctl: %s: line %d: spec.rules[2].op: expected one of eq, ne, "
            "lt, le, gt, ge, version_ge, version_lt, in, not_in, is_true, "
            "is_false, exists (got 'bogus')\n" % (path, line)), p.stderr
    assert policies(server) == before
    assert server.api("GET", "/v1/audit?limit=1000").body["items"] == \
        audit_before

    # A version the evaluator refuses is caught before sending too.
    path.write_text(text.replace('value: "12"', 'value: "12 "'))
    p = ctl(server, env, "apply", "-f", str(pol))
    assert p.returncode == 1
    assert p.stderr == ("mdmctl: %s: line %d: spec.rules[0].value: expected "
                        "a version such as '13.0'\n"
                        % (path, line_of(path, '"12 "')))
    assert policies(server) == before

    # The same kind and name twice in the set.
    path.write_text(text)
    (pol / "copy.yaml").write_text((pol / "os_update.yaml").read_text())
    p = ctl(server, env, "apply", "-f", str(pol))
    assert p.returncode == 1
    assert re.match(r"^mdmctl: .*: line \d+: metadata\.name: "
                    r"ConfigurationProfile 'os-update' duplicates .*$",
                    p.stderr), p.stderr
    assert policies(server) == before

    p = ctl(server, env, "apply", "-f", str(tmp_path / "nope"))
    assert p.returncode == 1
    assert p.stderr == "mdmctl: %s: no such file or directory\n" % (
        tmp_path / "nope")
    p = ctl(server, env, "apply")
    assert p.returncode == 2
    assert p.stderr.startswith("mdmctl: missing -f PATH")


class _Refuser(http.server.BaseHTTPRequestHandler):
    """Answers every request with the 422 a server gives a document its
    validator refuses (a newer server may be stricter than this mdmctl)."""
    detail = None
    seen = []

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        type(self).seen.append((self.path, json.loads(self.rfile.read(n))))
        body = json.dumps({"type": "https://mdm.dev/problems/invalid-document",
                           "title": "invalid document", "status": 422,
                           "detail": type(self).detail}).encode()
        self.send_response(422)
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_server_refusal_names_the_file_and_line(env):
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Refuser)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        url = "http://127.0.0.1:%d" % httpd.server_address[1]
        _Refuser.detail = ("documents[3]: line 0: spec.settings.vpn.port: "
                           "expected an integer in 1..1024")
        p = run([MDMCTL, "apply", "-f", POLICIES, "--server", url, "--token",
                 "mdm_at_" + "x" * 43], env=env)
        vpn = os.path.join(POLICIES, "vpn.yaml")
        assert p.returncode == 1
        assert p.stdout == ""
        assert p.stderr == (
            "mdmctl: %s: line %d: spec.settings.vpn.port: expected an integer "
            "in 1..1024 (refused by the server as documents[3])\n"
            % (vpn, line_of(vpn, "port: 1194")))
        path, body = _Refuser.seen[-1]
        assert path == "/v1/policies:apply"
        assert body["dry_run"] is False and body["prune"] is False
        assert [(d["kind"], d["metadata"]["name"])
                for d in body["documents"]] == DOCS

        # A detail that names no document is shown as the server gave it.
        _Refuser.detail = "spec.rules[0].value: '12 ' is not a version"
        p = run([MDMCTL, "apply", "-f", POLICIES, "--dry-run", "--server",
                 url, "--token", "mdm_at_" + "x" * 43], env=env)
        assert p.returncode == 1
        assert p.stderr == ("mdmctl: POST /v1/policies:apply: 422 invalid "
                            "document: spec.rules[0].value: '12 ' is not a "
                            "version\n")
        assert _Refuser.seen[-1][1]["dry_run"] is True
    finally:
        httpd.shutdown()
        httpd.server_close()


# ---- policies list / show / delete ------------------------------------------

def test_policies_list_show_delete(server, env, fleet, tmp_path):
    assert ctl(server, env, "apply", "-f", POLICIES).returncode == 0

    p = ctl(server, env, "policies", "list", "-o", "table")
    assert p.returncode == 0, p.stderr
    out = lines(p.stdout)
    assert re.match(r"^KIND\s+NAME\s+VERSION\s+UPDATED\s+AUTHOR$", out[0])
    rows = [x.split()[:3] for x in out[1:]]
    assert rows == [[k, n, "1"] for k, n in sorted(DOCS)]
    owner = server.owner_token_id()
    assert all(x.split()[-1] == "token:" + owner for x in out[1:]), out

    p = ctl(server, env, "policies", "list", "--kind", "configuration-profile",
            "-o", "json")
    assert p.returncode == 0, p.stderr
    assert sorted(x["name"] for x in json.loads(p.stdout)) == [
        "corp-vpn", "device-encryption", "os-update"]

    # show: YAML that apply reads back unchanged.
    p = ctl(server, env, "policies", "show", "ConfigurationProfile",
            "corp-vpn", "-o", "yaml")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("apiVersion: mdm/v1\nkind: ConfigurationProfile\n")
    (tmp_path / "vpn.yaml").write_text(p.stdout)
    p = ctl(server, env, "apply", "-f", str(tmp_path / "vpn.yaml"))
    assert p.returncode == 0, p.stderr
    assert lines(p.stdout)[0] == "unchanged ConfigurationProfile/corp-vpn (v1)"

    p = ctl(server, env, "policies", "show", "configuration-profile",
            "corp-vpn", "-o", "table")
    assert p.returncode == 0, p.stderr
    out = lines(p.stdout)
    assert out[0] == "# version: 1"
    assert re.match(r"^# hash: [0-9a-f]{64}$", out[1])
    assert "apiVersion: mdm/v1" in out
    p = ctl(server, env, "policies", "show", "CompliancePolicy", "baseline",
            "-o", "json")
    assert p.returncode == 0, p.stderr
    stored = json.loads(p.stdout)
    assert stored == [x for x in policies(server)
                      if x["name"] == "baseline"][0]

    p = ctl(server, env, "policies", "show", "CompliancePolicy", "nope")
    assert p.returncode == 1
    assert p.stderr == ("mdmctl: GET /v1/policies/CompliancePolicy/nope: 404 "
                        "not found: no CompliancePolicy 'nope'\n")

    # delete: devices are re-evaluated at once.
    p = ctl(server, env, "policies", "delete", "compliance-policy", "baseline")
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    out = lines(p.stdout)
    assert out[0] == "DELETE deleted CompliancePolicy/baseline (v1)"
    assert out[1] == "3 devices changed compliance state:"
    assert {h: (f, t) for h, f, t in change_rows(p.stdout).values()} == {
        "deb-ws-0042": ("compliant", "unknown"),
        "ubuntu-dev-17": ("noncompliant", "unknown"),
        "alpine-kiosk-3": ("noncompliant", "unknown")}
    r = server.api("GET", "/v1/policies/CompliancePolicy/baseline")
    assert r.status == 404
    assert states(server, fleet) == {n: "unknown" for n in DEVICES}
    p = ctl(server, env, "policies", "delete", "CompliancePolicy", "baseline")
    assert p.returncode == 1
    assert "404" in p.stderr
    p = ctl(server, env, "policies", "show", "CompliancePolicy")
    assert p.returncode == 2
