"""Signed checkpoints against an attacker who can write to the database but holds no signing key.

What they can do, and what each test makes sure of:
- edit, delete, reorder or insert an event before a checkpoint and rebuild the bare hash chain
  (no HMAC key either), so that `verify_chain` alone passes: the signed head no longer matches;
- rewrite a checkpoint's head to their rebuilt chain: its signature no longer matches;
- sign a checkpoint with a key of their own: its key id is none the auditor trusts;
- copy an old checkpoint row as a newer one (a replay), or one of another organization;
- delete checkpoints from the end (and events with them): only a checkpoint the auditor kept
  outside the database shows it, so verify takes one;
- append events with no key: they count as "not yet signed", never as signed.
And without a signing key nothing is written to the new table (existing users see no change).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from userctl.apply import audit, signing
from userctl.apply.audit import GENESIS, AuditRecord, append_events, verify_chain
from userctl.apply.checkpoints import (
    Checkpoint,
    SignedResult,
    list_checkpoints,
    verify_checkpoints,
)
from userctl.db.tables import audit_checkpoints as cps_t
from userctl.db.tables import audit_events as events_t
from userctl.state import canonical_json

T0 = dt.datetime(2026, 3, 1, 12, 0, 0)


def make_key(tmp_path: Path, name: str = "audit") -> tuple[str, str]:
    """A key pair on disk: (private key path, public key path)."""
    private, public, _ = signing.generate()
    key = tmp_path / name
    key.write_text(private, encoding="utf-8")
    key.chmod(0o600)
    (tmp_path / f"{name}.pub").write_text(public, encoding="utf-8")
    return str(key), str(tmp_path / f"{name}.pub")


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    private, public = make_key(tmp_path)
    monkeypatch.setenv(signing.ENV_SIGNING_KEY, private)
    return signing.load_public_keys([public])


def records(n: int, start: int = 1) -> list[AuditRecord]:
    return [
        AuditRecord("ana@acme.co", "totp", "user.update", f'user["u{i}@acme.co"]', after={"i": i})
        for i in range(start, start + n)
    ]


def seed(engine: Engine, org_id: int) -> None:
    """Three writes (2, 2 and 1 events): checkpoints at #2, #4 and #5."""
    for minute, (n, start) in enumerate([(2, 1), (2, 3), (1, 5)]):
        with engine.begin() as conn:
            append_events(conn, org_id, records(n, start), T0 + dt.timedelta(minutes=minute))


def check(
    engine: Engine, org_id: int, keys: dict[str, Any], kept: Checkpoint | None = None
) -> SignedResult:
    with engine.connect() as conn:
        chain = verify_chain(conn, org_id)
        assert chain.ok, f"the attacker's rebuilt chain should pass on its own: {chain.problem}"
        return verify_checkpoints(conn, org_id, chain.events, keys, kept)


def events_of(engine: Engine, org_id: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(events_t).where(events_t.c.organization_id == org_id).order_by(events_t.c.seq)
        ).all()
    return [dict(r._mapping) for r in rows]


def rechain(engine: Engine, org_id: int, rows: list[dict[str, Any]]) -> None:
    """The attacker's rebuild: the rows renumbered 1..n and every bare hash recomputed."""
    prev = GENESIS
    fresh = []
    for seq, row in enumerate(rows, 1):
        data = {k: v for k, v in row.items() if k not in ("id", "hash", "hmac")}
        data.update(seq=seq, prev_hash=prev, hmac=None)
        data["hash"] = prev = hashlib.sha256(audit._payload(data)).hexdigest()
        fresh.append(data)
    with engine.begin() as conn:
        conn.execute(events_t.delete().where(events_t.c.organization_id == org_id))
        for data in fresh:  # one by one: ids in chain order, as verify_chain expects
            conn.execute(events_t.insert().values(**data))


