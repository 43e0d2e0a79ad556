"""Signed checkpoints through the real CLI, on every backend, checked by the real `ssh-keygen`:
an auditor with the public key alone verifies the trail (`audit verify --public-key`), a kept
checkpoint (`--checkpoint`) and the evidence pack (`ssh-keygen -Y verify` over SHA256SUMS), and
every way a database writer without the key tampers with it ends in exit 4."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import Org, build_org, exported, live_state
from tests.apply.test_signed_checkpoints import events_of, make_key, rechain
from tests.cli import test_review
from tests.cli.json_outputs import SCHEMAS
from tests.cli.test_evidence_schemas import registry
from tests.cli.yaml_files import write_desired
from tests.conftest import Factory, Runner
from userctl.apply import signing
from userctl.apply.checkpoints import append_checkpoint
from userctl.db.tables import audit_checkpoints as cps_t
from userctl.state import canonical_json

SSH_KEYGEN = shutil.which("ssh-keygen")
needs_ssh_keygen = pytest.mark.skipif(
    SSH_KEYGEN is None and not os.environ.get("CI"), reason="ssh-keygen (openssh-client) missing"
)


def validate(data: Any, schema_name: str) -> None:
    schema = json.loads((SCHEMAS / schema_name).read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema, registry=registry())
    assert [e.message for e in validator.iter_errors(data)] == []


def ssh_verify(public: str, namespace: str, signature: str, message: bytes, tmp: Path) -> int:
    """`ssh-keygen -Y verify` exactly as docs/auditing.md tells an auditor to run it."""
    assert SSH_KEYGEN is not None, "install openssh-client"
    allowed = tmp / "allowed_signers"
    allowed.write_text("auditor " + Path(public).read_text(encoding="utf-8"), encoding="utf-8")
    sig = tmp / "message.sig"
    sig.write_text(signature, encoding="utf-8")
    done = subprocess.run(
        [SSH_KEYGEN, "-Y", "verify", "-f", str(allowed), "-I", "auditor", "-n", namespace]
        + ["-s", str(sig)],
        input=message,
        capture_output=True,
        check=False,
    )
    return done.returncode


@pytest.fixture
def key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Signing on: the public key's path."""
    private, public = make_key(tmp_path)
    monkeypatch.setenv(signing.ENV_SIGNING_KEY, private)
    return public


APPLIES: dict[str, float] = {}


def apply_a_change(runner: Runner, engine: Engine, org: Org, tmp_path: Path, name: str) -> Any:
    desired = exported(live_state(engine))
    users = dict(desired.users)
    users["mover@acme.co"] = replace(users["mover@acme.co"], first_name=name)
    path = write_desired(tmp_path / "users.yaml", replace(desired, users=users))
    # A code is accepted once: each apply of a test uses the next 30-second step's.
    step = APPLIES.setdefault(org.root.secret, time.time() - 30)
    APPLIES[org.root.secret] = step + 30
    done = runner(
        "apply", "-f", str(path), "--operator", "root@acme.co", "--yes", "--format", "json",
        "--otp-code", org.root.code(step),
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)


def kept_checkpoint(runner: Runner, tmp_path: Path) -> Path:
    listed = runner("audit", "checkpoints", "--last", "--format", "json")
    assert listed.exit_code == 0, listed.output
    path = tmp_path / "last-checkpoint.json"
    path.write_text(listed.stdout, encoding="utf-8")
    return path


def test_keygen_makes_an_owner_only_key_and_a_public_key_ssh_keygen_reads(
    tmp_path: Path, runner: Runner
) -> None:
    out = tmp_path / "audit-key"
    made = runner("audit", "keygen", "-o", str(out))
    assert made.exit_code == 0, made.output
    assert out.stat().st_mode & 0o777 == 0o600
    assert "PRIVATE KEY" not in made.output and out.read_text() not in made.output
    if SSH_KEYGEN is not None:
        listed = subprocess.run(
            [SSH_KEYGEN, "-l", "-f", f"{out}.pub"], capture_output=True, text=True, check=True
        )
        assert listed.stdout.split()[1] in made.stdout  # the fingerprint printed is ssh-keygen's
    before = out.read_bytes()
    again = runner("audit", "keygen", "-o", str(out))
    assert again.exit_code == 1 and "exists" in again.output and "Traceback" not in again.output
    assert out.read_bytes() == before
    Path(f"{out}.pub").unlink()  # the private key alone is never replaced either
    alone = runner("audit", "keygen", "-o", str(out))
    assert alone.exit_code == 1 and "exists" in alone.output
    assert out.read_bytes() == before and not Path(f"{out}.pub").exists()


