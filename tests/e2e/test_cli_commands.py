"""Device commands from the command line: mdmctl lock / reboot / update /
wipe / retire and mdmctl commands list|show|cancel|create, against a real
mdmd (CONTRACT §1 and §5, docs/api.md "Commands").  The tests act as the
device through the HTTP API with its device token to move commands along.

When the server does not know POST /v1/devices/{id}/commands yet (404 or
405 for a known device), every test here is skipped.
"""
import json
import os
import pty
import re
import subprocess

import pytest

from mdmtest import MDMCTL, UUID_RE, parse_time, run

_SERVER_HAS_COMMANDS = None


@pytest.fixture(scope="module", autouse=True)
def _program():
    assert os.access(MDMCTL, os.X_OK), "missing %s" % MDMCTL


@pytest.fixture
def env(tmp_path):
    """No mdmctl config or MDM_* settings of the user's."""
    e = {k: v for k, v in os.environ.items()
         if not k.startswith("MDM_") or k in ("MDM_BIN", "MDM_FIXTURES")}
    e["HOME"] = str(tmp_path / "home")
    e.pop("XDG_CONFIG_HOME", None)
    return e


@pytest.fixture
def srv(server):
    """The server, or a skip when it has no command endpoints yet.  The
    probe sends an invalid type, which a server that has them refuses
    (400) without creating anything."""
    global _SERVER_HAS_COMMANDS
    if _SERVER_HAS_COMMANDS is None:
        dev = server.enroll_many(1, start=900)[0]
        r = server.api("POST", "/v1/devices/%s/commands" % dev["device_id"],
                       {"type": "no-such-type"})
        _SERVER_HAS_COMMANDS = r.status not in (404, 405)
    if not _SERVER_HAS_COMMANDS:
        pytest.skip("mdmd has no POST /v1/devices/{id}/commands yet")
    return server


def ctl(server, env, *args, token_file=None, stdin=subprocess.DEVNULL):
    """Run mdmctl against server as its owner (or with token_file); stdin
    is not a terminal unless given."""
    return run([MDMCTL] + list(args) +
               ["--server", server.url, "--token-file",
                token_file or os.path.join(server.data_dir, "admin.token")],
               env=env, stdin=stdin)


def lines(s):
    return s.splitlines()


def one_id(p):
    """The command id that a create printed, alone on its line."""
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    assert UUID_RE.match(p.stdout.rstrip("\n")), p.stdout
    assert p.stdout.endswith("\n") and p.stdout.count("\n") == 1
    return p.stdout.strip()


def get_cmd(server, cid):
    r = server.api("GET", "/v1/commands/%s" % cid)
    assert r.status == 200, r.raw
    return r.body


def device_cmds(server, dev_id):
    r = server.api("GET", "/v1/devices/%s/commands" % dev_id)
    assert r.status == 200, r.raw
    return r.body["items"]


def token_file(tmp_path, server, role):
    path = tmp_path / ("%s.token" % role)
    path.write_text(server.create_token(role) + "\n")
    os.chmod(path, 0o600)
    return str(path)


# ---- one device ------------------------------------------------------------

def test_verbs_create_the_right_types(srv, env):
    dev = srv.enroll_many(1)[0]["device_id"]
    want = [(("lock",), "lock"), (("reboot",), "reboot"),
            (("update",), "os_update"), (("wipe", "--selective"),
                                         "selective_wipe"),
            (("wipe", "--yes"), "wipe")]
    ids = []
    for args, typ in want:
        cid = one_id(ctl(srv, env, *(args + (dev,))))
        c = get_cmd(srv, cid)
        assert c["type"] == typ, (args, c)
        assert c["device_id"] == dev
        assert c["status"] == "queued"
        ids.append(cid)
    # Newest first, exactly these five.
    assert [c["id"] for c in device_cmds(srv, dev)] == ids[::-1]


