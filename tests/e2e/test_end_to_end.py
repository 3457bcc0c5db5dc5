"""The three programs together: mdmctl makes an enrollment token, real
mdm-agent processes enroll the fake device roots in tests/fixtures/devices
and check in once, and mdmctl shows exactly what each agent reports."""
import csv
import io
import json
import os
import shutil
import stat

import pytest

from mdmtest import AGENT, MDM_FIXTURES, MDMCTL, parse_time, run

DEVICE_ROOTS = ["debian12-luks", "ubuntu2204-plain", "alpine-old"]


@pytest.fixture(scope="module", autouse=True)
def _agent_and_cli():
    for prog in (AGENT, MDMCTL):
        assert os.access(prog, os.X_OK), "missing %s" % prog
        p = run([prog, "--help"])
        assert p.returncode == 0, (prog, p.stderr)


@pytest.fixture
def env(tmp_path):
    """An environment with no mdmctl config or MDM_* settings of the user's."""
    e = {k: v for k, v in os.environ.items()
         if not k.startswith("MDM_") or k in ("MDM_BIN", "MDM_FIXTURES")}
    e["HOME"] = str(tmp_path / "home")
    e.pop("XDG_CONFIG_HOME", None)
    return e


def roots():
    found = [n for n in DEVICE_ROOTS
             if os.path.isdir(os.path.join(MDM_FIXTURES, "devices", n))]
    assert found, "no fixture device roots under %s" % MDM_FIXTURES
    return found


def ctl(server, env, *args):
    p = run([MDMCTL] + list(args) +
            ["--server", server.url, "--token-file",
             os.path.join(server.data_dir, "admin.token")], env=env)
    return p


def agent(env, *args):
    return run([AGENT] + list(args), env=env)


def facts_of(env, root):
    p = agent(env, "facts", "--root", root)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_enroll_check_in_and_list(server, env, tmp_path):
    names = roots()
    p = ctl(server, env, "enroll-token", "create", "--uses", str(len(names)))
    assert p.returncode == 0, p.stderr
    token = p.stdout.strip()
    assert p.stdout == token + "\n" and token.count(".") == 2
    et_id, max_uses, uses = server.q1(
        "SELECT id, max_uses, uses FROM enrollment_tokens")
    assert (max_uses, uses) == (len(names), 0)

    agents = {}  # device id -> (name, root, state dir, expected facts)
    for i, name in enumerate(names):
        root = os.path.join(MDM_FIXTURES, "devices", name)
        state = str(tmp_path / ("a%d" % (i + 1)))
        expected = facts_of(env, root)
        p = agent(env, "enroll", "--server", server.url, "--token", token,
                  "--state-dir", state, "--root", root)
        assert p.returncode == 0, p.stderr
        cred = os.path.join(state, "credentials.json")
        assert stat.S_IMODE(os.stat(cred).st_mode) == 0o600
        with open(cred) as f:
            c = json.load(f)
        dev_id = c["device_id"]
        assert dev_id in p.stdout
        p = agent(env, "run", "--once", "--state-dir", state, "--root", root)
        assert p.returncode == 0, p.stderr
        agents[dev_id] = (name, root, state, expected)
    assert server.q1("SELECT uses FROM enrollment_tokens") == len(names)

    p = ctl(server, env, "devices", "list", "-o", "json")
    assert p.returncode == 0, p.stderr
    listed = json.loads(p.stdout)
    assert isinstance(listed, list)
    assert sorted(d["id"] for d in listed) == sorted(agents)
    for d in listed:
        name, root, state, expected = agents[d["id"]]
        assert d["facts"] == expected, name
        assert d["last_seen"] is not None
        assert parse_time(d["last_seen"]) >= parse_time(d["enrolled_at"])
        assert d["hostname"] == expected["hostname"]
        assert d["serial"] == expected["serial"]
        assert d["platform"] == expected["platform"]
        assert d["state"] == "active"
        # The store holds the same facts.
        stored = server.q1("SELECT facts FROM devices WHERE id = ?", (d["id"],))
        assert json.loads(stored) == expected
        # Each agent sent its telemetry (an agent_started at least).
        types = [t for (t,) in server.q(
            "SELECT type FROM telemetry WHERE device_id = ?", (d["id"],))]
        assert types, name
        assert set(types) <= {"agent_started", "agent_stopped",
                              "fact_changed", "error", "queue_overflow"}

    p = ctl(server, env, "devices", "show", listed[0]["id"], "-o", "json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["facts"] == agents[listed[0]["id"]][3]

    p = ctl(server, env, "devices", "list", "-o", "csv")
    assert p.returncode == 0, p.stderr
    rows = list(csv.reader(io.StringIO(p.stdout)))
    header, data = rows[0], rows[1:]
    assert header[0] == "id"
    for col in ("hostname", "platform", "last_seen", "state"):
        assert col in header, header
    assert len(data) == len(names)
    assert all(len(r) == len(header) for r in data)
    by_id = {r[0]: dict(zip(header, r)) for r in data}
    assert sorted(by_id) == sorted(agents)
    for dev_id, r in by_id.items():
        assert r["hostname"] == agents[dev_id][3]["hostname"]
        assert r["last_seen"]

    # The token is used up: one more enrollment fails with exit 1.
    p = agent(env, "enroll", "--server", server.url, "--token", token,
              "--state-dir", str(tmp_path / "extra"), "--root",
              agents[listed[0]["id"]][1])
    assert p.returncode == 1
    assert p.stderr.strip()
    assert server.q1("SELECT count(*) FROM devices") == len(names)


def test_invalid_device_token_fails_run_once(server, env, tmp_path):
    name = roots()[0]
    root = os.path.join(MDM_FIXTURES, "devices", name)
    et = server.create_etoken(max_uses=2)
    good = str(tmp_path / "good")
    p = agent(env, "enroll", "--server", server.url, "--token", et["token"],
              "--state-dir", good, "--root", root)
    assert p.returncode == 0, p.stderr
    assert agent(env, "run", "--once", "--state-dir", good,
                 "--root", root).returncode == 0

    # A copy of the state whose device token's signature is broken.
    bad = str(tmp_path / "bad")
    shutil.copytree(good, bad)
    cred = os.path.join(bad, "credentials.json")
    with open(cred) as f:
        c = json.load(f)
    sig = c["device_token"].rsplit(".", 1)[1]
    c["device_token"] = c["device_token"][:-len(sig)] + \
        ("A" * len(sig) if sig != "A" * len(sig) else "B" * len(sig))
    with open(cred, "w") as f:
        json.dump(c, f)
    os.chmod(cred, 0o600)
    last = server.q1("SELECT last_seen FROM device_status")
    p = agent(env, "run", "--once", "--state-dir", bad, "--root", root)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert p.stderr.strip()
    assert server.q1("SELECT last_seen FROM device_status") == last

    # A retired device's genuine token stops working too.
    server.execute("UPDATE device_status SET state = 'retired'")
    p = agent(env, "run", "--once", "--state-dir", good, "--root", root)
    assert p.returncode == 1, (p.returncode, p.stderr)