@needs_ssh_keygen
def test_apply_prints_a_checkpoint_an_auditor_verifies_with_the_public_key_alone(
    runner: Runner, factory: Factory, engine: Engine, tmp_path: Path, key: str
) -> None:
    org = build_org(factory)
    doc = apply_a_change(runner, engine, org, tmp_path, "Maria")
    validate(doc, "apply.schema.json")
    checkpoint = doc["checkpoint"]
    assert checkpoint["head"] == doc["audit_head"]
    assert checkpoint["seq"] == doc["audit_events"]["last_seq"]

    listed = runner("audit", "checkpoints", "--format", "json")
    assert listed.exit_code == 0, listed.output
    validate(json.loads(listed.stdout), "audit-checkpoints.schema.json")
    assert json.loads(listed.stdout)[-1] == checkpoint
    # The checkpoint's own signature, checked without userctl.
    message = checkpoint["message"].encode("utf-8")
    assert ssh_verify(key, "userctl-checkpoint", checkpoint["signature"], message, tmp_path) == 0
    assert ssh_verify(key, "userctl-checkpoint", checkpoint["signature"], message + b" ", tmp_path)
    assert ssh_verify(key, "userctl-evidence", checkpoint["signature"], message, tmp_path)

    verified = runner("audit", "verify", "--public-key", key, "--format", "json")
    assert verified.exit_code == 0, verified.output
    result = json.loads(verified.stdout)
    validate(result, "audit-verify.schema.json")
    assert result["signed"]["not_yet_signed"] == 0
    assert result["signed"]["last_checkpoint"] == checkpoint
    text = runner(
        "audit",
        "verify",
        "--public-key",
        key,
        "--checkpoint",
        str(kept_checkpoint(runner, tmp_path)),
    )
    assert text.exit_code == 0, text.output
    assert "0 event(s) not yet signed" in text.stdout


def test_without_a_signing_key_apply_and_verify_are_unchanged(
    runner: Runner, factory: Factory, engine: Engine, tmp_path: Path
) -> None:
    org = build_org(factory)
    doc = apply_a_change(runner, engine, org, tmp_path, "Maria")
    assert doc["checkpoint"] is None
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(cps_t)).scalar_one() == 0
    plain = runner("audit", "verify", "--format", "json")
    assert plain.exit_code == 0 and json.loads(plain.stdout)["signed"] is None


