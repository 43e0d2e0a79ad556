"""Outputs unchanged (issue 25): on generated data, the real CLI's outputs, the rows it writes and
the audit chain it appends are the bytes today's code produced, on every backend.

A seeded, hypothesis-free generator builds an organization of a few hundred users (names with
accents, Greek, Cyrillic, CJK beyond the BMP, mathematical letters, private-use and combining
characters; 20-digit document numbers, 15-digit phones, limits of a million) and two desired
states: the first creates it all, the second makes every kind of change of `plan.ACTION_TABLE`
to it (creates, updates, renames, a replace, deletes, (de)activations, role changes, 2FA
changes, expiries set and reached, assignments added and removed, roles and policies created,
updated and deleted). For each, through the CLI: `plan --format json --out`, `show PLAN` as
text, markdown and html, `apply PLAN --format json` with a real TOTP code; then `audit log
--format json`, `audit verify --format json` and `export`. The SHA-256 of each output, of each
table's rows (read with SQL) and each event's stored hash are compared with golden values in
tests/apply/golden/outputs.json, made by the code of the day the file was last regenerated.

The clock is pinned (`userctl.clock.utcnow` and the modules that imported it by name), so plans'
created_at, rows' stamps, expiries reached and the audit times are the same on every run; the
database is a new one, so the organization's id in every audit hash is 1. Nothing random is
left: every USERCTL_ variable is unset, so TOTP secrets are stored as tagged plain text (with
USERCTL_SECRET_KEY they would be encrypted with a random nonce) and no invitation is sent (with
USERCTL_SMTP_URL each would draw a random token).

What differs by backend only because it names the database is normalised: a plan's provenance
names its database (`sqlite: empty.db`, `postgresql://127.0.0.1:5432/userctl_t_...`), the plan
digest covers the provenance, and the digest is in every audit event's hash. So each output is
compared with that name replaced by `<database>`, each digest by the digest of the plan so
normalised, and each audit hash by the hash of the event so normalised, chained. Those are
recomputed here with today's encodings, written out below (`_reference_digest`,
`_reference_event_hash`), after checking that the stored digests and hashes equal them: a change
of how a digest or hash is computed fails the test too. Row ids are the backend's: each foreign
key is compared as the natural key of the row it points to (an email, a role name...).

Regenerate the golden values (only when an output is meant to change, saying why in the
commit: a new userctl version is one, as each plan names the version that made it), on SQLite in
a temporary directory:

    python -m tests.apply.test_outputs_unchanged --regenerate

Without --regenerate it prints the values and how they differ from the golden file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import random
import sys
import tempfile
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence
from unittest import mock

import click.testing
import pyotp
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from userctl import clock, state
from userctl.names import mixed_scripts, text_problem
from userctl.plan import ACTION_TABLE

GOLDEN = Path(__file__).with_name("golden") / "outputs.json"

ORG = "golden-payments"
OPERATOR = "root@golden.example"
# Base32, 32 characters: the operator's authenticator, so its codes are known at any instant.
SECRET = "GOLDENGOLDENGOLDENGOLDENGOLDEN23"
# Whole seconds, 5 s into a TOTP step. The second phase is a month later: expiries set in the
# first phase fall between them.
T1 = dt.datetime(2026, 3, 2, 12, 0, 5)
T2 = dt.datetime(2026, 4, 1, 9, 30, 5)
SEED = 25
USERS = 300
SEEDED = 40
DATABASE = "<database>"
SHORT = len("sha256:") + 12

PERMISSIONS = [p for p in state.PERMISSIONS if p != "payouts.approve"]
ADMIN = state.Role("Admin", "Full access but approving payouts", frozenset(PERMISSIONS))

FIRST_NAMES = (
    "José",
    "Zoë",
    "Ñandú",
    "Łukasz",
    "Ærøskøbing",
    "Σωκράτης",
    "Юлия",
    "李小龍",
    "𠜎𠜱",  # CJK Extension B: beyond the BMP
    "𝔊𝔬𝔱𝔥𝔦𝔠",  # mathematical Fraktur: beyond the BMP, no script of its own
    "Anne-Marie",
    "O'Connor",
    "q\u0307a",  # a combining dot with no precomposed form: NFC as it is
    "Tq\u0323\u0300n",  # two combining marks in canonical order, none precomposed
    "\ue000Private",  # private use
    "\U000f0001 Plane15",  # supplementary private use
    "🙂 Emoji",
    "Nguyễn",
    "Đặng",
    "Ωμέγα",
)
LAST_NAMES = (
    "Pérez",
    "García Márquez",
    "Müller",
    "Øster",
    "Παπαδόπουλος",
    "Достоевский",
    "山田",
    "𠀋𠂢",
    "van der Berg",
    "d\u0301x",  # d + combining acute (no precomposed form)
    "\ue0ff",
    "Smith",
    "Ó Briain",
    "Ng",
    "Ñúñez",
)
ROLE_NAMES = (
    "Payouts Operator",
    "Équipe Conformité",
    "Операторы",
    "審計員",
    "Auditor 𝔄",
    "Support \ue001",
    "Devs 🙂",
    "Viewer",
)
ACCOUNT_WORDS = ("cuenta-ñ", "账户", "ops", "payroll", "𝔣𝔲𝔫𝔡", "réserve")
DOMAINS = ("golden.example", "pagos.example.co", "x.example")


@dataclass(frozen=True)
class Scenario:
    """What the generator makes: the accounts and roles seeded before the CLI runs, the two
    desired states, the users the platform enrols between them, and the second plan's
    --replace."""

    accounts: tuple[state.BankAccount, ...]
    roles: Mapping[str, state.Role]
    users: tuple[state.User, ...]
    first: state.DesiredState
    second: state.DesiredState
    enrolled: tuple[str, ...]
    replace: tuple[str, ...]


def _fits(name: str) -> str:
    assert text_problem(name) is None and mixed_scripts(name) is None, name
    assert unicodedata.is_normalized("NFC", name), name
    return name


def generate(seed: int = SEED, users: int = USERS) -> Scenario:
    """The scenario: deterministic for a seed (random.Random, no hypothesis)."""
    rng = random.Random(seed)
    accounts = tuple(
        state.BankAccount(
            _fits(f"{ACCOUNT_WORDS[i % len(ACCOUNT_WORDS)]}-{i:02d}"),
            rng.choice(("Bancolombia", "Banco de Bogotá", "Nubank", "Itaú")),
            rng.choice(("savings", "checking")),
            f"****{rng.randrange(10_000):04d}",
            rng.choice(("COP", "USD", "EUR")),
        )
        for i in range(12)
    )
    keys = [a.key for a in accounts]
    roles = {ADMIN.name: ADMIN}
    for name in ROLE_NAMES:
        perms = set(rng.sample(PERMISSIONS, rng.randrange(1, 6)))
        roles[_fits(name)] = state.Role(
            name, f"{name}: generated #{rng.randrange(10**6)}", frozenset(perms)
        )
    plain_roles = sorted(r for r in roles if r != ADMIN.name)
    # Live before the first plan: six of the roles (one described otherwise, so the first plan
    # updates it) and the first users, a third of them inactive (the CLI creates active users
    # only), without their bank accounts (the first plan assigns them).
    seeded_roles = {n: roles[n] for n in plain_roles[:6]}
    n0 = plain_roles[0]
    seeded_roles[n0] = replace(roles[n0], description="Before the first plan")
    operator = state.User(
        OPERATOR,
        "Root",
        "Operator",
        "CC",
        "10000000",
        "+5730000000000",
        ADMIN.name,
        two_factor="required",
    )
    people: dict[str, state.User] = {OPERATOR: operator}
    seeded: list[state.User] = []
    for i in range(users):
        if i < SEEDED:
            status = "inactive" if i % 3 == 0 else "active"
            person = _person(rng, i, plain_roles[:6], keys, status)
            seeded.append(replace(person, bank_accounts=frozenset()))
        else:
            person = _person(rng, i, plain_roles, keys, "active")
        people[person.email] = person
    policies_1: dict[tuple[str, str], Any] = {
        ("separation_of_duties", "maker_checker"): ("payouts.approve", "payouts.create"),
        ("max_holders", "users.manage"): 1_000_000,
        ("max_holders", "payouts.create"): 999_999,
        ("require_reason", ""): False,
        ("review_every_days", ""): 3650,
    }
    first = state.DesiredState(ORG, roles, people, policies=policies_1)

    # The second state: every kind of change.
    others = sorted(e for e, u in people.items() if e != OPERATOR and u.status == "active")
    rng.shuffle(others)
    picks = iter(others)

    def take(n: int) -> list[str]:
        return [next(picks) for _ in range(n)]

    users_2 = dict(people)
    for email in take(15):  # delete
        del users_2[email]
    for email in take(30):  # rename, and a password reset forced or lifted
        u = users_2[email]
        users_2[email] = replace(
            u,
            first_name=_fits(rng.choice(FIRST_NAMES) + " 2º"),
            last_name=_fits(rng.choice(LAST_NAMES)),
            force_password_reset=not u.force_password_reset,
        )
    for email in take(20):  # change role
        u = users_2[email]
        users_2[email] = replace(u, role=rng.choice([r for r in plain_roles if r != u.role]))
    for email in take(15):  # deactivate
        users_2[email] = replace(users_2[email], status="inactive", bank_accounts=frozenset())
    for email in [u.email for u in seeded if u.status == "inactive"][::2]:  # activate
        users_2[email] = replace(users_2[email], status="active")
    for email in take(20):  # 2FA up and down
        u = users_2[email]
        users_2[email] = replace(
            u, two_factor="disabled" if u.two_factor == "required" else "required"
        )
    enrolled = tuple(sorted(take(6)))  # enrolled by the platform between the plans; 2FA off
    for email in enrolled:
        users_2[email] = replace(users_2[email], two_factor="disabled")
    for email in take(20):  # assignments added and removed
        u = users_2[email]
        if u.status != "active":
            continue
        gone = set(rng.sample(sorted(u.bank_accounts), len(u.bank_accounts) // 2))
        users_2[email] = replace(
            u, bank_accounts=frozenset((u.bank_accounts - gone) | set(rng.sample(keys, 2)))
        )
    for email in take(12):  # expiry set, brought forward, extended, removed
        u = users_2[email]
        users_2[email] = replace(
            u, expires=rng.choice((None, "2099-12-31", "2026-06-30", "2026-04-15"))
        )
    replaced = tuple(sorted(take(4)))
    for email in replaced:  # a new identity document: replaced with --replace
        u = users_2[email]
        users_2[email] = replace(
            u, id_number=u.id_number[::-1][:4] + "R" + u.id_number[-3:], expires=None
        )
    for i in range(users, users + 20):  # creates
        u = _person(rng, i, plain_roles, keys, "active")
        users_2[u.email] = replace(u, expires=None if u.expires is None else "2099-12-31")
    for email, u in list(users_2.items()):
        if u.expires is not None and u.expires < T2.date().isoformat():
            # Expired by now: the plan deactivates them, which takes their accounts away.
            users_2[email] = replace(u, bank_accounts=frozenset())
    roles_2 = dict(roles)
    gone_role, updated_role = plain_roles[0], plain_roles[1]
    del roles_2[gone_role]
    for email, u in list(users_2.items()):
        if u.role == gone_role:
            users_2[email] = replace(u, role=plain_roles[2])
    r = roles_2[updated_role]
    roles_2[updated_role] = state.Role(
        r.name,
        r.description + " (revised)",
        frozenset(set(sorted(r.permissions)[1:]) | {"travel_rule.view", "users.view"}),
    )
    roles_2[_fits("Nuevo Rol ñ")] = state.Role("Nuevo Rol ñ", "", frozenset({"customers.view"}))
    policies_2: dict[tuple[str, str], Any] = {
        ("separation_of_duties", "maker_checker"): ("payouts.approve", "payouts.create"),
        ("max_holders", "users.manage"): 500_000,
        ("forbid_shared_mailboxes", ""): True,
        ("max_inactive_days", ""): 3650,
        ("review_every_days", ""): 3650,
    }
    second = state.DesiredState(ORG, roles_2, users_2, policies=policies_2)
    return Scenario(accounts, seeded_roles, tuple(seeded), first, second, enrolled, replaced)


def _person(
    rng: random.Random, i: int, roles: Sequence[str], keys: Sequence[str], status: str
) -> state.User:
    first = _fits(rng.choice(FIRST_NAMES))
    last = _fits(rng.choice(LAST_NAMES))
    local = rng.choice(("ana", "li", "o.connor", "j_p", "x")) + f".{i:04d}"
    # The biggest numbers the columns hold, now and then.
    id_number = "9" * 16 + f"{i:04d}" if i % 50 == 0 else f"{rng.randrange(10**6)}{i:04d}"
    phone = "+" + "9" * 11 + f"{i:04d}" if i % 40 == 0 else f"+57{rng.randrange(10**6):06d}{i:04d}"
    expires = None
    if rng.random() < 0.1:
        # Reached between the two plans, or far ahead.
        expires = rng.choice(("2026-03-15", "2026-03-31", "2099-12-31"))
    return state.User(
        email=f"{local}@{rng.choice(DOMAINS)}",
        first_name=first,
        last_name=last,
        id_type=rng.choice(state.ID_TYPES),
        id_number=id_number,
        phone=phone,
        role=rng.choice(roles),
        status=status,
        two_factor=rng.choice(state.TWO_FACTOR),
        force_password_reset=rng.random() < 0.2,
        bank_accounts=frozenset(rng.sample(keys, rng.randrange(0, 4)))
        if status == "active"
        else frozenset(),
        expires=expires,
    )


def yaml_text(desired: state.DesiredState) -> str:
    """The desired state as a file (JSON scalars are YAML; always quoted strings)."""

    def q(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    lines = ["version: 1", f"organization: {q(desired.organization)}", "policies:"]
    grouped: dict[str, dict[str, Any]] = {}
    for (rule, name), value in sorted(desired.policies.items()):
        grouped.setdefault(rule, {})[name] = value
    for rule, entries in grouped.items():
        if list(entries) == [""]:
            value = entries[""]
            lines.append(f"  {rule}: {q(sorted(value) if isinstance(value, tuple) else value)}")
            continue
        lines.append(f"  {rule}:")
        for name, value in entries.items():
            lines.append(
                f"    {q(name)}: {q(sorted(value) if isinstance(value, tuple) else value)}"
            )
    lines.append("roles:")
    for name in sorted(desired.roles):
        role = desired.roles[name]
        lines += [
            f"  {q(name)}:",
            f"    description: {q(role.description)}",
            f"    permissions: {q(sorted(role.permissions))}",
        ]
    lines.append("users:")
    for email in sorted(desired.users):
        u = desired.users[email]
        lines.append(f"  {q(email)}:")
        for name in (
            "first_name",
            "last_name",
            "id_type",
            "id_number",
            "phone",
            "role",
            "status",
            "two_factor",
            "force_password_reset",
        ):
            lines.append(f"    {name}: {q(getattr(u, name))}")
        lines.append(f"    bank_accounts: {q(sorted(u.bank_accounts))}")
        if u.expires is not None:
            lines.append(f"    expires: {q(u.expires)}")
    return "\n".join(lines) + "\n"


# --- Running it ---------------------------------------------------------------------------------


class PinnedClock:
    """The process clock, reading `now` until moved."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@contextlib.contextmanager
