"""The audit chain checked from outside (docs/api.md "Audit"): the head hash
of /v1/audit/verify and `mdmctl audit verify`, the hash at a given seq,
signed checkpoints (GET /v1/audit/checkpoint, verified here with Python's
cryptography against the documented byte string and key id), the tenant's
published key (GET /v1/audit/keys), and `mdmctl audit checkpoint` /
`mdmctl audit verify --checkpoint`, which must catch a tampered row, a
history rewritten with consistent hashes, a truncated log, and a forged or
foreign checkpoint.
"""
import base64
import hashlib
import json
import os

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature, encode_dss_signature)

from mdmtest import (MDMCTL, RFC3339_RE, UUID_RE, assert_problem, b64url,
                     b64url_decode, clean_env, run)


# ---- helpers ---------------------------------------------------------------

def audit_hash(prev, seq, at, actor, action, target, detail):
    """store.c mdm_audit_hash: SHA-256 of the compact, ASCII-escaped JSON
    array of the record's fields (ASCII content only in these tests)."""
    text = json.dumps([prev, seq, at, actor, action, target or "",
                       detail if detail is not None else "null"],
                      separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def rows(server, tenant):
    return server.q("SELECT seq, at, actor, action, target, detail, "
                    "prev_hash, hash FROM audit WHERE tenant_id = ? "
                    "ORDER BY seq", (tenant,))


def signed_text(cp):
    return ("mdm-audit-checkpoint/v1\n%s\n%d\n%s\n%s" % (
        cp["tenant"], cp["records"], cp["head_hash"], cp["time"])).encode()


def kid_of(pem):
    der = serialization.load_pem_public_key(pem.encode()).public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo)
    return b64url(hashlib.sha256(der).digest())


def verify_sig(pem, cp):
    """Raise InvalidSignature unless cp's signature (raw R||S, base64url)
    is the key's ES256 signature of the documented text."""
    raw = b64url_decode(cp["signature"])
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"),
                               int.from_bytes(raw[32:], "big"))
    key = serialization.load_pem_public_key(pem.encode())
    key.verify(der, signed_text(cp), ec.ECDSA(hashes.SHA256()))


def sign_with(key, cp):
    r, s = decode_dss_signature(key.sign(signed_text(cp),
                                         ec.ECDSA(hashes.SHA256())))
    return b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def ctl(server, cwd, *args, token_file=None):
    env = clean_env({"HOME": str(cwd)})
    return run([MDMCTL] + list(args) +
               ["--server", server.url, "--token-file",
                token_file or os.path.join(server.data_dir, "admin.token")],
               cwd=str(cwd), env=env)


def check(server, work, *args, token_file=None):
    """mdmctl -o table audit verify --checkpoint ARGS..."""
    return ctl(server, work, "-o", "table", "audit", "verify", "--checkpoint",
               *args, token_file=token_file)


def activity(server, n=3):
    """Audited changes: n enrollment tokens."""
    for _ in range(n):
        server.create_etoken(max_uses=1)


@pytest.fixture
def work(tmp_path):
    d = tmp_path / "cli"
    d.mkdir()
    return d


def checkpoint_file(server, work, name="cp.json"):
    p = ctl(server, work, "audit", "checkpoint", "-o", name)
    assert p.returncode == 0, p.stderr
    assert p.stdout == name + "\n"
    with open(work / name) as f:
        return json.load(f)


# ---- verify and the head hash ----------------------------------------------

def test_verify_reports_the_head_hash(server, work):
    activity(server)
    tenant = server.tenant_id()
    rs = rows(server, tenant)
    r = server.api("GET", "/v1/audit/verify")
    assert r.status == 200, r.raw
    assert r.body == {"ok": True, "records": len(rs), "first_bad": None,
                      "tenant": tenant, "head_hash": rs[-1][7]}
    # The chain as this test recomputes it from the rows' content.
    prev = ""
    for seq, at, actor, action, target, detail, ph, h in rs:
        assert ph == prev
        prev = audit_hash(prev, seq, at, actor, action, target, detail)
        assert h == prev
    r = server.api("GET", "/v1/audit/verify?seq=2")
    assert r.body["seq"] == 2 and r.body["hash_at_seq"] == rs[1][7]
    r = server.api("GET", "/v1/audit/verify?seq=%d" % (len(rs) + 1))
    assert r.body["hash_at_seq"] is None
    for bad in ("0", "-1", "x", "", "2.0"):
        body = assert_problem(server.api("GET", "/v1/audit/verify?seq=" +
                                         bad), 400)
        assert body["detail"] == "query 'seq': expected an integer >= 1"

    p = ctl(server, work, "-o", "table", "audit", "verify")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "audit chain ok: %d records, head %s\n" % (len(rs),
                                                                  rs[-1][7])
    p = ctl(server, work, "-o", "json", "audit", "verify")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["head_hash"] == rs[-1][7]