def test_events_written_without_the_key_show_as_not_yet_signed(
    runner: Runner, factory: Factory, engine: Engine, tmp_path: Path, key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    org = build_org(factory)
    apply_a_change(runner, engine, org, tmp_path, "Maria")
    monkeypatch.delenv(signing.ENV_SIGNING_KEY)
    unsigned = apply_a_change(runner, engine, org, tmp_path, "Marta")
    assert unsigned["checkpoint"] is None
    n = unsigned["audit_events"]["last_seq"] - unsigned["audit_events"]["first_seq"] + 1
    verified = runner("audit", "verify", "--public-key", key)
    assert verified.exit_code == 0, verified.output
    assert f"{n} event(s) not yet signed" in verified.stdout


def _alter(engine: Engine, org: Org, tmp: Path) -> None:
    rows = events_of(engine, org.id)
    rows[0]["after"] = canonical_json({"forged": True})
    rechain(engine, org.id, rows)


def _delete(engine: Engine, org: Org, tmp: Path) -> None:
    rechain(engine, org.id, events_of(engine, org.id)[1:])


def _reorder(engine: Engine, org: Org, tmp: Path) -> None:
    rows = events_of(engine, org.id)
    rows[0], rows[1] = rows[1], rows[0]
    rechain(engine, org.id, rows)


def _insert(engine: Engine, org: Org, tmp: Path) -> None:
    rows = events_of(engine, org.id)
    rechain(engine, org.id, [rows[0], {**rows[0], "address": 'user["eve@evil.co"]'}, *rows[1:]])


def _rewrite_head(engine: Engine, org: Org, tmp: Path) -> None:
    _alter(engine, org, tmp)
    with engine.begin() as conn:
        for row in conn.execute(sa.select(cps_t)).all():
            head = conn.execute(
                sa.text("SELECT hash FROM audit_events WHERE seq = :s"), {"s": row.seq}
            ).scalar_one()
            conn.execute(cps_t.update().where(cps_t.c.id == row.id).values(head=head))


def _forge(engine: Engine, org: Org, tmp: Path) -> None:
    """The attacker's own key signs a checkpoint of their rebuilt chain."""
    forger, _ = make_key(tmp, "forger")
    _alter(engine, org, tmp)
    last = events_of(engine, org.id)[-1]
    os.environ[signing.ENV_SIGNING_KEY] = forger
    try:
        with engine.begin() as conn:
            conn.execute(cps_t.delete())
            append_checkpoint(conn, org.id, last["seq"], last["hash"], dt.datetime(2026, 12, 6))
    finally:
        del os.environ[signing.ENV_SIGNING_KEY]


def _replay(engine: Engine, org: Org, tmp: Path) -> None:
    with engine.begin() as conn:
        first = conn.execute(sa.select(cps_t).order_by(cps_t.c.id).limit(1)).one()
        conn.execute(cps_t.insert().values({k: v for k, v in first._mapping.items() if k != "id"}))


def _truncate(engine: Engine, org: Org, tmp: Path) -> None:
    with engine.begin() as conn:
        conn.execute(cps_t.delete())


ATTACKS = {
    "alter": _alter,
    "delete": _delete,
    "reorder": _reorder,
    "insert": _insert,
    "rewrite-head": _rewrite_head,
    "forge": _forge,
    "replay": _replay,
    "truncate": _truncate,
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_each_tampering_is_refused_by_verify_and_by_the_evidence_pack(
    runner: Runner, factory: Factory, engine: Engine, tmp_path: Path, key: str, attack: str
) -> None:
    org = build_org(factory)
    apply_a_change(runner, engine, org, tmp_path, "Maria")
    apply_a_change(runner, engine, org, tmp_path, "Marta")
    kept = kept_checkpoint(runner, tmp_path)
    assert runner("audit", "verify", "--public-key", key, "--checkpoint", str(kept)).exit_code == 0

    signing_key = os.environ.pop(signing.ENV_SIGNING_KEY)  # the attacker has no key
    ATTACKS[attack](engine, org, tmp_path)
    os.environ[signing.ENV_SIGNING_KEY] = signing_key

    verified = runner("audit", "verify", "--public-key", key, "--checkpoint", str(kept))
    assert verified.exit_code == 4, verified.output
    assert "audit chain of acme-payments is broken" in verified.output
    assert "Traceback" not in verified.output

    pack = tmp_path / "pack"
    made = runner(
        "evidence", "--since", "2020-01-01", "--until", "2099-12-31", "-o", str(pack),
        "--checkpoint", str(kept),
    )  # fmt: skip
    assert made.exit_code == 4, made.output
    verification = json.loads((pack / "audit-log.json").read_text())["verification"]
    assert verification["ok"] is False and verification["problem"]


@needs_ssh_keygen
def test_the_evidence_pack_is_signed_and_ssh_keygen_verifies_it(
    runner: Runner, factory: Factory, engine: Engine, tmp_path: Path, key: str
) -> None:
    org = build_org(factory)
    doc = apply_a_change(runner, engine, org, tmp_path, "Maria")
    pack = tmp_path / "pack"
    made = runner("evidence", "--since", "2020-01-01", "--until", "2099-12-31", "-o", str(pack))
    assert made.exit_code == 0, made.output
    sums = (pack / "SHA256SUMS").read_bytes()
    signature = (pack / "SHA256SUMS.sig").read_text()
    assert ssh_verify(key, "userctl-evidence", signature, sums, tmp_path) == 0
    # Every other file is vouched for by SHA256SUMS, so by the signature.
    assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=pack).returncode == 0
    assert ssh_verify(key, "userctl-evidence", signature, sums.replace(b"a", b"b", 1), tmp_path)

    sealed = json.loads((pack / "checkpoints.json").read_text())
    validate(sealed, "evidence-checkpoints.schema.json")
    validate(json.loads((pack / "audit-log.json").read_text()), "evidence-audit-log.schema.json")
    assert sealed["checkpoints"][-1] == doc["checkpoint"]
    assert sealed["key_id"] in (pack / "index.html").read_text()
    assert "SHA256SUMS.sig" in (pack / "index.html").read_text()
    # The pack with its signature is still one userctl recognises and may replace.
    again = runner(
        "evidence", "--since", "2020-01-01", "--until", "2099-12-31", "-o", str(pack), "--force"
    )
    assert again.exit_code == 0, again.output


def _apply_a_rename(runner: Runner, engine: Engine, org: Any, tmp_path: Path) -> Any:
    """`apply -f` of the live organization with one user renamed: a write, so a signed one."""
    desired = exported(live_state(engine))
    users = dict(desired.users)
    users["mover@acme.co"] = replace(users["mover@acme.co"], first_name="Maria")
    path = write_desired(tmp_path / "users.yaml", replace(desired, users=users))
    return runner(
        "apply", "-f", str(path), "--operator", "root@acme.co", "--yes",
        "--otp-code", org.root.code(),
    )  # fmt: skip


def test_a_bad_signing_key_refuses_the_write_and_never_shows_the_key(
    runner: Runner, factory: Factory, engine: Engine, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    org = build_org(factory)
    secret = "-----BEGIN PRIVATE KEY-----\nTOPSECRETMATERIAL\n-----END PRIVATE KEY-----\n"
    monkeypatch.setenv(signing.ENV_SIGNING_KEY, secret)
    before = len(events_of(engine, org.id))
    done = _apply_a_rename(runner, engine, org, tmp_path)
    assert done.exit_code == 1, done.output
    assert "TOPSECRETMATERIAL" not in done.output and "Traceback" not in done.output
    assert signing.ENV_SIGNING_KEY in done.output
    assert len(events_of(engine, org.id)) == before  # nothing written unsigned


def test_verify_options_that_cannot_be_checked_are_usage_errors(
    runner: Runner, factory: Factory, tmp_path: Path, key: str
) -> None:
    build_org(factory)
    bad = tmp_path / "kept.json"
    bad.write_text('{"seq": 3,\n  oops}', encoding="utf-8")
    alone = runner("audit", "verify", "--checkpoint", str(bad))
    assert alone.exit_code == 1 and "needs --public-key" in alone.output
    broken = runner("audit", "verify", "--public-key", key, "--checkpoint", str(bad))
    assert broken.exit_code == 1 and f"{bad}:2:3:" in broken.output
    not_a_key = tmp_path / "k.pub"
    not_a_key.write_text("ssh-rsa AAAA nope\n", encoding="utf-8")
    wrong = runner("audit", "verify", "--public-key", str(not_a_key))
    assert wrong.exit_code == 1 and f"{not_a_key}:1:1:" in wrong.output
    assert "Traceback" not in alone.output + broken.output + wrong.output


def test_key_files_are_read_to_a_bound(
    runner: Runner, factory: Factory, engine: Engine, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A key file is a few hundred bytes: one past 1 MiB is the wrong file, refused before it is
    read whole (`--public-key /dev/zero` filled the memory until the process was killed)."""
    org = build_org(factory)
    big = tmp_path / "big.pub"
    big.write_bytes(b"ssh-ed25519 " + b"A" * (2 << 20) + b"\n")
    refused = runner("audit", "verify", "--public-key", str(big))
    assert refused.exit_code == 1, refused.output
    assert f"{big}:1:1: (document): the public key file is 2.0 MiB, over the 1 MiB limit" in (
        refused.stderr
    )
    monkeypatch.setenv(signing.ENV_SIGNING_KEY, str(big))
    before = len(events_of(engine, org.id))
    done = _apply_a_rename(runner, engine, org, tmp_path)
    assert done.exit_code == 1, done.output
    assert f"the key file {signing.ENV_SIGNING_KEY} names: the signing key file is 2.0 MiB" in (
        done.stderr
    )
    assert len(events_of(engine, org.id)) == before


applied = test_review.applied  # an organization with a plan approved and applied


@pytest.fixture
def signed_then_applied(key: str, applied: Any) -> tuple[str, Any]:
    """The key is set before `applied` writes anything (its approve and apply are signed)."""
    return key, applied


def test_every_kind_of_write_appends_a_checkpoint_and_says_so(
    runner: Runner, signed_then_applied: tuple[str, Any], engine: Engine, tmp_path: Path
) -> None:
    """approve and apply (the fixture), review attest, a wrong code's booking and mfa enroll:
    none leaves its events unsigned, and each shows the checkpoint it appended."""
    key, (org, _approver, _plan) = signed_then_applied
    report = runner("review", "--format", "json")
    (tmp_path / "review.json").write_text(report.stdout, encoding="utf-8")
    now = time.time()
    attest = ["review", "attest", str(tmp_path / "review.json"), "--reviewer", "root@acme.co"]
    attested = runner(*attest, "--otp-code", org.root.code(now))
    assert attested.exit_code == 0 and "Signed checkpoint: #" in attested.stdout
    wrong = "000000" if org.root.code(now + 30) != "000000" else "111111"
    assert runner(*attest, "--otp-code", wrong).exit_code == 4  # booked, and signed
    enrolled = runner(
        "mfa", "enroll", "mover@acme.co", "--operator", "root@acme.co", "--json",
        "--otp-code", org.root.code(now + 30),
    )  # fmt: skip
    assert enrolled.exit_code == 0, enrolled.output
    enrolment = json.loads(enrolled.stdout)
    validate(enrolment, "mfa-enroll.schema.json")
    assert enrolment["checkpoint"]["head"] == enrolment["audit_head"]
    verified = runner("audit", "verify", "--public-key", key, "--format", "json")
    assert verified.exit_code == 0, verified.output
    signed = json.loads(verified.stdout)["signed"]
    assert signed["not_yet_signed"] == 0
    assert signed["checkpoints"] == 5  # approve, apply, attest, the wrong code, enroll


# SQLite keeps a value of any type in any column (a server refuses them): each is a checkpoint
# no one wrote with the key, and verify names it instead of stopping on it.
STORED_JUNK = {
    "seq": "two",
    "seq_fraction": 1.5,
    "created_at": "not a time",
    "head": 7,
    "key_id": b"\x00",
    "signature": 12,
}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("column", sorted(STORED_JUNK))
def test_a_checkpoint_holding_a_value_no_checkpoint_has_is_refused_not_a_crash(
    runner: Runner, factory: Factory, engine: Engine, tmp_path: Path, key: str, column: str
) -> None:
    org = build_org(factory)
    apply_a_change(runner, engine, org, tmp_path, "Maria")
    apply_a_change(runner, engine, org, tmp_path, "Marta")
    name = column.split("_fraction")[0]
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"UPDATE audit_checkpoints SET {name} = ? WHERE id = 1", (STORED_JUNK[column],)
        )
    verified = runner("audit", "verify", "--public-key", key)
    assert verified.exit_code == 4, verified.output
    assert "audit chain of acme-payments is broken" in verified.output
    assert "checkpoint" in verified.output and "unexpected" not in verified.output
    assert "checkpoint 0" not in verified.output


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_listing_and_the_evidence_name_such_a_checkpoint_too(
    runner: Runner, factory: Factory, engine: Engine, tmp_path: Path, key: str
) -> None:
    """`audit checkpoints` refuses the listing (exit 4, saying which), and the evidence pack is
    written with its verification failed, as for any other tampering."""
    org = build_org(factory)
    apply_a_change(runner, engine, org, tmp_path, "Maria")
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE audit_checkpoints SET seq = 'two' WHERE id = 1")
    listed = runner("audit", "checkpoints")
    assert listed.exit_code == 4, listed.output
    assert "checkpoint 1 (in the order stored) holds a value no checkpoint" in listed.output
    pack = tmp_path / "pack"
    made = runner("evidence", "--since", "2020-01-01", "--until", "2099-12-31", "-o", str(pack))
    assert made.exit_code == 4, made.output
    verification = json.loads((pack / "audit-log.json").read_text())["verification"]
    assert verification["ok"] is False and "seq 'two' is not a number" in verification["problem"]