def pinned(at: PinnedClock) -> Iterator[None]:
    """Every reading of the clock is `at`: userctl.clock.utcnow, and the modules that imported it
    by name. (The tables' column defaults hold the real clock, but every writer here passes its
    stamps.)"""
    from userctl.apply import bootstrap, otp
    from userctl.db import rows

    modules: list[Any] = [clock, rows, otp, bootstrap]
    saved = [m.utcnow for m in modules]
    for m in modules:
        m.utcnow = at
    try:
        yield
    finally:
        for m, original in zip(modules, saved):
            m.utcnow = original


@dataclass
class Cli:
    """The real CLI, in this process (so the pinned clock is the one it reads)."""

    db_url: str
    env: dict[str, str | None] = field(default_factory=dict)

    def __call__(self, *args: str) -> click.testing.Result:
        from userctl.cli.main import cli

        return click.testing.CliRunner().invoke(
            cli, ["--database-url", self.db_url, *args], env=self.env, catch_exceptions=False
        )


def _clean_env() -> dict[str, str | None]:
    """No option from the developer's shell: every USERCTL_ variable unset (but the test
    servers')."""
    return {
        n: None
        for n in os.environ
        if n.startswith("USERCTL_") and not n.startswith("USERCTL_TEST_")
    }


def seed(engine: Engine, scenario: Scenario) -> None:
    """What the CLI does not write: the organization, its Admin role and operator with a known
    authenticator, and the bank accounts (the platform's)."""
    from userctl.apply import otp
    from userctl.db import rows

    with engine.begin() as conn:
        org_id = rows.insert_organization(
            conn, state.Organization(ORG, name="Pagos Ñandú 𝔊olden \ue000")
        )
        admin = rows.insert_role(conn, org_id, ADMIN)
        root = rows.insert_user(conn, org_id, scenario.first.users[OPERATOR], admin)
        otp.store_totp_secret(conn, root, SECRET)
        for account in scenario.accounts:
            rows.insert_bank_account(conn, org_id, account)
        role_ids = {n: rows.insert_role(conn, org_id, r) for n, r in scenario.roles.items()}
        for user in scenario.users:
            rows.insert_user(conn, org_id, user, role_ids[user.role])