# ---- checkpoints -----------------------------------------------------------

def test_checkpoint_is_signed_by_the_published_key(server):
    activity(server)
    tenant = server.tenant_id()
    rs = rows(server, tenant)
    r = server.api("GET", "/v1/audit/checkpoint")
    assert r.status == 200, r.raw
    cp = r.body
    assert set(cp) == {"tenant", "records", "head_hash", "time", "kid", "alg",
                       "signature", "public_key"}
    assert cp["tenant"] == tenant and UUID_RE.match(tenant)
    assert cp["records"] == len(rs) and cp["head_hash"] == rs[-1][7]
    assert RFC3339_RE.match(cp["time"]) and len(cp["time"]) == 24  # ms
    assert cp["alg"] == "ES256"
    assert cp["kid"] == kid_of(cp["public_key"])
    verify_sig(cp["public_key"], cp)
    forged = dict(cp, records=cp["records"] - 1)
    with pytest.raises(InvalidSignature):
        verify_sig(cp["public_key"], forged)
    # Signing is a read: the log does not grow.
    assert len(rows(server, tenant)) == len(rs)

    keys = server.api("GET", "/v1/audit/keys")
    assert keys.status == 200, keys.raw
    (jwk,) = keys.body["keys"]
    assert jwk["kid"] == cp["kid"] and jwk["public_key"] == cp["public_key"]
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == \
        ("EC", "P-256", "ES256", "sig")
    nums = serialization.load_pem_public_key(
        cp["public_key"].encode()).public_numbers()
    assert b64url_decode(jwk["x"]) == nums.x.to_bytes(32, "big")
    assert b64url_decode(jwk["y"]) == nums.y.to_bytes(32, "big")


def test_checkpoint_roles(server):
    for role in ("auditor", "operator", "admin"):
        tok = server.create_token(role)
        for path in ("/v1/audit/checkpoint", "/v1/audit/keys"):
            assert server.api("GET", path, token=tok).status == 200, role
    helpdesk = server.create_token("helpdesk")
    for path in ("/v1/audit/checkpoint", "/v1/audit/keys",
                 "/v1/audit/verify"):
        assert_problem(server.api("GET", path, token=helpdesk), 403)
        assert_problem(server.api("GET", path, token=None), 401)


def test_checkpoint_round_trip(server, work):
    activity(server)
    cp = checkpoint_file(server, work)
    assert cp == {**cp, "tenant": server.tenant_id()}
    p = check(server, work, "cp.json")
    assert p.returncode == 0, p.stderr
    assert p.stdout == ("checkpoint ok: %d records up to head %s (signed %s "
                        "by key %s); the log now has %d records\n" % (
                            cp["records"], cp["head_hash"], cp["time"],
                            cp["kid"], cp["records"]))
    # The log grows: the checkpoint still holds.
    activity(server, 2)
    p = check(server, work, "cp.json")
    assert p.returncode == 0, p.stderr
    assert p.stdout.endswith("the log now has %d records\n" %
                             (cp["records"] + 2))
    # Standard output, and the pinned key.
    p = ctl(server, work, "audit", "checkpoint")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["records"] == cp["records"] + 2
    (work / "key.pem").write_text(cp["public_key"])
    p = check(server, work, "cp.json",
            "--key", "key.pem")
    assert p.returncode == 0, p.stderr


def test_tampered_row_is_named(server, work):
    activity(server, 4)
    tenant = server.tenant_id()
    checkpoint_file(server, work)
    n = server.execute("UPDATE audit SET actor = 'token:someone-else' "
                       "WHERE tenant_id = ? AND seq = 3", (tenant,))
    assert n == 1
    r = server.api("GET", "/v1/audit/verify")
    assert (r.body["ok"], r.body["first_bad"]) == (False, 3)
    p = ctl(server, work, "-o", "table", "audit", "verify")
    assert p.returncode == 1
    assert p.stdout == ""
    assert p.stderr == "mdmctl: audit chain broken at seq 3\n"
    p = check(server, work, "cp.json")
    assert p.returncode == 1
    assert p.stdout == ""
    assert p.stderr.startswith("mdmctl: audit log rewritten: record 3 fails "
                               "the chain, within the ")
    assert p.stderr.count("\n") == 1
    # No checkpoint over a broken chain.
    body = assert_problem(server.api("GET", "/v1/audit/checkpoint"), 409)
    assert "seq 3" in body["detail"]


