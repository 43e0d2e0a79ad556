"""`userctl plan` through the real CLI against real databases: output formats, saved plans,
exit codes, located errors, and that planning never writes."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.cli.yaml_files import write_desired
from tests.conftest import Factory, Runner
from userctl import plan as planmod
from userctl.cli.context import AppContext
from userctl.state import DesiredState, Role, User

SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "plan.schema.json").read_text())
ADMIN = Role(
    "Admin", "Full access", frozenset({"users.view", "users.add", "users.manage", "roles.manage"})
)
OPS = Role("Ops", "Payouts", frozenset({"payouts.view", "payouts.create"}))


def admin_user(**kw: object) -> User:
    base = dict(
        email="root@acme.co",
        first_name="Root",
        last_name="Admin",
        id_type="CC",
        id_number="1000",
        phone="+573000000001",
        role="Admin",
        status="active",
        two_factor="required",
    )
    base.update(kw)
    return User(**base)  # type: ignore[arg-type]


def ops_user(**kw: object) -> User:
    base = dict(
        email="bob@acme.co",
        first_name="Bob",
        last_name="Ops",
        id_type="CC",
        id_number="2000",
        phone="+573000000002",
        role="Ops",
        status="active",
        two_factor="optional",
        bank_accounts=frozenset({"ops-main"}),
    )
    base.update(kw)
    return User(**base)  # type: ignore[arg-type]


def seed(factory: Factory, policy: str = "destructive") -> None:
    org = factory.org("acme", two_factor_policy=policy)
    admin = factory.role(org, "Admin", sorted(ADMIN.permissions), ADMIN.description)
    ops = factory.role(org, "Ops", sorted(OPS.permissions), OPS.description)
    root = admin_user()
    factory.enrol(factory.user(org, root.email, admin, **_fields(root)))
    bob = ops_user()
    bob_id = factory.user(org, bob.email, ops, **_fields(bob))
    factory.assign(bob_id, factory.bank_account(org, "ops-main"))
    factory.bank_account(org, "payroll")


def _fields(u: User) -> dict[str, object]:
    return dict(
        first_name=u.first_name,
        last_name=u.last_name,
        id_type=u.id_type,
        id_number=u.id_number,
        phone=u.phone,
        status=u.status,
        two_factor=u.two_factor,
    )


def desired(*users: User, roles: tuple[Role, ...] = (ADMIN, OPS)) -> DesiredState:
    return DesiredState(
        "acme", {r.name: r for r in roles}, {u.email: u for u in (admin_user(), *users)}
    )


def dump_tables(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        return {
            name: sorted(map(tuple, conn.execute(sa.select(t)).all()), key=repr)
            for name, t in meta.tables.items()
        }


def test_no_changes_exits_0(runner: Runner, factory: Factory, tmp_path: Path) -> None:
    seed(factory)
    f = write_desired(tmp_path / "users.yaml", desired(ops_user()))
    result = runner("plan", "-f", str(f), "--detailed-exitcode")
    assert result.exit_code == 0, result.output
    assert "No changes" in result.output


def test_changes_without_2fa_exit_2_and_with_2fa_exit_3(
    runner: Runner, factory: Factory, tmp_path: Path
) -> None:
    seed(factory)
    f = write_desired(tmp_path / "users.yaml", desired(ops_user(first_name="Roberto")))
    result = runner("plan", "-f", str(f), "--detailed-exitcode")
    assert result.exit_code == 2, result.output
    assert '~ user["bob@acme.co"] update' in result.output
    assert (
        runner("plan", "-f", str(f)).exit_code == 0
    )  # without --detailed-exitcode changes are success

    f = write_desired(tmp_path / "users.yaml", desired(ops_user(role="Admin")))
    result = runner("plan", "-f", str(f), "--detailed-exitcode")
    assert result.exit_code == 3, result.output
    assert "change_role  [destructive, privilege, 2FA]" in result.output


def test_policy_all_in_the_database_makes_any_change_need_2fa(
    runner: Runner, factory: Factory, tmp_path: Path
) -> None:
    seed(factory, policy="all")
    f = write_desired(tmp_path / "users.yaml", desired(ops_user(first_name="Roberto")))
    result = runner("plan", "-f", str(f), "--detailed-exitcode")
    assert result.exit_code == 3, result.output
    assert (
        '~ user["bob@acme.co"] update  [2FA]' in result.output
        and "2FA policy: all" in result.output
    )
    # The file cannot weaken the policy: it has no say in it.
    text = f.read_text()
    assert 'organization: "acme"\n' in text
    f.write_text(
        text.replace(
            'organization: "acme"\n', 'organization: "acme"\ntwo_factor_policy: destructive\n', 1
        )
    )
    refused = runner("plan", "-f", str(f), "--detailed-exitcode")
    assert refused.exit_code == 1 and "two_factor_policy" in refused.output


def test_blocking_finding_exits_4_and_still_shows_the_plan(
    runner: Runner, factory: Factory, tmp_path: Path
) -> None:
    seed(factory)
    f = write_desired(
        tmp_path / "users.yaml",
        desired(ops_user(), roles=(Role("Admin", "", frozenset({"users.view"})), OPS)),
    )
    result = runner("plan", "-f", str(f), "--detailed-exitcode")
    assert result.exit_code == 4
    assert 'role["Admin"] update' in result.output and "BLOCKED [admin_guard]" in result.output


def test_self_guard_with_operator(runner: Runner, factory: Factory, tmp_path: Path) -> None:
    seed(factory)
    want = DesiredState(
        "acme",
        {"Admin": ADMIN, "Ops": OPS},
        {"root@acme.co": admin_user(two_factor="disabled"), "bob@acme.co": ops_user(role="Admin")},
    )
    f = write_desired(tmp_path / "users.yaml", want)
    result = runner("plan", "-f", str(f), "--operator", "root@acme.co")
    assert result.exit_code == 4
    assert "self_guard" in result.output


def test_immutable_field_error_is_located_and_replace_lifts_it(
    runner: Runner, factory: Factory, tmp_path: Path
) -> None:
    seed(factory)
    f = write_desired(tmp_path / "users.yaml", desired(ops_user(phone="+573009999999")))
    result = runner("plan", "-f", str(f), "--detailed-exitcode")
    assert result.exit_code == 1
    lines = f.read_text().splitlines()
    phone_line = next(i for i, row in enumerate(lines, 1) if "+573009999999" in row)
    assert f"{f}:{phone_line}:" in result.output
    assert (
        "phone of bob@acme.co cannot be changed" in result.output
        and "--replace bob@acme.co" in result.output
    )
    assert "Traceback" not in result.output

    result = runner("plan", "-f", str(f), "--replace", "BOB@acme.co", "--detailed-exitcode")
    assert result.exit_code == 3, result.output
    assert '-/+ user["bob@acme.co"] replace' in result.output


def test_no_prune_keeps_absent_users(runner: Runner, factory: Factory, tmp_path: Path) -> None:
    seed(factory)
    f = write_desired(tmp_path / "users.yaml", desired())
    pruned = runner("plan", "-f", str(f), "--detailed-exitcode")
    assert pruned.exit_code == 3 and '- user["bob@acme.co"] delete' in pruned.output
    kept = runner("plan", "-f", str(f), "--detailed-exitcode", "--no-prune")
    assert kept.exit_code == 0, kept.output


def test_formats_and_saved_plan(runner: Runner, factory: Factory, tmp_path: Path) -> None:
    seed(factory)
    f = write_desired(
        tmp_path / "users.yaml",
        desired(
            ops_user(first_name="B", bank_accounts=frozenset({"payroll"})),
            ops_user(email="new@acme.co", id_number="3000", phone="+573000000003"),
        ),
    )
    out = tmp_path / "plan.json"
    result = runner("plan", "-f", str(f), "--format", "json", "--out", str(out))
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    assert json.loads(out.read_text()) == data  # the saved plan is the JSON output
    assert planmod.loads(out.read_text()).digest == data["digest"]
    assert {c["action"] for c in data["changes"]} == {"create", "update", "unassign", "assign"}

    md = runner("plan", "-f", str(f), "--format", "markdown")
    assert md.output.startswith("### userctl plan: `acme`") and "<details>" in md.output
    page = runner("plan", "-f", str(f), "--format", "html")
    # Another run, another digest: the provenance says when each plan was made.
    assert page.output.startswith("<!DOCTYPE html>") and re.search(
        r"sha256:[0-9a-f]{64}", page.output
    )


def test_planning_never_writes(
    runner: Runner, factory: Factory, engine: Engine, tmp_path: Path
) -> None:
    seed(factory)
    before = dump_tables(engine)
    f = write_desired(
        tmp_path / "users.yaml",
        desired(
            ops_user(role="Admin"),
            ops_user(email="n@acme.co", id_number="3000", phone="+573000000003"),
        ),
    )
    assert runner("plan", "-f", str(f), "--detailed-exitcode").exit_code == 3
    assert dump_tables(engine) == before


def _assert_not_written(engine: Engine) -> None:
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT name FROM organizations")).scalar_one()
            != "written by plan"
        )


def test_planning_reads_in_a_transaction_that_refuses_writes(
    runner: Runner,
    factory: Factory,
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through SQLAlchemy, where the driver path declines (the test below takes that one)."""
    from userctl.db import snapshot, thin

    seed(factory)
    attempts: list[str] = []
    original = snapshot.read_live_state

    def read_then_try_to_write(conn: sa.Connection, slug: str, **kwargs: Any) -> object:
        live = original(conn, slug, **kwargs)
        # A savepoint keeps the (expected) failure from poisoning the rest of the transaction.
        with pytest.raises(sa.exc.DBAPIError) as refused, conn.begin_nested():
            conn.execute(sa.text("UPDATE organizations SET name = 'written by plan'"))
        attempts.append(str(refused.value.orig))
        return live

    monkeypatch.setattr(snapshot, "read_live_state", read_then_try_to_write)
    monkeypatch.setattr(thin, "read_for_plan", lambda *args, **kwargs: None)
    f = write_desired(tmp_path / "users.yaml", desired(ops_user(first_name="Roberto")))
    result = runner("plan", "-f", str(f), "--detailed-exitcode")
    assert result.exit_code == 2, result.output
    assert len(attempts) == 1 and any(
        w in attempts[0].lower() for w in ("read-only", "readonly", "read only")
    ), attempts
    _assert_not_written(engine)