def test_create_json_and_expires(srv, env):
    dev = srv.enroll_many(1)[0]["device_id"]
    p = ctl(srv, env, "-o", "json", "lock", dev, "--expires", "2h")
    assert p.returncode == 0, p.stderr
    c = json.loads(p.stdout)
    assert c["type"] == "lock" and c["device_id"] == dev
    assert c["status"] == "queued"
    assert parse_time(c["expires_at"]) - parse_time(c["issued_at"]) == 7200
    assert get_cmd(srv, c["id"])["expires_at"] == c["expires_at"]
    # The server's default: 24 h.
    c = get_cmd(srv, one_id(ctl(srv, env, "reboot", dev)))
    assert parse_time(c["expires_at"]) - parse_time(c["issued_at"]) == 86400
    # -o yaml: the object, not the id alone.
    p = ctl(srv, env, "-o", "yaml", "reboot", dev)
    assert p.returncode == 0, p.stderr
    assert re.search(r"^type: reboot$", p.stdout, re.M), p.stdout
    assert re.search(r"^device_id: %s$" % dev, p.stdout, re.M), p.stdout


def test_usage_errors_send_nothing(srv, env):
    dev = srv.enroll_many(1)[0]["device_id"]
    for args, msg in [
            (("lock", dev, "--expires", "soon"),
             "mdmctl: invalid value 'soon' for --expires: expected a "
             "duration such as 3600, 90m, 24h or 7d"),
            (("update", dev, "--params", "[1]"),
             "mdmctl: invalid value for --params: expected a JSON object"),
            (("retire", dev, "--wipe", "half", "--yes"),
             "mdmctl: invalid value 'half' for --wipe: expected selective, "
             "full or none"),
            (("commands", "create", "--type", "explode", "--all"),
             "mdmctl: invalid value 'explode' for --type: expected lock, "
             "wipe, selective_wipe, reboot, os_update, install_profile, "
             "remove_profile, rotate_certificate or refresh_inventory"),
            (("lock",), "mdmctl: missing arguments; usage: mdmctl lock ID "
             "[--expires 24h]")]:
        p = ctl(srv, env, *args)
        assert p.returncode == 2, (args, p.stderr)
        assert lines(p.stderr)[0] == msg
        assert p.stdout == ""
    assert device_cmds(srv, dev) == []


def test_server_errors_are_one_line(srv, env):
    p = ctl(srv, env, "lock", "00000000-0000-4000-8000-000000000000")
    assert p.returncode == 1
    assert p.stdout == ""
    assert re.match(r"^mdmctl: POST /v1/devices/00000000-0000-4000-8000-"
                    r"000000000000/commands: 404 [^\n]+\n$", p.stderr), \
        p.stderr
    p = ctl(srv, env, "commands", "show",
            "00000000-0000-4000-8000-000000000000")
    assert p.returncode == 1
    assert re.match(r"^mdmctl: GET /v1/commands/00000000-0000-4000-8000-"
                    r"000000000000: 404 [^\n]+\n$", p.stderr), p.stderr


# ---- list / show / cancel --------------------------------------------------