def test_every_write_appends_one_checkpoint_that_verifies(
    engine: Engine, factory: Any, keys: dict[str, Any]
) -> None:
    org = factory.org()
    seed(engine, org)
    with engine.connect() as conn:
        listed = list_checkpoints(conn, org)
    assert [c.seq for c in listed] == [2, 4, 5]  # one signature per write, not per event
    assert listed[-1].head == events_of(engine, org)[-1]["hash"]
    result = check(engine, org, keys)
    assert result.ok, result.problem
    assert (result.checkpoints, result.signed_seq, result.unsigned) == (3, 5, 0)


def test_without_a_signing_key_nothing_is_signed_or_stored(engine: Engine, factory: Any) -> None:
    org = factory.org()
    seed(engine, org)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(cps_t)).scalar_one() == 0


def test_a_rolled_back_write_leaves_no_checkpoint(
    engine: Engine, factory: Any, keys: dict[str, Any]
) -> None:
    org = factory.org()
    with pytest.raises(RuntimeError), engine.begin() as conn:
        append_events(conn, org, records(1), T0)
        raise RuntimeError("the write failed after its events")
    with engine.connect() as conn:
        assert list_checkpoints(conn, org) == []


@pytest.mark.parametrize("attack", ["alter", "delete", "reorder", "insert"])
def test_a_rebuilt_chain_no_longer_reaches_the_signed_head(
    engine: Engine, factory: Any, keys: dict[str, Any], attack: str
) -> None:
    org = factory.org()
    seed(engine, org)
    rows = events_of(engine, org)
    if attack == "alter":
        rows[2]["after"] = canonical_json({"i": "mallory"})
    elif attack == "delete":
        del rows[2]
    elif attack == "reorder":
        rows[2], rows[3] = rows[3], rows[2]
    else:
        rows.insert(2, {**rows[2], "address": 'user["mallory@evil.co"]'})
    rechain(engine, org, rows)
    result = check(engine, org, keys)
    assert not result.ok
    # Events #1-#2 are still vouched for; the break lies after them, at or before #4.
    assert "after event #2" in (result.problem or "")
    assert "event #4" in (result.problem or "")
    assert result.signed_seq == 2


def test_a_checkpoint_head_rewritten_to_the_rebuilt_chain_fails_its_signature(
    engine: Engine, factory: Any, keys: dict[str, Any]
) -> None:
    org = factory.org()
    seed(engine, org)
    rows = events_of(engine, org)
    rows[4]["after"] = canonical_json({"i": "mallory"})
    rechain(engine, org, rows)
    new_head = events_of(engine, org)[-1]["hash"]
    with engine.begin() as conn:
        conn.execute(cps_t.update().where(cps_t.c.seq == 5).values(head=new_head))
    result = check(engine, org, keys)
    assert not result.ok
    assert "not validly signed" in (result.problem or "")
    assert "does not match the signed contents" in (result.problem or "")