def register(engine: Engine, at: dt.datetime) -> None:
    """The platform: invitees register, but every fifth (by email) who has not yet; the plan
    after it assigns the registered ones the bank accounts it deferred."""
    from userctl.db import models as m

    with engine.begin() as conn:
        # Sorted here: each backend's collation orders "j_p." and "j.p" its own way.
        invited = sorted(
            conn.execute(sa.select(m.User.email).where(m.User.status == "invited")).scalars()
        )
        registered = [email for n, email in enumerate(invited) if n % 5]
        conn.execute(
            sa.update(m.User)
            .where(m.User.email.in_(registered))
            .values(status="active", updated_at=at)
        )


def enrol(engine: Engine, emails: Sequence[str]) -> None:
    """The platform enrols some users' authenticators (so a plan can disable them)."""
    from userctl.apply import otp
    from userctl.db import models as m

    with engine.begin() as conn:
        for email in emails:
            user_id = conn.execute(sa.select(m.User.id).where(m.User.email == email)).scalar_one()
            otp.store_totp_secret(conn, user_id, SECRET)


def code_at(moment: dt.datetime) -> str:
    return pyotp.TOTP(SECRET).at(clock.unix_seconds(moment))


def _phase(
    cli: Cli,
    now: PinnedClock,
    at: dt.datetime,
    n: int,
    desired: state.DesiredState,
    options: Sequence[str],
) -> dict[str, str]:
    """Plan `desired` (JSON, saved), show the saved plan in the other formats, apply it with a
    real code: the outputs."""
    now.now = at
    Path(f"users-{n}.yaml").write_text(yaml_text(desired), encoding="utf-8")
    planned = cli(
        "plan",
        "-f",
        f"users-{n}.yaml",
        "--format",
        "json",
        "--out",
        f"plan-{n}.json",
        "--operator",
        OPERATOR,
        *options,
    )
    assert planned.exit_code in (0, 2, 3), planned.output
    plan = json.loads(planned.stdout)
    blocking = [f["message"] for f in plan["findings"] if f["blocking"]]
    assert not blocking, blocking
    outputs = {
        f"plan-{n} --format json": planned.stdout,
        f"plan-{n} --out": Path(f"plan-{n}.json").read_bytes().decode("utf-8"),
    }
    for fmt in ("text", "markdown", "html"):  # the other renderers, of the saved plan
        shown = cli("show", f"plan-{n}.json", "--format", fmt)
        assert shown.exit_code == 0, shown.output
        outputs[f"show plan-{n} --format {fmt}"] = shown.stdout
    applied = cli(
        "apply",
        f"plan-{n}.json",
        "--operator",
        OPERATOR,
        "--yes",
        "--otp-code",
        code_at(at),
        "--format",
        "json",
    )
    assert applied.exit_code == 0, applied.output
    outputs[f"apply-{n} --format json"] = applied.stdout
    return outputs


