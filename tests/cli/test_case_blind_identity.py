"""Identity is case-blind everywhere (issue 18, DESIGN §8 invariant 6), on every backend, through
the real CLI. What an attacker (or a careless platform) does: store an active account as
`VIEW1@hidden.co` beside `view1@hidden.co`, so that a snapshot keyed by the lower-cased email lets
one row silently replace the other (plan says "No changes", max_holders counts one holder too
few), or store `View1@Hidden.co` alone, which apply could not find (KeyError).

- migration 0007 makes lower(email) unique per organization, and refuses (rows named, nothing
  changed) where duplicates exist already;
- on a database without that index (one the platform writes), two rows of one identity are a
  blocking finding naming both: plan and apply exit 4, `policy check` exits 4 and counts both
  holders, the review lists both, `users show` and the operator rule refuse the identity;
- a stored mixed-case email is matched, locked and changed like any other.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import ADMIN_PERMS, rows_of
from tests.conftest import Factory, Operator, Runner
from userctl.apply.operators import load_operator
from userctl.clock import utcnow
from userctl.db import migrate, tables
from userctl.db import models as m
from userctl.db.engine import begin_read, begin_write, create_engine_for
from userctl.db.snapshot import lock_rows, read_live_state
from userctl.errors import IdentityClash

ORG = "acme-payments"
ROLES = {"Admin": list(ADMIN_PERMS), "Ops": ["payouts.view", "payouts.create"]}


def person(n: int, role: str, **extra: str) -> dict[str, str]:
    return {
        "first_name": "Person",
        "last_name": f"N{n}",
        "id_type": "CC",
        "id_number": f"{5550000 + n}",
        "phone": f"+5731000{n:05d}",
        "role": role,
        "status": "active",
        "two_factor": "required",
        **extra,
    }


ROOT = person(0, "Admin")
VIEW1 = person(1, "Ops")
OTHER = person(2, "Ops")


def write_file(path: Path, users: dict[str, dict[str, str]], policies: Sequence[str] = ()) -> Path:
    lines = ["version: 1", f"organization: {ORG}"]
    if policies:
        lines += ["policies:", *("  " + p for p in policies)]
    lines.append("roles:")
    for name, perms in ROLES.items():
        lines += [f"  {name}:", f"    permissions: [{', '.join(perms)}]"]
    lines.append("users:")
    for email, fields in users.items():
        lines.append(f"  {email}:")
        lines += [f"    {k}: {json.dumps(v)}" for k, v in fields.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def set_stored_email(engine: Engine, user_id: int, stored: str) -> None:
    """What the platform may write: userctl itself always stores the lower-cased form."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(tables.users).where(tables.users.c.id == user_id).values(email=stored)
        )


def binary_emails(engine: Engine) -> None:
    """A MariaDB whose default collation compares case (utf8mb4_bin), as a platform's may: the
    test servers' utf8mb4_unicode_ci would make the exact key on `email` case-blind already and
    hide what the migration adds."""
    if engine.dialect.name == "mysql":
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "ALTER TABLE users MODIFY email VARCHAR(254) COLLATE utf8mb4_bin NOT NULL"
            )


@pytest.fixture
def platform_url(empty_db_url: str) -> str:
    """A private database at head whose email column compares case on every backend."""
    engine = create_engine_for(empty_db_url)
    try:
        migrate.upgrade(engine)
        binary_emails(engine)
    finally:
        engine.dispose()
    return empty_db_url


@pytest.fixture
def bare_url(platform_url: str) -> str:
    """The same without migration 0007's unique index: a database the platform writes without
    it, on which two rows of one identity can exist."""
    engine = create_engine_for(platform_url)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "mysql":
                conn.exec_driver_sql("ALTER TABLE users DROP INDEX uq_users_org_email_key")
            else:
                conn.exec_driver_sql("DROP INDEX uq_users_org_email_key")
    finally:
        engine.dispose()
    return platform_url