def test_list_show_cancel(srv, env):
    d = srv.enroll_many(1)[0]
    dev, dtok = d["device_id"], d["device_token"]
    lock = one_id(ctl(srv, env, "lock", dev))
    reboot = one_id(ctl(srv, env, "reboot", dev))

    # The device fetches both (sent), then runs the lock.
    r = srv.api("GET", "/v1/agent/commands", token=dtok)
    assert r.status == 200, r.raw
    assert [c["id"] for c in r.body["items"]] == [lock, reboot]
    for st, detail in (("acknowledged", None), ("completed", "screen locked")):
        r = srv.api("POST", "/v1/agent/commands/%s/result" % lock,
                    {"status": st, "detail": detail}, token=dtok)
        assert r.status == 200, r.raw
    update = one_id(ctl(srv, env, "update", dev))

    p = ctl(srv, env, "-o", "json", "commands", "list", dev)
    assert p.returncode == 0, p.stderr
    items = json.loads(p.stdout)
    assert [(c["id"], c["type"], c["status"]) for c in items] == [
        (update, "os_update", "queued"), (reboot, "reboot", "sent"),
        (lock, "lock", "completed")]
    assert items[2]["detail"] == "screen locked"

    p = ctl(srv, env, "-o", "table", "commands", "list", dev)
    assert p.returncode == 0, p.stderr
    out = lines(p.stdout)
    assert out[0].split() == ["ID", "TYPE", "STATUS", "ISSUED", "UPDATED",
                              "DETAIL"]
    assert len(out) == 4
    assert out[1].split()[:3] == [update, "os_update", "queued"]
    assert out[1].split()[-1] == "-"
    assert out[2].split()[:3] == [reboot, "reboot", "sent"]
    assert out[3].split()[:3] == [lock, "lock", "completed"]
    assert out[3].endswith("screen locked")

    p = ctl(srv, env, "-o", "json", "commands", "list", dev,
            "--status", "completed")
    assert p.returncode == 0, p.stderr
    assert [c["id"] for c in json.loads(p.stdout)] == [lock]

    p = ctl(srv, env, "-o", "json", "commands", "show", lock)
    assert p.returncode == 0, p.stderr
    c = json.loads(p.stdout)
    assert c == get_cmd(srv, lock)
    assert c["status"] == "completed" and c["completed_at"]
    p = ctl(srv, env, "-o", "table", "commands", "show", lock)
    assert p.returncode == 0, p.stderr
    assert re.search(r"^status:\s+completed$", p.stdout, re.M), p.stdout

    # Cancel: the sent reboot and the queued update may go; the completed
    # lock may not (409, one line, exit 1).
    p = ctl(srv, env, "-o", "table", "commands", "cancel", reboot)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "command %s canceled\n" % reboot
    assert get_cmd(srv, reboot)["status"] == "canceled"
    p = ctl(srv, env, "-o", "json", "commands", "cancel", update)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["status"] == "canceled"
    p = ctl(srv, env, "commands", "cancel", lock)
    assert p.returncode == 1
    assert p.stdout == ""
    assert re.match(r"^mdmctl: POST /v1/commands/%s/cancel: 409 [^\n]+\n$"
                    % lock, p.stderr), p.stderr
    assert get_cmd(srv, lock)["status"] == "completed"


def test_list_empty(srv, env):
    dev = srv.enroll_many(1)[0]["device_id"]
    p = ctl(srv, env, "-o", "table", "commands", "list", dev)
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""
    assert p.stderr == "No commands found.\n"


# ---- bulk ------------------------------------------------------------------

def test_bulk_by_label(srv, env):
    sales = [d["device_id"] for d in srv.enroll_many(
        3, labels={"dept": "sales"})]
    eng = [d["device_id"] for d in srv.enroll_many(
        2, labels={"dept": "eng"}, start=10)]
    p = ctl(srv, env, "-o", "table", "commands", "create", "--type", "reboot",
            "--label", "dept=sales")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "3 commands created\n"
    for d in sales:
        assert [c["type"] for c in device_cmds(srv, d)] == ["reboot"]
    for d in eng:
        assert device_cmds(srv, d) == []

    # -o json: the server's {count, ids}; the ids are the eng devices'.
    p = ctl(srv, env, "-o", "json", "commands", "create", "--type", "lock",
            "--label", "dept=eng", "--platform", "linux", "--expires", "1h")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["count"] == 2
    got = sorted(c["id"] for d in eng for c in device_cmds(srv, d))
    assert sorted(res["ids"]) == got
    c = get_cmd(srv, res["ids"][0])
    assert parse_time(c["expires_at"]) - parse_time(c["issued_at"]) == 3600

    # A selector that matches nothing.
    p = ctl(srv, env, "-o", "table", "commands", "create", "--type", "lock",
            "--label", "dept=nobody")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "0 commands created\n"