def run_outputs(db_url: str, workdir: Path, scenario: Scenario | None = None) -> dict[str, Any]:
    """Everything the test compares, normalised, for the migrated empty database at `db_url`."""
    from userctl.db.engine import create_engine_for

    scenario = scenario or generate()
    now = PinnedClock(T1)
    engine = create_engine_for(db_url)
    cli = Cli(db_url, _clean_env())
    try:
        # The environment of this process too: seed() and enrol() store secrets here.
        with pinned(now), contextlib.chdir(workdir), mock.patch.dict(os.environ):
            for name in _clean_env():
                del os.environ[name]
            seed(engine, scenario)
            outputs = _phase(cli, now, T1, 1, scenario.first, ())
            register(engine, T1 + dt.timedelta(days=1))
            enrol(engine, scenario.enrolled)
            replaces = [a for e in scenario.replace for a in ("--replace", e)]
            outputs |= _phase(cli, now, T2, 2, scenario.second, replaces)
            log = cli("audit", "log", "--format", "json")
            assert log.exit_code == 0, log.output
            outputs["audit log --format json"] = log.stdout
            verified = cli("audit", "verify", "--format", "json")
            assert verified.exit_code == 0, verified.output
            outputs["audit verify --format json"] = verified.stdout
            exported = cli("export")
            assert exported.exit_code == 0, exported.output
            outputs["export"] = exported.stdout
            rows = table_rows(engine)
            events = audit_rows(engine)
    finally:
        engine.dispose()
    return normalised(outputs, rows, events)


