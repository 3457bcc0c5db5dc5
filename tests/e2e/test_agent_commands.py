"""Commands on the device (docs/api.md "Commands", "Agent side"; CONTRACT
section 5): a real mdmd and a real mdm-agent on a copy of
tests/fixtures/devices/debian12-luks.  Every hook the agent runs is a script
under --root (written by these tests into <root>/hooks), so nothing here can
lock, wipe or reboot the machine the tests run on.

The agent fetches GET /v1/agent/commands when the check-in says
pending_commands > 0, runs each command at most once (its journal,
<state-dir>/commands.json, survives restarts and a SIGKILL) and reports
acknowledged, then completed or failed with a detail."""
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from mdmtest import AGENT, MDM_FIXTURES, SLOW, clean_env, run, wait_for

FIXTURE_ROOT = os.path.join(MDM_FIXTURES, "devices", "debian12-luks")
VPN_PATH = "etc/openvpn/client/mdm.conf"

COUNT_HOOK = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/runs"
echo "done $1"
"""
FAIL_HOOK = """#!/bin/sh
echo 'no session to lock' >&2
exit 4
"""
SLOW_HOOK = """#!/bin/sh
echo $$ > "$(dirname "$0")/slow.pid"
echo started >> "$(dirname "$0")/runs"
exec sleep 60
"""


class Device:
    def __init__(self, tmp_path, name="dev"):
        self.root = str(tmp_path / (name + "-root"))
        self.state = str(tmp_path / (name + "-state"))
        shutil.copytree(FIXTURE_ROOT, self.root, symlinks=True)
        os.makedirs(self.path("hooks"))
        for n, text in (("count.sh", COUNT_HOOK), ("fail.sh", FAIL_HOOK),
                        ("slow.sh", SLOW_HOOK)):
            self.write("hooks/" + n, text, 0o755)
        self.env = clean_env({"HOME": str(tmp_path / "home")})
        self.id = None
        self.token = None

    def path(self, rel):
        return os.path.join(self.root, rel)

    def write(self, rel, text, mode=0o644):
        p = self.path(rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)

    def config(self, text):
        os.makedirs(self.state, mode=0o700, exist_ok=True)
        with open(os.path.join(self.state, "agent.conf"), "w") as f:
            f.write(text)

    def argv(self, *args):
        return [AGENT] + list(args) + ["--state-dir", self.state,
                                       "--root", self.root]

    def agent(self, *args):
        return run(self.argv(*args), env=self.env)

    def enroll(self, server):
        et = server.create_etoken()["token"]
        p = self.agent("enroll", "--server", server.url, "--token", et)
        assert p.returncode == 0, p.stderr
        c = self.creds()
        self.id, self.token = c["device_id"], c["device_token"]

    def run_once(self, expect=0):
        p = self.agent("run", "--once")
        assert p.returncode == expect, p.stderr
        return p

    def creds(self):
        with open(os.path.join(self.state, "credentials.json")) as f:
            return json.load(f)

    def runs(self):
        try:
            with open(self.path("hooks/runs")) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def journal(self):
        with open(os.path.join(self.state, "commands.json")) as f:
            return json.load(f)["entries"]


@pytest.fixture
def dev(server, tmp_path):
    d = Device(tmp_path)
    d.enroll(server)
    r = server.api("GET", "/v1/agent/commands", token=d.token)
    if r.status == 404:
        pytest.skip("the server does not answer GET /v1/agent/commands yet")
    assert r.status == 200, r.raw
    return d


def command(server, dev, type_, params=None):
    body = {"type": type_}
    if params is not None:
        body["params"] = params
    r = server.api("POST", "/v1/devices/%s/commands" % dev.id, body)
    assert r.status == 201, r.raw
    return r.body["id"]


def get(server, cid):
    r = server.api("GET", "/v1/commands/" + cid)
    assert r.status == 200, r.raw
    return r.body


def test_lock_runs_once_and_reports(server, dev):
    dev.config("lock_hook = hooks/count.sh lock\n")
    cid = command(server, dev, "lock")
    dev.run_once()
    c = get(server, cid)
    assert c["status"] == "completed"
    assert c["detail"] == "done lock"
    assert c["acknowledged_at"] is not None
    assert c["completed_at"] is not None
    assert dev.runs() == ["lock"]
    assert [(e["id"], e["state"], e["status"], e["reported"])
            for e in dev.journal()] == [(cid, "done", "completed", True)]
    assert os.stat(os.path.join(dev.state, "commands.json")).st_mode & 0o777 \
        == 0o600

    # Nothing pending any more: another round runs nothing.
    dev.run_once()
    assert dev.runs() == ["lock"]
    assert get(server, cid)["status"] == "completed"


def test_failures_are_reported_with_detail(server, dev):
    dev.config("reboot_hook = hooks/fail.sh\n")
    lock = command(server, dev, "lock")          # no lock hook with --root
    reboot = command(server, dev, "reboot")
    inst = command(server, dev, "install_profile", {"name": "x"})
    rot = command(server, dev, "rotate_certificate")
    update = command(server, dev, "os_update")
    dev.run_once()
    assert (get(server, lock)["status"], get(server, lock)["detail"]) == \
        ("failed", "no lock hook configured")
    assert (get(server, reboot)["status"], get(server, reboot)["detail"]) == \
        ("failed", "exit status 4: no session to lock")
    c = get(server, inst)
    assert c["status"] == "failed"
    assert c["detail"].startswith(
        "profile 'x' is not assigned to this device (assign it with "
        "spec.assign); applied policy "), c["detail"]
    # The certificate is rotated (a new key, the old certificate revoked).
    c = get(server, rot)
    assert c["status"] == "completed", c
    d = json.loads(c["detail"])
    assert set(d) == {"fingerprint", "not_after"}
    assert server.q("SELECT fingerprint FROM device_certs WHERE revoked_at "
                    "IS NULL") == [(d["fingerprint"],)]
    assert get(server, update)["detail"] == "no os_update_command configured"
    assert dev.runs() == []


VPN_PROFILE = {"apiVersion": "mdm/v1", "kind": "ConfigurationProfile",
               "metadata": {"name": "corp-vpn"},
               "spec": {"assign": {"platforms": ["linux"]},
                        "settings": {"vpn": {"remote": "vpn.corp.example.com",
                                             "port": 1194, "proto": "udp"}}}}


def test_install_and_remove_profile(server, dev):
    """install_profile/remove_profile make the device apply its bundle now
    and confirm the profile's state; assignment stays in the policy
    repository (spec.assign)."""
    # Bad params are refused at creation, nothing is queued.
    for params in (None, {}, {"name": ""}, {"name": "Bad_Name"},
                   {"name": 7}):
        body = {"type": "install_profile"}
        if params is not None:
            body["params"] = params
        r = server.api("POST", "/v1/devices/%s/commands" % dev.id, body)
        assert r.status == 400, (params, r.raw)
        assert "params.name" in r.body["detail"]
    r = server.api("GET", "/v1/devices/%s/commands" % dev.id)
    assert r.body["items"] == []

    r = server.api("PUT", "/v1/policies/ConfigurationProfile/corp-vpn",
                   VPN_PROFILE)
    assert r.status == 201, r.raw
    dev.run_once()                      # the policy step applies it
    assert os.path.exists(dev.path(VPN_PATH))
    os.unlink(dev.path(VPN_PATH))       # drifted: install puts it back now
    inst = command(server, dev, "install_profile", {"name": "corp-vpn"})
    dev.run_once()
    c = get(server, inst)
    assert c["status"] == "completed", c
    assert c["detail"].startswith("profile 'corp-vpn' version 1 applied; "
                                  "applied policy "), c["detail"]
    assert c["detail"].endswith(": 1 applied, 0 failed, 0 not supported")
    assert os.path.exists(dev.path(VPN_PATH))

    # Still assigned: it cannot be removed from the device.
    rem = command(server, dev, "remove_profile", {"name": "corp-vpn"})
    dev.run_once()
    c = get(server, rem)
    assert (c["status"], c["detail"]) == (
        "failed", "profile 'corp-vpn' is still assigned to this device "
        "(version 1): unassign it in the policy repository first")
    assert os.path.exists(dev.path(VPN_PATH))

    # Unassigned: remove_profile confirms it is gone from the device.
    r = server.api("DELETE", "/v1/policies/ConfigurationProfile/corp-vpn")
    assert r.status in (200, 204), r.raw
    rem = command(server, dev, "remove_profile", {"name": "corp-vpn"})
    dev.run_once()
    c = get(server, rem)
    assert c["status"] == "completed", c
    assert c["detail"].startswith("profile 'corp-vpn' is not applied; "
                                  "applied policy "), c["detail"]
    assert not os.path.exists(dev.path(VPN_PATH))


def test_os_update_and_refresh_inventory(server, dev):
    dev.config("os_update_command = hooks/count.sh upgrade -y\n")
    up = command(server, dev, "os_update")
    ref = command(server, dev, "refresh_inventory")
    dev.run_once()
    c = get(server, up)
    assert (c["status"], c["detail"]) == ("completed", "done upgrade")
    assert dev.runs() == ["upgrade -y"]
    c = get(server, ref)
    assert (c["status"], c["detail"]) == ("completed", "inventory sent")


def test_selective_wipe_through_retire(server, dev):
    dev.config("")
    managed = os.path.join(dev.state, "managed")
    os.makedirs(os.path.join(managed, "mail"))
    with open(os.path.join(managed, "mail", "inbox"), "w") as f:
        f.write("corporate")
    dev.write(VPN_PATH, "client\n", 0o600)
    dev.write("etc/openvpn/client/home.conf", "client\n", 0o600)
    with open(os.path.join(dev.state, "os_update.json"), "w") as f:
        f.write("{}")
    before = set(os.listdir(dev.path("etc")))

    r = server.api("POST", "/v1/devices/%s/retire" % dev.id,
                   {"wipe": "selective"})
    assert r.status == 202, r.raw
    cid = r.body["retire_command_id"]
    dev.run_once()
    c = get(server, cid)
    assert c["type"] == "selective_wipe"
    assert c["status"] == "completed", c
    # policy.json is there when the round's policy step kept a bundle.
    assert c["detail"] in (
        "removed: managed_dir (1 file(s)), vpn profile, os_update.json; "
        "credentials kept",
        "removed: managed_dir (1 file(s)), vpn profile, os_update.json, "
        "policy.json; credentials kept")
    assert not os.path.exists(os.path.join(dev.state, "policy.json"))
    assert not os.path.exists(managed)
    assert not os.path.exists(dev.path(VPN_PATH))
    assert not os.path.exists(os.path.join(dev.state, "os_update.json"))
    # Nothing else went.
    assert os.path.exists(dev.path("etc/openvpn/client/home.conf"))
    assert set(os.listdir(dev.path("etc"))) == before
    assert os.path.exists(os.path.join(dev.state, "credentials.json"))
    # The device is retired now: its token opens nothing.
    wait_for(lambda: server.api("GET", "/v1/devices/" + dev.id).body
             ["state"] == "retired", what="device retired")
    p = dev.run_once(expect=1)
    assert "refused" in p.stderr


def test_wipe_stops_managing(server, dev):
    dev.config("wipe_hook = hooks/count.sh wipe\n")
    cid = command(server, dev, "wipe")
    p = subprocess.Popen(dev.argv("run"), env=dev.env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=30 * SLOW)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise
    assert p.returncode == 0, err
    assert "device wiped: credentials removed" in err
    assert "no longer managed" in err
    c = get(server, cid)
    assert (c["status"], c["detail"]) == ("completed", "done wipe")
    assert dev.runs() == ["wipe"]
    assert not os.path.exists(os.path.join(dev.state, "credentials.json"))
    p = dev.run_once(expect=1)
    assert "not enrolled" in p.stderr


def test_wipe_hook_failure_keeps_managing(server, dev):
    dev.config("wipe_hook = hooks/fail.sh\n")
    cid = command(server, dev, "wipe")
    dev.run_once()
    c = get(server, cid)
    assert (c["status"], c["detail"]) == \
        ("failed", "exit status 4: no session to lock")
    assert os.path.exists(os.path.join(dev.state, "credentials.json"))


def test_killed_during_a_command_never_runs_it_again(server, dev):
    dev.config("lock_hook = hooks/slow.sh\n")
    cid = command(server, dev, "lock")
    p = subprocess.Popen(dev.argv("run", "--once"), env=dev.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    try:
        wait_for(lambda: dev.runs() == ["started"], timeout=20,
                 what="the lock hook to start")
        assert [e["state"] for e in dev.journal()] == ["started"]
        assert get(server, cid)["status"] == "acknowledged"
        p.kill()
        p.wait()
    finally:
        p.kill()
        p.communicate()
        # The hook runs in its own process group (its pid): end it too.
        try:
            with open(dev.path("hooks/slow.pid")) as f:
                os.killpg(int(f.read()), signal.SIGKILL)
        except (OSError, ValueError):
            pass

    dev.config("lock_hook = hooks/count.sh lock\n")
    dev.run_once()
    c = get(server, cid)
    assert (c["status"], c["detail"]) == \
        ("failed", "interrupted: the agent stopped while the command ran")
    assert dev.runs() == ["started"]      # the hook did not run again
    dev.run_once()
    assert dev.runs() == ["started"]


def test_undelivered_result_is_sent_again(server, dev):
    dev.config("lock_hook = hooks/count.sh lock\n")
    cid = command(server, dev, "lock")
    dev.run_once()
    assert get(server, cid)["status"] == "completed"
    # As if the server had not answered the result: it stays in the journal
    # and goes with the next round (no pending command needed), once.
    entries = dev.journal()
    entries[0]["reported"] = False
    with open(os.path.join(dev.state, "commands.json"), "w") as f:
        json.dump({"version": 1, "entries": entries}, f)
    dev.run_once()
    assert dev.journal()[0]["reported"] is True
    assert dev.runs() == ["lock"]
    assert get(server, cid)["status"] == "completed"


def test_bad_config_is_refused(server, dev, tmp_path):
    dev.config("lock_hook = a\nself_destruct = yes\n")
    p = dev.run_once(expect=1)
    assert p.stderr.strip().endswith(
        "cannot read '%s': line 2: unknown key 'self_destruct'" %
        os.path.join(dev.state, "agent.conf")), p.stderr
    other = tmp_path / "other.conf"
    other.write_text("lock_hook = hooks/count.sh lock\n")
    cid = command(server, dev, "lock")
    p = dev.agent("run", "--once", "--config", str(other))
    assert p.returncode == 0, p.stderr
    assert get(server, cid)["detail"] == "done lock"
    p = dev.agent("run", "--once", "--config", str(tmp_path / "none.conf"))
    assert p.returncode == 1
    assert "no such file" in p.stderr