class World:
    """acme-payments with root@acme.co (Admin, enrolled) and view1@hidden.co (Ops)."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.engine = create_engine_for(url)
        self.factory = Factory(self.engine)
        self.run = Runner(url)
        self.org = self.factory.org(ORG)
        self.roles = {
            name: self.factory.role(self.org, name, perms) for name, perms in ROLES.items()
        }
        root_fields = {k: v for k, v in ROOT.items() if k not in ("role", "two_factor", "status")}
        self.root: Operator = self.factory.operator(
            self.org, "root@acme.co", self.roles["Admin"], **root_fields
        )
        self.view1 = self.add("view1@hidden.co", VIEW1)
        self.path = tmp_path / "users.yaml"

    def add(self, email: str, fields: dict[str, str]) -> int:
        values = {k: v for k, v in fields.items() if k != "role"}
        return self.factory.user(self.org, email, self.roles[fields["role"]], **values)

    def twin(self, stored: str = "VIEW1@hidden.co") -> int:
        """A second row of view1's identity, stored as the platform wrote it."""
        twin = self.add("twin@hidden.co", OTHER)
        set_stored_email(self.engine, twin, stored)
        return twin

    def file(self, users: dict[str, dict[str, str]] | None = None, **kw: Any) -> str:
        default = {"root@acme.co": ROOT, "view1@hidden.co": VIEW1}
        return str(write_file(self.path, default if users is None else users, **kw))

    def apply(self, *extra: str, code: bool = True, operator: str = "root@acme.co") -> Any:
        args = ["apply", "-f", str(self.path), "--operator", operator, "--yes", *extra]
        return self.run(*args, *(["--otp-code", self.root.code()] if code else []))

    def written(self) -> tuple[list[Any], list[Any]]:
        return rows_of(self.engine, m.User), rows_of(self.engine, m.AuditEvent)


@pytest.fixture
def bare(bare_url: str, tmp_path: Path) -> Iterator[World]:
    world = World(bare_url, tmp_path)
    yield world
    world.engine.dispose()


@pytest.fixture
def world(platform_url: str, tmp_path: Path) -> Iterator[World]:
    # A database whose email column compares case on MariaDB too: on the test servers' default
    # collation an exact lookup would find `View1@Hidden.co` by accident.
    world = World(platform_url, tmp_path)
    yield world
    world.engine.dispose()


# --- the migration ---------------------------------------------------------------------------


def _at_0006(url: str) -> Engine:
    from alembic import command

    engine = create_engine_for(url)
    config = migrate.alembic_config()
    with begin_write(engine) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0006")
    binary_emails(engine)
    return engine


def test_upgrade_refuses_case_duplicates_naming_them_and_changes_nothing(
    empty_db_url: str,
) -> None:
    engine = _at_0006(empty_db_url)
    try:
        factory = Factory(engine)
        org = factory.org(ORG)
        role = factory.role(org, "Ops", ["payouts.view"])
        factory.user(org, "view1@hidden.co", role)
        twin = factory.user(org, "twin@hidden.co", role)
        set_stored_email(engine, twin, "VIEW1@hidden.co")
        other = factory.org("other-co")
        factory.user(other, "view1@hidden.co", factory.role(other, "Ops"))  # another org: fine

        refused = Runner(empty_db_url)("db", "upgrade")
        assert refused.exit_code == 1, refused.output
        assert "VIEW1@hidden.co and view1@hidden.co in organization acme-payments" in (
            refused.output
        )
        assert "other-co" not in refused.output
        assert "Traceback" not in refused.output
        assert len(refused.output.strip().splitlines()) == 1
        assert migrate.current(engine) == "0006"
        columns = {c["name"] for c in sa.inspect(engine).get_columns("users")}
        assert "email_key" not in columns

        with engine.begin() as conn:
            conn.execute(sa.delete(tables.users).where(tables.users.c.id == twin))
        done = Runner(empty_db_url)("db", "upgrade")
        assert done.exit_code == 0, done.output
        assert migrate.current(engine) == migrate.HEAD_REVISION
    finally:
        engine.dispose()