def test_bulk_needs_all_for_an_empty_selector(srv, env):
    devs = [d["device_id"] for d in srv.enroll_many(2)]
    p = ctl(srv, env, "commands", "create", "--type", "refresh_inventory")
    assert p.returncode == 2
    assert lines(p.stderr)[0] == ("mdmctl: no selector: give --label, "
                                  "--platform or --compliance, or --all for "
                                  "every active device")
    p = ctl(srv, env, "commands", "create", "--type", "lock", "--all",
            "--label", "a=b")
    assert p.returncode == 2
    assert lines(p.stderr)[0] == ("mdmctl: --all excludes --label, "
                                  "--platform and --compliance")
    p = ctl(srv, env, "commands", "create", "--type", "lock", "--all",
            devs[0])
    assert p.returncode == 2
    for d in devs:
        assert device_cmds(srv, d) == []

    p = ctl(srv, env, "-o", "table", "commands", "create", "--type",
            "refresh_inventory", "--all")
    assert p.returncode == 0, p.stderr
    r = srv.api("GET", "/v1/devices?state=active&limit=1000")
    assert r.status == 200 and r.body["next_cursor"] is None, r.raw
    n = len(r.body["items"])
    assert n >= 2
    assert p.stdout == "%d commands created\n" % n
    for d in devs:
        assert [c["type"] for c in device_cmds(srv, d)] == \
            ["refresh_inventory"]


def test_create_for_one_device(srv, env):
    dev = srv.enroll_many(1)[0]["device_id"]
    cid = one_id(ctl(srv, env, "commands", "create", "--type",
                     "install_profile", "--params", '{"name": "vpn"}', dev))
    c = get_cmd(srv, cid)
    assert c["type"] == "install_profile"
    assert c["params"] == {"name": "vpn"}


# ---- confirmation ----------------------------------------------------------

def test_destructive_refused_without_yes_off_a_terminal(srv, env):
    devs = srv.enroll_many(2, labels={"dept": "sales"})
    dev = devs[0]["device_id"]
    p = ctl(srv, env, "wipe", dev)
    assert p.returncode == 1
    assert p.stdout == ""
    assert p.stderr == ("mdmctl: refusing to wipe device '%s' without --yes: "
                        "standard input is not a terminal\n" % dev)
    for mode in ("selective", "full", "none"):
        p = ctl(srv, env, "retire", dev, "--wipe", mode)
        assert p.returncode == 1
        assert p.stderr == ("mdmctl: refusing to retire device '%s' without "
                            "--yes: standard input is not a terminal\n" % dev)
    for t in ("wipe", "selective_wipe"):
        p = ctl(srv, env, "commands", "create", "--type", t, "--label",
                "dept=sales")
        assert p.returncode == 1
        assert p.stderr == ("mdmctl: refusing to send '%s' to every active "
                            "device with label dept=sales without --yes: "
                            "standard input is not a terminal\n" % t)
    p = ctl(srv, env, "commands", "create", "--type", "wipe", dev)
    assert p.returncode == 1
    assert p.stderr == ("mdmctl: refusing to wipe device '%s' without --yes: "
                        "standard input is not a terminal\n" % dev)
    for d in devs:
        assert device_cmds(srv, d["device_id"]) == []
    r = srv.api("GET", "/v1/devices/%s" % dev)
    assert r.body["state"] == "active"
    assert not r.body.get("retire_pending")


def _ctl_on_tty(srv, env, answer, *args):
    """Run mdmctl with a terminal on stdin that has answer typed in."""
    master, slave = pty.openpty()
    try:
        os.write(master, answer.encode())
        return ctl(srv, env, *args, stdin=slave)
    finally:
        os.close(slave)
        os.close(master)


def test_wipe_asks_on_a_terminal(srv, env):
    dev = srv.enroll_many(1)[0]["device_id"]
    p = _ctl_on_tty(srv, env, "no\n", "wipe", dev)
    assert p.returncode == 1
    assert p.stdout == ""
    assert lines(p.stderr) == [
        "about to wipe device '%s': this erases all its data and cannot be "
        "undone" % dev,
        "Type 'yes' to continue: mdmctl: aborted: nothing was sent"]
    assert device_cmds(srv, dev) == []

    p = _ctl_on_tty(srv, env, "yes\n", "wipe", dev)
    cid = p.stdout.strip()
    assert p.returncode == 0, p.stderr
    assert UUID_RE.match(cid), p.stdout
    assert get_cmd(srv, cid)["type"] == "wipe"