def test_planning_on_the_driver_reads_in_a_transaction_that_refuses_writes(
    runner: Runner,
    factory: Factory,
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """db/thin.py opens the same read-only transaction as engine.begin_read."""
    from userctl.db import plan_read, thin

    seed(factory)
    connections: list[Any] = []
    attempts: list[str] = []
    connect, live_state = thin._connect, plan_read.live_state

    def keep(*args: Any) -> Any:
        connections.append(connect(*args))
        return connections[-1]

    def read_then_try_to_write(*args: Any) -> object:
        live = live_state(*args)
        conn, errors = connections[-1]
        cursor = conn.cursor()
        # A savepoint keeps the (expected) failure from poisoning the rest of the transaction.
        cursor.execute("SAVEPOINT probe")
        with pytest.raises(errors) as refused:
            cursor.execute("UPDATE organizations SET name = 'written by plan'")
        cursor.execute("ROLLBACK TO SAVEPOINT probe")
        attempts.append(str(refused.value))
        return live

    monkeypatch.setattr(thin, "_connect", keep)
    monkeypatch.setattr(plan_read, "live_state", read_then_try_to_write)
    f = write_desired(tmp_path / "users.yaml", desired(ops_user(first_name="Roberto")))
    result = runner("plan", "-f", str(f), "--detailed-exitcode")
    assert result.exit_code == 2, result.output
    assert len(connections) == 1 and len(attempts) == 1, attempts  # one read, on the driver
    assert any(w in attempts[0].lower() for w in ("read-only", "readonly", "read only")), attempts
    _assert_not_written(engine)


def test_unknown_organization_and_bad_file_exit_1(
    runner: Runner, factory: Factory, tmp_path: Path
) -> None:
    seed(factory)
    other = write_desired(tmp_path / "other.yaml", replace(desired(), organization="globex"))
    result = runner("plan", "-f", str(other))
    assert result.exit_code == 1 and "globex" in result.output and "Traceback" not in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\norganization: acme\nusers:\n  x@acme.co:\n    first_name: yes\n")
    result = runner("plan", "-f", str(bad))
    assert result.exit_code == 1 and f"{bad}:5:" in result.output


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert AppContext().color(Tty()) is True
    assert AppContext(no_color=True).color(Tty()) is False
    assert AppContext().color(object()) is False
    monkeypatch.setenv("NO_COLOR", "")
    assert AppContext().color(Tty()) is False  # any value, even empty, disables colour