def test_downgrade_drops_the_identity_column_and_index_and_upgrade_restores_them(
    empty_db_url: str,
) -> None:
    from alembic import command

    engine = create_engine_for(empty_db_url)
    try:
        migrate.upgrade(engine)
        factory = Factory(engine)
        org = factory.org(ORG)
        factory.user(org, "view1@hidden.co", factory.role(org, "Ops"))
        config = migrate.alembic_config()
        with begin_write(engine) as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0006")
        inspector = sa.inspect(engine)
        assert "email_key" not in {c["name"] for c in inspector.get_columns("users")}
        assert "uq_users_org_email_key" not in {i["name"] for i in inspector.get_indexes("users")}
        assert migrate.upgrade(engine) == ("0006", migrate.HEAD_REVISION)
        with engine.connect() as conn:
            keys = conn.execute(sa.select(tables.users.c.email_key)).scalars().all()
        assert keys == ["view1@hidden.co"]
    finally:
        engine.dispose()


def test_after_the_migration_the_database_refuses_a_second_row_of_one_identity(
    platform_url: str,
) -> None:
    engine = create_engine_for(platform_url)
    try:
        factory = Factory(engine)
        org = factory.org(ORG)
        role = factory.role(org, "Ops")
        factory.user(org, "view1@hidden.co", role)
        other = factory.user(org, "other@hidden.co", role)
        with pytest.raises(sa.exc.IntegrityError):
            with engine.begin() as conn:
                conn.execute(
                    sa.insert(tables.users).values(
                        organization_id=org,
                        email="VIEW1@hidden.co",
                        id_type="CC",
                        id_number="77770001",
                        phone="+573100077777",
                        first_name="Twin",
                        last_name="Row",
                        role_id=role,
                        status="active",
                        two_factor="optional",
                        totp_enrolled=False,
                        force_password_reset=False,
                        created_at=utcnow(),
                        updated_at=utcnow(),
                    )
                )
        with pytest.raises(sa.exc.IntegrityError):
            set_stored_email(engine, other, "View1@Hidden.co")
        # Another organization holds its own identities.
        second = factory.org("other-co")
        factory.user(second, "VIEW1@hidden.co", factory.role(second, "Ops"))
    finally:
        engine.dispose()


# --- a database without the index: a blocking finding, never a silent merge --------------------


def test_plan_and_apply_refuse_two_rows_of_one_identity_naming_both(bare: World) -> None:
    bare.twin()
    bare.file()
    plan = bare.run("plan", "-f", str(bare.path))
    assert plan.exit_code == 4, plan.output
    assert "VIEW1@hidden.co and view1@hidden.co" in plan.output
    assert "No changes" not in plan.output
    as_json = json.loads(bare.run("plan", "-f", str(bare.path), "--format", "json").stdout)
    blocking = [f for f in as_json["findings"] if f["blocking"]]
    assert [f["code"] for f in blocking] == ["policy.case_blind_identity"]

    before = bare.written()
    applied = bare.apply()
    assert applied.exit_code == 4, applied.output
    assert "VIEW1@hidden.co and view1@hidden.co" in applied.output
    assert bare.written() == before


def test_policy_check_counts_both_rows_of_one_identity(bare: World) -> None:
    bare.twin()
    with bare.engine.begin() as conn:
        conn.execute(
            sa.insert(m.Policy).values(
                organization_id=bare.org, rule="max_holders", name="payouts.create", value="1"
            )
        )
    checked = bare.run("policy", "check", "--format", "json")
    assert checked.exit_code == 4, checked.output
    report = json.loads(checked.stdout)
    messages = {v["rule"]: v["message"] for v in report["violations"]}
    assert "VIEW1@hidden.co and view1@hidden.co" in messages["case_blind_identity"]
    assert "2 active users would hold payouts.create" in messages["max_holders"]

    with begin_read(bare.engine) as conn:
        live = read_live_state(conn, ORG)
    assert live.case_duplicates == (("VIEW1@hidden.co", "view1@hidden.co"),)
    assert {"view1@hidden.co", "VIEW1@hidden.co"} <= set(live.users)
    assert live.users["view1@hidden.co"].last_name == VIEW1["last_name"]  # stored as the key
    assert live.users["VIEW1@hidden.co"].last_name == OTHER["last_name"]