# ---- roles -----------------------------------------------------------------

def test_helpdesk_may_lock_not_wipe(srv, env, tmp_path):
    dev = srv.enroll_many(1)[0]["device_id"]
    hd = token_file(tmp_path, srv, "helpdesk")
    cid = one_id(ctl(srv, env, "lock", dev, token_file=hd))
    assert get_cmd(srv, cid)["type"] == "lock"

    # The server's own words for the refusal.
    with open(hd) as f:
        r = srv.api("POST", "/v1/devices/%s/commands" % dev,
                    {"type": "wipe"}, token=f.read().strip())
    assert r.status == 403, r.raw
    p = ctl(srv, env, "wipe", "--yes", dev, token_file=hd)
    assert p.returncode == 1
    assert p.stdout == ""
    assert p.stderr == "mdmctl: POST /v1/devices/%s/commands: 403 %s: %s\n" % (
        dev, r.body["title"], r.body["detail"])
    p = ctl(srv, env, "retire", "--yes", dev, token_file=hd)
    assert p.returncode == 1
    assert re.match(r"^mdmctl: POST /v1/devices/%s/retire: 403 [^\n]+\n$"
                    % dev, p.stderr), p.stderr
    assert [c["type"] for c in device_cmds(srv, dev)] == ["lock"]


# ---- retire ----------------------------------------------------------------

def test_retire_without_wipe(srv, env):
    d = srv.enroll_many(1)[0]
    dev = d["device_id"]
    p = ctl(srv, env, "-o", "table", "retire", dev, "--wipe", "none", "--yes")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "device %s retired\n" % dev
    r = srv.api("GET", "/v1/devices/%s" % dev)
    assert r.body["state"] == "retired"
    r = srv.api("POST", "/v1/agent/checkin", {"facts": {}},
                token=d["device_token"])
    assert r.status == 401, r.raw
    # A retired device takes no more commands: 409, one line.
    p = ctl(srv, env, "lock", dev)
    assert p.returncode == 1
    assert re.match(r"^mdmctl: POST /v1/devices/%s/commands: 409 [^\n]+\n$"
                    % dev, p.stderr), p.stderr


def test_retire_selective(srv, env):
    d = srv.enroll_many(1)[0]
    dev = d["device_id"]
    p = ctl(srv, env, "-o", "json", "retire", dev, "--yes")
    assert p.returncode == 0, p.stderr
    body = json.loads(p.stdout)
    assert body["id"] == dev
    assert body["retire_pending"] is True
    cid = body["retire_command_id"]
    assert get_cmd(srv, cid)["type"] == "selective_wipe"

    # The device runs the wipe; then it is retired.
    r = srv.api("GET", "/v1/agent/commands", token=d["device_token"])
    assert [c["id"] for c in r.body["items"]] == [cid]
    for st in ("acknowledged", "completed"):
        r = srv.api("POST", "/v1/agent/commands/%s/result" % cid,
                    {"status": st, "detail": None}, token=d["device_token"])
        assert r.status == 200, r.raw
    r = srv.api("GET", "/v1/devices/%s" % dev)
    assert r.body["state"] == "retired"


def test_retire_table_names_the_command(srv, env):
    dev = srv.enroll_many(1)[0]["device_id"]
    p = ctl(srv, env, "-o", "table", "retire", dev, "--wipe", "full", "--yes")
    assert p.returncode == 0, p.stderr
    m = re.match(r"^device %s will be retired when its wipe command "
                 r"([0-9a-f-]{36}) is done\n$" % dev, p.stdout)
    assert m, p.stdout
    assert get_cmd(srv, m.group(1))["type"] == "wipe"
