"""`userctl export`: live state → desired-state YAML. The exported file is accepted by the strict
loader and planning it against the same database shows no changes (round trip, on every
backend); the same database always gives the same bytes."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
import yaml_rs
from sqlalchemy.engine import Engine

from tests.conftest import Factory, Runner
from userctl import state
from userctl.db.engine import begin_read
from userctl.db.snapshot import read_live_state
from userctl.desired import fast_yaml
from userctl.desired.export import (
    SCHEMA_HINT,
    export_yaml,
    modeline,
    scalar,
    warnings,
)
from userctl.desired.loader import load_desired, text_problems
from userctl.planner import PlanOptions, diff

# Strings that YAML would misread, or refuse, if they were written plain.
TRICKY = [
    "yes",
    "No",
    "ON",
    "off",
    "y",
    "N",
    "true",
    "False",
    "null",
    "Null",
    "~",
    "",
    " ",
    "0123456",
    "1e5",
    "0x1F",
    "0o17",
    "1_000",
    "+573001112233",
    "-1",
    ".inf",
    ".NaN",
    "12:30",
    "- a",
    "a: b",
    "a:b",
    "a #b",
    "#x",
    "@x",
    "`x",
    "'q'",
    '"q"',
    "[a]",
    "{a}",
    "a, b",
    "*alias",
    "&anchor",
    "!tag",
    "%x",
    "|",
    ">",
    "?",
    "<<",
    "---",
    "...",
    " lead",
    "trail ",
    "multi\nline",
    "tab\there",
    "line\u2028sep",
    "nbsp\u00a0",
    "bell\x07",
    "del\x7f",
    "emoji \U0001f600",
    "back\\slash",
    "Ana María",
    "O'Brien",
    "Full access, incl. users",
]


def _populate(factory: Factory) -> int:
    """Every status, every two_factor value, assignments, several roles (one nobody holds, one
    with no permissions, names and values that need quoting)."""
    org = factory.org("acme-payments")
    admin = factory.role(
        org,
        "SuperAdmin",
        ["users.view", "users.add", "users.manage", "roles.manage", "audit.view"],
        "Full access: users, roles # and audit",
    )
    ops = factory.role(
        org, "Payouts Operator", ["payouts.view", "payouts.create", "bank_accounts.view"]
    )
    factory.role(org, "yes", [], "")
    factory.role(org, "Auditor: read-only", ["audit.view"], "no")
    main = factory.bank_account(org, "ops-main")
    usd = factory.bank_account(org, "usd-1", currency="USD")
    factory.bank_account(org, "spare")

    ana = factory.user(
        org,
        "ana.perez@acme.co",
        admin,
        first_name="Ana",
        last_name="Pérez",
        id_type="CC",
        id_number="0102030405",
        phone="+573001112233",
        status="active",
        two_factor="required",
    )
    factory.enrol(ana)
    factory.assign(ana, main)
    factory.assign(ana, usd)
    ops_user = factory.user(
        org,
        "luis@acme.co",
        ops,
        first_name="Yes",
        last_name="No",
        id_type="PP",
        id_number="AB12345",
        two_factor="optional",
        force_password_reset=True,
    )
    factory.assign(ops_user, usd)
    factory.user(
        org,
        "new.hire@acme.co",
        ops,
        first_name="New",
        last_name="Hire: 2026",
        status="invited",
        two_factor="required",
        id_number="1e10",
    )
    factory.user(
        org,
        "gone@acme.co",
        ops,
        first_name="Gone",
        last_name="O'Brien",
        status="inactive",
        two_factor="disabled",
        id_number="0x1F",
    )
    factory.user(
        org,
        "z.admin@acme.co",
        admin,
        first_name="Zed",
        last_name="Admin",
        status="active",
        two_factor="optional",
        id_type="NIT",
        id_number="900123456",
    )
    return org


def _live(engine: Engine, slug: str = "acme-payments") -> state.LiveState:
    with begin_read(engine) as conn:
        return read_live_state(conn, slug)


def test_export_round_trips_with_no_changes(
    runner: Runner, factory: Factory, engine: Engine, tmp_path: Path
) -> None:
    _populate(factory)
    out = tmp_path / "users.yaml"
    result = runner("export", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.stderr == f"{out}: exported 4 roles, 5 users of acme-payments\n"

    desired = load_desired(out)
    live = _live(engine)
    plan = diff(desired, live, PlanOptions())
    assert plan.active_changes == ()
    assert not plan.blocked
    # The invited user is declared active: pending registration, shown but not a change.
    assert [(c.address, c.action, c.deferred) for c in plan.changes] == [
        ('user["new.hire@acme.co"]', "activate", True)
    ]

    planned = runner("plan", "-f", str(out), "--detailed-exitcode")
    assert planned.exit_code == 0, planned.output


def test_the_demo_organization_round_trips(runner: Runner, tmp_path: Path) -> None:
    # Adoption as a team would do it: an organization built by other means, exported, planned.
    example = Path(__file__).resolve().parents[2] / "examples" / "users.yaml"
    init = runner("init", "-f", str(example), "--admin", "ana.perez@acme.co", "--demo", "--json")
    assert init.exit_code == 0, init.output
    out = tmp_path / "exported.yaml"
    assert runner("export", "-o", str(out)).exit_code == 0
    planned = runner("plan", "-f", str(out), "--detailed-exitcode")
    assert planned.exit_code == 0, planned.output
    assert "No changes." in planned.stdout


def test_export_is_deterministic_and_complete(
    runner: Runner, factory: Factory, tmp_path: Path
) -> None:
    _populate(factory)
    first = runner("export")
    assert first.exit_code == 0, first.output
    runner("export", "-o", str(tmp_path / "a.yaml"))
    assert (
        (tmp_path / "a.yaml").read_bytes()
        == first.stdout.encode("utf-8")
        == runner("export").stdout.encode("utf-8")
    )

    text = first.stdout
    lines = text.splitlines()
    assert lines[0] == modeline() == "# yaml-language-server: $schema=userctl.schema.json"
    assert lines[1] == SCHEMA_HINT
    relative = runner("export", "--schema", "../schemas/userctl.schema.json").stdout
    assert (
        relative.splitlines()[0] == "# yaml-language-server: $schema=../schemas/userctl.schema.json"
    )
    assert relative.splitlines()[1:] == lines[2:]  # a schema of the user's choosing needs no hint
    # The gate's settings are always in force, so always written.
    assert (
        "\nversion: 1\norganization: acme-payments\n"
        "policies:\n  two_factor_policy: destructive\n  four_eyes: false\n  min_admins: 1\n"
        "roles:\n"
    ) in text
    data = yaml.safe_load(text)
    assert list(data["roles"]) == ["Auditor: read-only", "Payouts Operator", "SuperAdmin", "yes"]
    assert data["roles"]["SuperAdmin"] == {
        "description": "Full access: users, roles # and audit",
        "permissions": ["audit.view", "roles.manage", "users.add", "users.manage", "users.view"],
    }
    assert data["roles"]["yes"] == {"description": "", "permissions": []}
    assert data["roles"]["Auditor: read-only"]["description"] == "no"
    assert list(data["users"]) == [
        "ana.perez@acme.co",
        "gone@acme.co",
        "luis@acme.co",
        "new.hire@acme.co",
        "z.admin@acme.co",
    ]
    assert data["users"]["ana.perez@acme.co"] == {
        "first_name": "Ana",
        "last_name": "Pérez",
        "id_type": "CC",
        "id_number": "0102030405",
        "phone": "+573001112233",
        "role": "SuperAdmin",
        "status": "active",
        "two_factor": "required",
        "force_password_reset": False,
        "bank_accounts": ["ops-main", "usd-1"],
    }
    assert (
        data["users"]["luis@acme.co"]["first_name"] == "Yes"
        and data["users"]["luis@acme.co"]["last_name"] == "No"
    )
    assert data["users"]["luis@acme.co"]["force_password_reset"] is True
    assert data["users"]["gone@acme.co"]["status"] == "inactive"
    assert data["users"]["gone@acme.co"]["id_number"] == "0x1F"
    # Every field written explicitly; id_number and phone always quoted; no anchors or aliases.
    assert all(len(user) == 10 for user in data["users"].values())
    assert all(
        line.split(": ", 1)[1].startswith('"')
        for line in lines
        if line.strip().startswith(("id_number:", "phone:"))
    )
    assert "&" not in text and "*" not in text.replace("****", "")
    # The invited user is exported active, with a comment saying why.
    invited = lines.index("  new.hire@acme.co:  # pending registration (invited)")
    assert lines[invited + 7] == "    status: active"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_default_modeline_names_the_schema_once_the_hint_is_followed(
    runner: Runner, factory: Factory, tmp_path: Path
) -> None:
    _populate(factory)
    exported = tmp_path / "users.yaml"
    assert runner("export", "-o", str(exported)).exit_code == 0
    first, hint = exported.read_text(encoding="utf-8").splitlines()[:2]
    # Do what the second line says, in the file's directory...
    command = re.fullmatch(
        r"# Editors check this file against \S+ beside it: `userctl (\w+) > (\S+)`\.", hint
    )
    assert command is not None, hint
    printed = runner(command.group(1))
    assert printed.exit_code == 0
    (tmp_path / command.group(2)).write_text(printed.stdout, encoding="utf-8")
    # ...and the first line leads to the desired-state schema, which the exported file satisfies.
    target = (exported.parent / first.removeprefix("# yaml-language-server: $schema=")).resolve()
    schema = json.loads(target.read_text(encoding="utf-8"))
    assert schema == json.loads(
        (Path(__file__).resolve().parents[2] / "schemas" / "userctl.schema.json").read_text()
    )
    jsonschema.validate(yaml.safe_load(exported.read_text(encoding="utf-8")), schema)


def test_export_chooses_the_organization(runner: Runner, factory: Factory) -> None:
    _populate(factory)
    other = factory.org("other-co")
    factory.user(
        other,
        "solo@other.co",
        factory.role(other, "Admin", ["users.manage"]),
        first_name="Solo",
        last_name="One",
        id_number="9000001",
        phone="+573000000001",
    )
    ambiguous = runner("export")
    assert ambiguous.exit_code == 1
    assert "acme-payments, other-co" in ambiguous.stderr and ambiguous.stdout == ""
    chosen = runner("--organization", "other-co", "export")
    assert chosen.exit_code == 0
    assert yaml.safe_load(chosen.stdout)["users"] == {
        "solo@other.co": {
            "first_name": "Solo",
            "last_name": "One",
            "id_type": "CC",
            "id_number": "9000001",
            "phone": "+573000000001",
            "role": "Admin",
            "status": "active",
            "two_factor": "optional",
            "force_password_reset": False,
            "bank_accounts": [],
        }
    }


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_unwritable_output_is_one_clear_error(
    runner: Runner, factory: Factory, tmp_path: Path
) -> None:
    # `export -o` and `plan --out` share the atomic writer: a target in a directory that does not
    # exist is named as the user gave it, never the writer's temporary file.
    _populate(factory)
    target = tmp_path / "missing_dir" / "users.yaml"
    exported = runner("export", "-o", str(target))
    assert exported.exit_code == 1
    assert exported.stderr == f"Error: cannot write {target}: No such file or directory\n"
    assert not target.parent.exists()

    good = tmp_path / "users.yaml"
    assert runner("export", "-o", str(good)).exit_code == 0
    assert runner("export", "-o", str(good)).exit_code == 0  # overwrites in place
    plan_target = tmp_path / "missing_dir" / "plan.json"
    planned = runner("plan", "-f", str(good), "--out", str(plan_target))
    assert planned.exit_code == 1
    assert planned.stderr == f"Error: cannot write {plan_target}: No such file or directory\n"
    assert planned.stdout == ""
    assert runner("plan", "-f", str(good), "--out", str(tmp_path / "plan.json")).exit_code == 0
    # Nothing left behind by the writer.
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_an_inactive_user_holding_accounts_is_flagged(
    runner: Runner, factory: Factory, tmp_path: Path
) -> None:
    # Only the platform can leave accounts on an inactive user: no file can declare it (DESIGN §1),
    # and an inactive user cannot be changed. The export says so, and planning stops at that user.
    org = factory.org("acme-payments")
    role = factory.role(org, "Admin", ["users.manage"])
    gone = factory.user(org, "gone@acme.co", role, status="inactive")
    factory.assign(gone, factory.bank_account(org, "ops-main"))
    out = tmp_path / "users.yaml"
    result = runner("export", "-o", str(out))
    assert result.exit_code == 0
    assert (
        "Warning: gone@acme.co is inactive but still holds bank accounts (ops-main)"
        in result.stderr
    )
    text = out.read_text()
    assert "    # still assigned in the database: ops-main; an inactive user\n" in text
    line = text.splitlines().index("    bank_accounts: []") + 1
    planned = runner("plan", "-f", str(out))
    assert planned.exit_code == 1
    assert (
        f"{out}:{line}:" in planned.stderr
        and "delete" in planned.stderr
        and "reactivate" in planned.stderr
    )


def test_an_empty_organization_exports_empty_mappings(runner: Runner, factory: Factory) -> None:
    factory.org("empty-org")
    text = runner("export").stdout
    assert text.endswith(
        "version: 1\norganization: empty-org\n"
        "policies:\n  two_factor_policy: destructive\n  four_eyes: false\n  min_admins: 1\n"
        "roles: {}\nusers: {}\n"
    )
    assert yaml.safe_load(text) == {
        "version": 1,
        "organization": "empty-org",
        "policies": {"two_factor_policy": "destructive", "four_eyes": False, "min_admins": 1},
        "roles": {},
        "users": {},
    }


# --- pure ---


@pytest.mark.parametrize("text", TRICKY)
def test_scalars_read_back_as_the_same_string(text: str) -> None:
    written = f"k: {scalar(text)}\nl: [{scalar(text)}]\n"
    assert yaml.safe_load(written) == {"k": text, "l": [text]}
    assert yaml_rs.loads(written) == {"k": text, "l": [text]}


def test_tricky_values_pass_the_strict_loader(tmp_path: Path) -> None:
    roles = {t: state.Role(t or "empty", t) for t in TRICKY if t.strip() and t.isprintable()}
    roles = {
        r.name: r for r in roles.values() if not r.name.startswith(" ") and not r.name.endswith(" ")
    }
    del roles["Null"]  # "null" again to the loader, which compares role names ignoring case
    users = {
        "ana@acme.co": state.User(
            "ana@acme.co",
            "Ana",
            "Pérez",
            "CC",
            "0123456",
            "+573001112233",
            "yes",
            status="active",
            two_factor="disabled",
            force_password_reset=True,
        )
    }
    live = state.LiveState(state.Organization("acme-payments", "ACME"), roles, users, {})
    path = tmp_path / "tricky.yaml"
    path.write_text(export_yaml(live), encoding="utf-8")
    desired = load_desired(path)
    assert dict(desired.roles) == roles
    assert dict(desired.users) == users


def test_output_does_not_depend_on_the_order_things_were_read() -> None:
    roles = [
        state.Role("B", "", frozenset({"users.view", "audit.view"})),
        state.Role("A", "x", frozenset()),
    ]
    users = [
        state.User(
            "b@x.co",
            "B",
            "B",
            "CC",
            "1234",
            "+573000000002",
            "A",
            bank_accounts=frozenset({"k2", "k1"}),
        ),
        state.User("a@x.co", "A", "A", "CC", "1235", "+573000000003", "B", status="invited"),
    ]
    org = state.Organization("x-co", "X")

    def live(order: int) -> state.LiveState:
        r, u = (roles, users) if order == 0 else (roles[::-1], users[::-1])
        return state.LiveState(org, {x.name: x for x in r}, {x.email: x for x in u}, {})

    assert export_yaml(live(0)) == export_yaml(live(1))
    assert "bank_accounts: [k1, k2]" in export_yaml(live(0))
    assert warnings(live(0)) == []
    inactive = dataclasses.replace(users[0], status="inactive")
    assert warnings(state.LiveState(org, {}, {inactive.email: inactive}, {})) == [
        "b@x.co is inactive but still holds bank accounts (k1, k2), which no file can declare and "
        "an inactive user cannot be changed: the file will not plan until you delete them (remove "
        "them from the file) or reactivate them (status: active)"
    ]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_export_takes_the_loaders_plain_path(factory: Factory, engine: Engine) -> None:
    # The hint's `>` is in a comment, not a block scalar's header: it once sent every export
    # through a look at each of its strings. The export is judged as written, on the plain path.
    _populate(factory)
    text = export_yaml(_live(engine))
    assert b">" in text.encode()  # the hint: `userctl schema > userctl.schema.json`
    assert fast_yaml.scan(text.encode()).screen is not fast_yaml.Screen.WALK
    assert not fast_yaml.scan(text.encode()).suspect
    assert text_problems(text, "f") == []
    # A chosen schema writes no hint.
    custom = export_yaml(_live(engine), "https://example.com/s.json")
    assert custom.splitlines()[1].startswith("# Exported by")


@pytest.mark.parametrize(
    "text",
    ["k: |\n  a\n", "k: >-\n  a\n", "- |\n  a\n", "k:\t|\n  a\n", "|\n  a\n"],
)
def test_a_block_scalars_header_has_every_string_looked_at(text: str) -> None:
    # A block keeps its line breaks, so where one may start, every string is looked at.
    assert fast_yaml.scan(text.encode()).screen is fast_yaml.Screen.WALK


def test_a_comment_that_reads_like_a_header_costs_no_look() -> None:
    # What stands in a comment is no block's header (fast_yaml.uncommented skips comments).
    assert fast_yaml.scan(b"[a, b]\n# k: |\n").screen is fast_yaml.Screen.CLEAN


@pytest.mark.parametrize(
    "hostile",
    ["Ana\u202eMaria", "Ana\tMaria", "\u0410dmin", "x", "A\u0301na"],
)
def test_hostile_values_in_an_export_are_found(hostile: str) -> None:
    # The hint's `>` no longer sends the export down the walk over every string: what the walk
    # found is still found, by the screen that lets only harmless text through.
    name = hostile.encode().decode("unicode_escape")
    role = state.Role(name, "d", frozenset({"users.view"}))
    user = state.User(
        "a@x.co", name, "Pérez", "CC", "1234", "+573000000002", name, two_factor="optional"
    )
    live = state.LiveState(state.Organization("x-co", "X"), {name: role}, {user.email: user}, {})
    assert bool(text_problems(export_yaml(live), "f")) == (hostile != "x")


def test_a_user_entry_writes_every_declared_field_in_order() -> None:
    # The entry is spelt out field by field: a field added to the state must be written too.
    user = state.User(
        "a@x.co",
        "Ana",
        "Pérez",
        "CC",
        "1234",
        "+573000000002",
        "Admin",
        status="inactive",
        force_password_reset=True,
        bank_accounts=frozenset({"k1"}),
        expires="2030-01-31",
    )
    role = state.Role("Admin", "", frozenset())
    live = state.LiveState(state.Organization("x-co", "X"), {"Admin": role}, {user.email: user}, {})
    entry = yaml_rs.loads(export_yaml(live))["users"]["a@x.co"]
    assert tuple(entry) == state.DECLARED_USER_FIELDS
    assert entry["force_password_reset"] is True and entry["bank_accounts"] == []