def test_without_policies_policy_check_still_refuses_the_identity(bare: World) -> None:
    bare.twin("View1@HIDDEN.co")
    checked = bare.run("policy", "check")
    assert checked.exit_code == 4, checked.output
    assert "View1@HIDDEN.co and view1@hidden.co" in checked.output


def test_the_review_lists_both_rows_of_one_identity(bare: World) -> None:
    bare.twin()
    result = bare.run("review", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    users = {u["email"]: u for u in report["users"]}
    assert {"view1@hidden.co", "VIEW1@hidden.co"} <= set(users)
    assert users["VIEW1@hidden.co"]["role"] == "Ops"
    assert any(
        "VIEW1@hidden.co and view1@hidden.co" in p["message"]
        for p in report["summary"]["policy_violations"]
    )


def test_commands_naming_an_identity_two_rows_hold_refuse(bare: World) -> None:
    bare.twin()
    shown = bare.run("users", "show", "VIEW1@HIDDEN.CO")
    assert shown.exit_code == 4, shown.output
    assert "VIEW1@hidden.co, view1@hidden.co" in shown.output
    # An operator whose identity two rows hold is no operator.
    root_twin = bare.add("roottwin@acme.co", person(3, "Admin"))
    set_stored_email(bare.engine, root_twin, "ROOT@acme.co")
    bare.factory.enrol(root_twin)
    with begin_read(bare.engine) as conn:
        with pytest.raises(IdentityClash, match="ROOT@acme.co, root@acme.co"):
            load_operator(conn, bare.org, "root@acme.co", now=utcnow())


def test_the_listings_show_each_row_of_one_identity_as_stored_and_warn(bare: World) -> None:
    # Before: both rows were listed as view1@hidden.co (the key), so `users list` showed one user
    # twice and `accounts list` one holder twice, with nothing to say that two accounts exist.
    twin = bare.twin()
    account = bare.factory.bank_account(bare.org, "ops-main")
    bare.factory.assign(bare.view1, account)
    bare.factory.assign(twin, account)
    finding = "case_blind_identity: VIEW1@hidden.co and view1@hidden.co are 2 users of one identity"
    for fmt in ("table", "json", "csv"):
        listed = bare.run("users", "list", "--format", fmt)
        assert listed.exit_code == 0, listed.output
        # The finding `policy check` blocks on, on stderr: stdout stays one parseable document.
        assert f"Warning: {finding}" in listed.stderr
        assert finding not in listed.stdout
    rows = json.loads(bare.run("users", "list", "--format", "json").stdout)
    emails = [r["email"] for r in rows]
    assert sorted(emails) == ["VIEW1@hidden.co", "root@acme.co", "view1@hidden.co"]
    by_email = {r["email"]: r for r in rows}
    assert by_email["VIEW1@hidden.co"]["last_name"] == OTHER["last_name"]
    assert by_email["view1@hidden.co"]["last_name"] == VIEW1["last_name"]
    table = bare.run("users", "list").stdout
    assert "VIEW1@hidden.co" in table and "view1@hidden.co" in table

    accounts = bare.run("accounts", "list", "--format", "json")
    assert accounts.exit_code == 0, accounts.output
    (row,) = json.loads(accounts.stdout)
    assert row["assigned_users"] == ["VIEW1@hidden.co", "view1@hidden.co"]
    assert f"Warning: {finding}" in accounts.stderr


def test_the_listings_of_a_clean_organization_warn_of_nothing(world: World) -> None:
    set_stored_email(world.engine, world.view1, "View1@Hidden.co")
    for args in (("users", "list"), ("accounts", "list")):
        listed = world.run(*args, "--format", "json")
        assert listed.exit_code == 0, listed.output
        assert listed.stderr == ""
    # One row of its identity is listed by its identity, as before.
    emails = [r["email"] for r in json.loads(world.run("users", "list", "--format", "json").stdout)]
    assert emails == ["root@acme.co", "view1@hidden.co"]


# --- a stored mixed-case email is matched, locked and changed like any other ------------------


def test_a_stored_mixed_case_email_is_updated_in_place(world: World) -> None:
    set_stored_email(world.engine, world.view1, "View1@Hidden.co")
    world.file({"root@acme.co": ROOT, "view1@hidden.co": {**VIEW1, "first_name": "Renamed"}})
    planned = world.run("plan", "-f", str(world.path), "--format", "json")
    assert planned.exit_code == 0, planned.output
    changes = json.loads(planned.stdout)["changes"]
    assert [(c["address"], c["action"]) for c in changes] == [('user["view1@hidden.co"]', "update")]
    applied = world.apply(code=False)
    assert applied.exit_code == 0, applied.output
    (row,) = rows_of(world.engine, m.User, m.User.id == world.view1)
    assert (row.email, row.first_name) == ("View1@Hidden.co", "Renamed")
    addresses = [e.address for e in rows_of(world.engine, m.AuditEvent)]
    assert addresses == ['user["view1@hidden.co"]']
    again = world.run("plan", "-f", str(world.path))
    assert again.exit_code == 0 and "No changes" in again.output, again.output

    shown = world.run("users", "show", "VIEW1@HIDDEN.CO", "--format", "json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["first_name"] == "Renamed"


def test_a_stored_mixed_case_email_is_deleted_and_assigned(world: World) -> None:
    set_stored_email(world.engine, world.view1, "VIEW1@HIDDEN.CO")
    account = world.factory.bank_account(world.org, "ops-main")
    world.factory.assign(world.view1, account)
    world.file({"root@acme.co": ROOT})
    applied = world.apply()
    assert applied.exit_code == 0, applied.output
    assert rows_of(world.engine, m.User, m.User.id == world.view1) == []
    assert rows_of(world.engine, m.UserBankAccount) == []


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])  # SQLite locks the whole file
def test_apply_locks_the_stored_mixed_case_row(world: World) -> None:
    set_stored_email(world.engine, world.view1, "View1@Hidden.co")
    other = create_engine_for(world.url)
    try:
        with begin_write(world.engine) as holder:
            lock_rows(holder, world.org, {"user": {"view1@hidden.co"}})
            with pytest.raises(sa.exc.OperationalError):
                with other.begin() as conn:
                    conn.execute(
                        sa.select(tables.users.c.id)
                        .where(tables.users.c.id == world.view1)
                        .with_for_update(nowait=True)
                    )
    finally:
        other.dispose()