def test_consistent_rewrite_is_caught_only_by_the_checkpoint(server, work):
    """Rewrite record 2 and every later hash so that the chain is whole
    again: verify alone is satisfied, the checkpoint is not."""
    activity(server, 4)
    tenant = server.tenant_id()
    cp = checkpoint_file(server, work)
    rs = rows(server, tenant)
    prev = rs[0][7]
    for seq, at, actor, action, target, detail, _, _ in rs[1:]:
        if seq == 2:
            actor = "token:someone-else"
        h = audit_hash(prev, seq, at, actor, action, target, detail)
        server.execute("UPDATE audit SET actor = ?, prev_hash = ?, hash = ? "
                       "WHERE tenant_id = ? AND seq = ?",
                       (actor, prev, h, tenant, seq))
        prev = h
    r = server.api("GET", "/v1/audit/verify")
    assert r.body["ok"] is True and r.body["head_hash"] == prev
    assert prev != cp["head_hash"]
    p = ctl(server, work, "-o", "table", "audit", "verify")
    assert p.returncode == 0, p.stderr
    p = check(server, work, "cp.json")
    assert p.returncode == 1
    assert p.stderr == ("mdmctl: audit log rewritten: the chain at seq %d no "
                        "longer has the checkpoint's hash %s...\n" % (
                            cp["records"], cp["head_hash"][:12]))


def test_truncated_log_is_caught(server, work):
    activity(server, 4)
    tenant = server.tenant_id()
    cp = checkpoint_file(server, work)
    n = server.execute("DELETE FROM audit WHERE tenant_id = ? AND seq > ?",
                       (tenant, cp["records"] - 2))
    assert n == 2
    # What is left is a whole chain.
    p = ctl(server, work, "-o", "table", "audit", "verify")
    assert p.returncode == 0, p.stderr
    p = check(server, work, "cp.json")
    assert p.returncode == 1
    assert p.stderr == ("mdmctl: audit log truncated: it has %d records, the "
                        "checkpoint of %s covers %d\n" % (
                            cp["records"] - 2, cp["time"], cp["records"]))


def test_forged_and_foreign_checkpoints(server, work):
    activity(server)
    cp = checkpoint_file(server, work)

    def verify_file(doc, *extra):
        (work / "x.json").write_text(json.dumps(doc))
        return check(server, work, "x.json", *extra)

    # An altered field breaks the signature.
    p = verify_file(dict(cp, records=cp["records"] - 1))
    assert p.returncode == 1
    assert p.stderr == ("mdmctl: 'x.json': the signature does not verify: "
                        "the checkpoint was altered or not made by this "
                        "key\n")
    # A well-signed checkpoint by another key (its own kid) is not the
    # tenant's.
    other = ec.generate_private_key(ec.SECP256R1())
    pem = other.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    fake = dict(cp, public_key=pem, kid=kid_of(pem))
    fake["signature"] = sign_with(other, fake)
    p = verify_file(fake)
    assert p.returncode == 1
    assert p.stderr == ("mdmctl: the checkpoint was signed by key %s, which "
                        "is not this tenant's signing key\n" % fake["kid"])
    # A pinned key that is not the signer's.
    (work / "other.pem").write_text(pem)
    p = check(server, work, "cp.json",
            "--key", "other.pem")
    assert p.returncode == 1
    assert p.stderr.startswith("mdmctl: 'cp.json' was signed by key %s, not "
                               "by the key in 'other.pem'" % cp["kid"])
    # Another tenant's checkpoint, checked with this tenant's token.
    _, acme = server.create_tenant("acme")
    acme_file = work / "acme.token"
    acme_file.write_text(acme + "\n")
    os.chmod(acme_file, 0o600)
    p = ctl(server, work, "audit", "checkpoint", "-o", "acme.json",
            token_file=str(acme_file))
    assert p.returncode == 0, p.stderr
    p = check(server, work, "acme.json")
    assert p.returncode == 1
    assert "which is not this tenant's signing key" in p.stderr
    # Not a checkpoint at all; usage errors.
    p = verify_file({"hello": "world"})
    assert p.returncode == 1
    assert p.stderr.startswith("mdmctl: 'x.json' is not an audit checkpoint")
    p = check(server, work, "missing.json")
    assert p.returncode == 1
    assert p.stderr == "mdmctl: cannot read 'missing.json': no such file\n"
    p = ctl(server, work, "audit", "verify", "--key", "other.pem")
    assert p.returncode == 2
    # Nothing was written by the checks.
    assert sorted(os.listdir(work)) == ["acme.json", "acme.token", "cp.json",
                                        "other.pem", "x.json"]