def test_a_checkpoint_signed_with_another_key_is_refused(
    engine: Engine,
    factory: Any,
    keys: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    org = factory.org()
    seed(engine, org)
    forger, _ = make_key(tmp_path, "forger")
    monkeypatch.setenv(signing.ENV_SIGNING_KEY, forger)
    with engine.begin() as conn:
        append_events(conn, org, records(1, 6), T0 + dt.timedelta(hours=1))
    result = check(engine, org, keys)
    assert not result.ok
    assert "event #6" in (result.problem or "")
    assert "none of the public keys given" in (result.problem or "")


def test_rotated_keys_verify_when_both_public_keys_are_given(
    engine: Engine,
    factory: Any,
    keys: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    org = factory.org()
    seed(engine, org)
    new_private, new_public = make_key(tmp_path, "next")
    monkeypatch.setenv(signing.ENV_SIGNING_KEY, new_private)
    with engine.begin() as conn:
        append_events(conn, org, records(1, 6), T0 + dt.timedelta(hours=1))
    both = {**keys, **signing.load_public_keys([new_public])}
    result = check(engine, org, both)
    assert result.ok, result.problem
    assert result.signed_seq == 6
    assert not check(engine, org, keys).ok  # the old key alone does not vouch for the new one


def test_an_old_checkpoint_copied_as_a_newer_one_is_a_replay(
    engine: Engine, factory: Any, keys: dict[str, Any]
) -> None:
    org = factory.org()
    seed(engine, org)
    with engine.begin() as conn:
        old = conn.execute(sa.select(cps_t).where(cps_t.c.seq == 2)).one()
        conn.execute(
            cps_t.insert().values(
                {k: v for k, v in old._mapping.items() if k != "id"}  # a newer row, same content
            )
        )
    result = check(engine, org, keys)
    assert not result.ok
    assert "replay" in (result.problem or "")


def test_a_checkpoint_of_another_organization_does_not_sign_this_one(
    engine: Engine, factory: Any, keys: dict[str, Any]
) -> None:
    acme, other = factory.org("acme"), factory.org("other")
    seed(engine, acme)
    seed(engine, other)
    with engine.begin() as conn:
        theirs = conn.execute(
            sa.select(cps_t).where(cps_t.c.organization_id == other, cps_t.c.seq == 5)
        ).one()
        conn.execute(cps_t.delete().where(cps_t.c.organization_id == acme, cps_t.c.seq == 5))
        conn.execute(
            cps_t.insert().values(
                {**{k: v for k, v in theirs._mapping.items() if k != "id"}, "organization_id": acme}
            )
        )
    result = check(engine, acme, keys)
    assert not result.ok and "not validly signed" in (result.problem or "")


def test_writes_without_the_key_show_as_not_yet_signed(
    engine: Engine, factory: Any, keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    org = factory.org()
    seed(engine, org)
    monkeypatch.delenv(signing.ENV_SIGNING_KEY)
    with engine.begin() as conn:
        append_events(conn, org, records(3, 6), T0 + dt.timedelta(hours=1))
    result = check(engine, org, keys)
    assert result.ok, result.problem
    assert (result.signed_seq, result.unsigned) == (5, 3)


def test_truncated_checkpoints_are_caught_by_the_kept_one(
    engine: Engine, factory: Any, keys: dict[str, Any]
) -> None:
    org = factory.org()
    seed(engine, org)
    with engine.connect() as conn:
        kept = list_checkpoints(conn, org)[-1]
    with engine.begin() as conn:
        conn.execute(cps_t.delete().where(cps_t.c.organization_id == org))
    # Without the kept checkpoint, all events merely look "not yet signed" ...
    unanchored = check(engine, org, keys)
    assert unanchored.ok and unanchored.unsigned == 5
    # ... with it, the deletion shows.
    result = check(engine, org, keys, kept)
    assert not result.ok
    assert "missing from the database" in (result.problem or "")


def test_events_cut_from_the_end_with_their_checkpoints_are_caught_by_the_kept_one(
    engine: Engine, factory: Any, keys: dict[str, Any]
) -> None:
    org = factory.org()
    seed(engine, org)
    with engine.connect() as conn:
        kept = list_checkpoints(conn, org)[-1]
    with engine.begin() as conn:
        conn.execute(events_t.delete().where(events_t.c.seq == 5))
        conn.execute(cps_t.delete().where(cps_t.c.seq == 5))
    assert check(engine, org, keys).ok  # a shorter, consistently signed trail
    result = check(engine, org, keys, kept)
    assert not result.ok and "event #5 is not the head it signed" in (result.problem or "")


def test_a_checkpoint_signature_from_another_namespace_is_refused(
    engine: Engine, factory: Any, keys: dict[str, Any]
) -> None:
    """A signature the key made for the evidence pack must not pass as a checkpoint."""
    org = factory.org()
    seed(engine, org)
    with engine.connect() as conn:
        last = list_checkpoints(conn, org)[-1]
    key = signing.signing_key()
    assert key is not None
    cross = key.sign(last.message(), signing.EVIDENCE_NAMESPACE)
    with engine.begin() as conn:
        conn.execute(cps_t.update().where(cps_t.c.seq == 5).values(signature=cross))
    result = check(engine, org, keys)
    assert not result.ok and "namespace" in (result.problem or "")