# --- Reading and normalising --------------------------------------------------------------------

# Foreign keys, shown as the natural key of the row they point to (ids are the backend's).
NATURAL = {
    "organizations": "slug",
    "users": "email",
    "roles": "name",
    "bank_accounts": "key",
}
FOREIGN = {
    "organization_id": "organizations",
    "user_id": "users",
    "approver_id": "users",
    "role_id": "roles",
    "bank_account_id": "bank_accounts",
}


def _plain(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def table_rows(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows with SQL, ids replaced by the natural keys they stand for, sorted."""
    from userctl.db.models import Base

    out: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        names: dict[str, dict[Any, Any]] = {}
        for name, column in NATURAL.items():
            t = Base.metadata.tables[name]
            names[name] = {i: key for i, key in conn.execute(sa.select(t.c.id, t.c[column]))}
        for table in Base.metadata.sorted_tables:
            found = []
            for row in conn.execute(sa.select(table)).mappings():
                record: dict[str, Any] = {}
                for column, value in row.items():
                    if column == "id":
                        continue
                    if column in FOREIGN and value is not None:
                        value = names[FOREIGN[column]][value]
                    record[column] = _plain(value)
                found.append(record)
            out[table.name] = sorted(found, key=_reference_json)
    return out


EVENT_FIELDS = (
    "organization_id",
    "seq",
    "created_at",
    "operator",
    "verified_by",
    "operator_verified",
    "plan_digest",
    "action",
    "address",
    "before",
    "after",
    "prev_hash",
    "hash",
    "hmac",
    "reason",
    "refers_to",
)


def audit_rows(engine: Engine) -> list[dict[str, Any]]:
    """The chain as stored, oldest first."""
    from userctl.db.models import Base

    events = Base.metadata.tables["audit_events"]
    query = sa.select(*(events.c[name] for name in EVENT_FIELDS)).order_by(events.c.seq)
    with engine.connect() as conn:
        return [dict(zip(EVENT_FIELDS, row)) for row in conn.execute(query)]


def _reference_json(data: Any) -> str:
    """Today's canonical JSON, written out here so a change to the project's is seen."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _reference_digest(plan: Mapping[str, Any]) -> str:
    """A plan's digest as today's code computes it: what it signs, canonical, SHA-256."""
    signed = {k: v for k, v in plan.items() if k not in ("digest", "findings", "summary")}
    return "sha256:" + _sha(_reference_json(signed))


def _reference_event_hash(event: Mapping[str, Any]) -> str:
    """An audit event's hash as today's code computes it (apply/audit.py's payload)."""
    created: dt.datetime = event["created_at"]
    fields: dict[str, Any] = {
        "organization_id": int(event["organization_id"]),
        "seq": int(event["seq"]),
        "time": clock.naive_utc(created).isoformat() + "Z",
        "operator": event["operator"],
        "verified_by": event["verified_by"],
        "plan_digest": event["plan_digest"],
        "action": event["action"],
        "address": event["address"],
        "before": event["before"],
        "after": event["after"],
        "prev_hash": event["prev_hash"],
    }
    if event["operator_verified"] is not None:
        fields["operator_verified"] = bool(event["operator_verified"])
    if event["reason"] is not None:
        fields["reason"] = event["reason"]
    if event["refers_to"] is not None:
        fields["refers_to"] = int(event["refers_to"])
    return _sha(_reference_json(fields))


def normalised(
    outputs: Mapping[str, str],
    rows: Mapping[str, list[dict[str, Any]]],
    events: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """The golden values: SHA-256 of each output and table, and each event's hash, once the
    database's name (and what covers it: digests, hashes) is normalised."""
    swaps: dict[str, str] = {}
    database: str | None = None
    for name, text in outputs.items():
        if not name.startswith("plan-"):
            continue
        plan = json.loads(text)
        assert plan["digest"] == _reference_digest(plan), f"{name}: digest computed otherwise"
        database = plan["provenance"]["database"]
        plan["provenance"]["database"] = DATABASE
        digest = swaps[plan["digest"]] = _reference_digest(plan)
        # As the text and markdown renderings abbreviate it.
        swaps[plan["digest"][:SHORT] + "…"] = digest[:SHORT] + "…"
    assert database is not None
    swaps[database] = DATABASE

    def swapped(text: str) -> str:
        for old, new in swaps.items():
            text = text.replace(old, new)
        return text

    chain: list[str] = []
    for event in events:
        assert event["hash"] == _reference_event_hash(event), f"event {event['seq']}: hash"
        same = {k: swapped(v) if isinstance(v, str) else v for k, v in event.items()}
        swaps[event["hash"]] = same["hash"] = _reference_event_hash(same)
        chain.append(same["hash"])
    return {
        "outputs": {name: _sha(swapped(text)) for name, text in sorted(outputs.items())},
        "rows": {name: _sha(swapped(_reference_json(found))) for name, found in rows.items()},
        "row_counts": {name: len(found) for name, found in rows.items()},
        "audit_hashes": chain,
        "actions": sorted(
            {
                f"{c['kind']}.{c['action']}"
                for name, text in outputs.items()
                if name.startswith("plan-") and name.endswith("json")
                for c in json.loads(text)["changes"]
            }
        ),
    }


def golden() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GOLDEN.read_text(encoding="utf-8"))
    return data


def differences(got: Mapping[str, Any], want: Mapping[str, Any]) -> list[str]:
    """What differs, one line each (the first differing event of the chain)."""
    lines: list[str] = []
    if got["actions"] != want["actions"]:
        lines.append(f"actions: {want['actions']} -> {got['actions']}")
    for part in ("outputs", "rows", "row_counts"):
        for name in sorted(set(got[part]) | set(want[part])):
            if got[part].get(name) != want[part].get(name):
                lines.append(f"{part}[{name}]: {want[part].get(name)} -> {got[part].get(name)}")
    chain, wanted = got["audit_hashes"], want["audit_hashes"]
    if chain != wanted:
        first = next((i for i, (a, b) in enumerate(zip(chain, wanted)) if a != b), None)
        lines.append(
            f"audit_hashes: {len(wanted)} -> {len(chain)} events; first differing event: "
            f"{'none' if first is None else f'#{first + 1}'}"
        )
    return lines


def test_outputs_unchanged(backend: str, empty_db_url: str, tmp_path: Path) -> None:
    """Plans, saved plans, apply and audit log documents, the export, every table's rows and the
    audit chain are today's, byte for byte, on this backend."""
    from userctl.db.engine import create_engine_for
    from userctl.db.migrate import upgrade

    engine = create_engine_for(empty_db_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    got = run_outputs(empty_db_url, tmp_path)
    problems = differences(got, golden())
    if problems:
        pytest.fail(
            f"{backend}: outputs differ from {GOLDEN.name} (a change meant? regenerate, see the "
            "module's docstring):\n" + "\n".join(problems),
            pytrace=False,
        )
    # What the golden values stand for: the two plans hold every action of the table.
    assert got["actions"] == sorted(f"{kind}.{action}" for kind, action in ACTION_TABLE)


def main(argv: Sequence[str]) -> int:
    """Compute the golden values on SQLite in a temporary directory; print them, and with
    --regenerate write them to GOLDEN."""
    from userctl.db.engine import create_engine_for
    from userctl.db.migrate import upgrade

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'empty.db'}"
        engine = create_engine_for(url)
        upgrade(engine)
        engine.dispose()
        got = run_outputs(url, Path(tmp))
    if "--regenerate" in argv:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"wrote {GOLDEN}")
        return 0
    print(json.dumps(got, indent=1, sort_keys=True))
    if GOLDEN.exists():
        print("\n".join(differences(got, golden())) or "same as the golden file", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