@pytest.mark.parametrize("given", ["root@acme.co", "ROOT@ACME.CO"])
def test_an_operator_stored_in_mixed_case_acts(world: World, given: str) -> None:
    set_stored_email(world.engine, world.root.user_id, "Root@Acme.CO")
    with begin_read(world.engine) as conn:
        me = load_operator(conn, world.org, given, now=utcnow())
    assert (me.id, me.email) == (world.root.user_id, "root@acme.co")
    world.file({"root@acme.co": ROOT, "view1@hidden.co": {**VIEW1, "role": "Admin"}})
    applied = world.apply(operator=given)
    assert applied.exit_code == 0, applied.output
    events = rows_of(world.engine, m.AuditEvent)
    assert [(e.operator, e.address) for e in events] == [
        ("root@acme.co", 'user["view1@hidden.co"]')
    ]


def test_hygiene_sees_each_row_of_one_identity(bare: World) -> None:
    # Both rows hold a privileged role without an authenticator: two accounts to flag, not one.
    bare.add("view2@hidden.co", {**OTHER, "role": "Admin", "id_number": "5550099"})
    twin = bare.add("twin2@hidden.co", {**OTHER, "role": "Admin", "id_number": "5550098"})
    set_stored_email(bare.engine, twin, "View2@hidden.co")
    result = bare.run("hygiene", "--format", "json")
    flagged = {
        f["message"].split(" ")[0]
        for f in json.loads(result.stdout)["findings"]
        if f["code"] == "privileged_without_2fa"
    }
    assert {"view2@hidden.co", "View2@hidden.co"} <= flagged, result.output


def test_activity_import_matches_by_identity_and_refuses_one_two_rows_hold(
    platform_url: str, tmp_path: Path
) -> None:
    world = World(platform_url, tmp_path)
    try:
        set_stored_email(world.engine, world.view1, "View1@Hidden.co")
        csv = tmp_path / "logins.csv"
        csv.write_text("email,last_login_at\nVIEW1@hidden.co,2026-01-02T03:04:05Z\n")
        done = world.run("activity", "import", str(csv), "--operator", "root@acme.co")
        assert done.exit_code == 0, done.output
        (row,) = rows_of(world.engine, m.User, m.User.id == world.view1)
        assert row.last_login_at is not None and row.last_login_at.year == 2026
    finally:
        world.engine.dispose()


def test_activity_import_refuses_an_identity_two_rows_hold(bare: World, tmp_path: Path) -> None:
    bare.twin()
    csv = tmp_path / "logins.csv"
    csv.write_text("email,last_login_at\nview1@hidden.co,2026-01-02T03:04:05Z\n")
    refused = bare.run("activity", "import", str(csv), "--operator", "root@acme.co")
    assert refused.exit_code == 4, refused.output
    assert "VIEW1@hidden.co, view1@hidden.co" in refused.output
    assert all(r.last_login_at is None for r in rows_of(bare.engine, m.User))


def test_rows_of_one_identity_none_stored_lower_case_are_all_kept(bare: World) -> None:
    set_stored_email(bare.engine, bare.view1, "View1@Hidden.co")
    bare.twin("VIEW1@hidden.co")
    with begin_read(bare.engine) as conn:
        live = read_live_state(conn, ORG)
    assert live.case_duplicates == (("VIEW1@hidden.co", "View1@Hidden.co"),)
    # The first in sort order holds the identity's key; the other keeps its stored spelling.
    assert live.users["view1@hidden.co"].last_name == OTHER["last_name"]
    assert live.users["View1@Hidden.co"].last_name == VIEW1["last_name"]
    assert "VIEW1@hidden.co" not in live.users
    checked = bare.run("policy", "check")
    assert checked.exit_code == 4, checked.output
    assert "VIEW1@hidden.co and View1@Hidden.co" in checked.output


def test_a_plan_names_each_dormant_row_of_one_identity_as_the_snapshot_keys_it(
    bare: World,
) -> None:
    """The plan's hygiene keys its dormant candidates by the snapshot's own groups of rows of
    one identity: the twin under its stored email, the other under the identity."""
    twin = bare.twin()
    long_ago = utcnow() - dt.timedelta(days=400)
    with bare.engine.begin() as conn:
        conn.execute(
            sa.update(tables.users)
            .where(tables.users.c.id.in_([bare.view1, twin]))
            .values(created_at=long_ago, last_login_at=None)
        )
    bare.file()
    # --no-prune: the twin, absent from the file, stays (a deleted user is no finding).
    made = bare.run("plan", "-f", str(bare.path), "--no-prune", "--format", "json")
    plan = json.loads(made.stdout)
    dormant = sorted(f["message"] for f in plan["findings"] if "dormant" in f["code"])
    assert [m.split(":")[0] for m in dormant] == ["VIEW1@hidden.co", "view1@hidden.co"], dormant
