"""A plan visits each user as little as it can: the loader checks each declared user and builds
its User in one loop (semantic.TypedUsers), and the snapshot hands back the file's own User for a
live row equal to it (plan_read.users_keyed's `like`), which the planner then passes by with an
identity test. None of that may show: on generated data with drift of every kind (renames,
status changes, bank accounts added and removed, deletes, creates, role changes, 2FA and
password-reset changes, expiries set, moved, removed and reached, emails differing only by case,
users enrolled on the platform, optional fields left out), the real CLI's plan in every format
(text, --verbose, JSON, markdown, HTML, and the saved plan with its digest) is byte for byte the
plan made the plain way: each user built by keyword from the parsed file, and each live row read
as a User of its own, so that the planner compares every user field by field."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import random
from pathlib import Path
from typing import Any, Callable
from unittest import mock

import pytest
import yaml_rs

from tests.conftest import Factory, Runner
from userctl.db import plan_read
from userctl.desired import loader
from userctl.state import DesiredState, User

ORG = "drift-co"
NOW = dt.datetime(2026, 3, 2, 12, 0, 5)
TODAY = NOW.date()
SEED = 2025
USERS = 96
CREATES = 12
ROLES = {
    "Admin": ["users.view", "users.manage", "roles.manage"],
    "Ops": ["payouts.view", "payouts.create"],
    "Viewer": ["users.view"],
}
ACCOUNTS = ["acct-1", "acct-2", "acct-3", "acct-4"]
NAMES = ["Ana", "Bjørn", "Zoë", "Ülkü", "Łukasz", "Ἀθηνᾶ", "Ольга", "Jo"]
FORMATS: list[tuple[str, ...]] = [
    ("--format", "text"),
    ("--format", "text", "--verbose"),
    ("--format", "json"),
    ("--format", "markdown"),
    ("--format", "html"),
]


def _day(offset: int) -> str:
    return (TODAY + dt.timedelta(days=offset)).isoformat()


def _live_user(rng: random.Random, i: int) -> dict[str, Any]:
    status = rng.choice(["active"] * 6 + ["inactive", "invited"])
    return {
        "first_name": rng.choice(NAMES),
        "last_name": f"{rng.choice(NAMES)} {i}",
        "id_type": rng.choice(["CC", "PP", "CE"]),
        "id_number": f"{4000 + i}",
        "phone": f"+5730{i:08d}",
        "role": rng.choice(sorted(ROLES)),
        "status": status,
        "two_factor": rng.choice(["optional", "required", "disabled"]),
        "force_password_reset": rng.random() < 0.2,
        "bank_accounts": sorted(rng.sample(ACCOUNTS, rng.randint(0, 2)))
        if status != "inactive"
        else [],
        "expires": rng.choice([None, None, _day(rng.randint(30, 400))]),
    }


def _drifted(rng: random.Random, i: int, live: dict[str, Any]) -> dict[str, Any] | None:
    """The file's entry for live user `i` (None: left out, so deleted)."""
    want = dict(live)
    if live["status"] == "invited":
        want["status"] = "active"  # a file declares them active; the platform activates them
    kind = i % 12
    if live["status"] == "inactive" and kind not in (0, 3, 5, 7):
        return want  # an inactive user who stays inactive may not be modified
    if kind == 1:
        want["first_name"] = NAMES[(NAMES.index(live["first_name"]) + 1) % len(NAMES)]
    elif kind == 2:
        want["last_name"] = "Renamed " + str(i)
    elif kind == 3:
        if live["status"] == "inactive":
            want["status"] = "active"
        else:
            want["status"], want["bank_accounts"] = "inactive", []
    elif kind == 4:
        want["bank_accounts"] = sorted(set(ACCOUNTS) - set(live["bank_accounts"]))[:2]
    elif kind == 5:
        return None
    elif kind == 6:
        want["role"] = next(r for r in sorted(ROLES) if r != live["role"])
    elif kind == 8:
        want["expires"] = rng.choice([None, _day(-3), _day(5), _day(900)])
    elif kind == 9:
        want["two_factor"] = "required" if live["two_factor"] != "required" else "optional"
    elif kind == 10:
        want["force_password_reset"] = not live["force_password_reset"]
    return want


def _entry_lines(email: str, fields: dict[str, Any], rng: random.Random) -> list[str]:
    q: Callable[[Any], str] = lambda v: json.dumps(v, ensure_ascii=False)  # noqa: E731
    lines = [f"  {q(email)}:"]
    defaults = {
        "status": "active",
        "two_factor": "optional",
        "force_password_reset": False,
        "bank_accounts": [],
        "expires": None,
    }
    for name, value in fields.items():
        if name in defaults and value == defaults[name] and rng.random() < 0.5:
            continue  # left out: the default holds
        if value is None:
            continue
        if isinstance(value, bool):
            lines.append(f"    {name}: {'true' if value else 'false'}")
        elif isinstance(value, list):
            lines.append(f"    {name}: [{', '.join(q(v) for v in value)}]")
        else:
            lines.append(f"    {name}: {q(value)}")
    return lines


def _populate(factory: Factory) -> str:
    """The live organization, and the text of a drifted desired state of it."""
    rng = random.Random(SEED)
    org = factory.org(ORG, min_admins=1)
    role_ids = {
        name: factory.role(org, name, perms, f"{name} role") for name, perms in ROLES.items()
    }
    account_ids = {key: factory.bank_account(org, key) for key in ACCOUNTS}
    lines = ["version: 1", f"organization: {ORG}", "roles:"]
    for name, perms in ROLES.items():
        lines += [
            f"  {name}:",
            f"    description: {name} role",
            f"    permissions: [{', '.join(perms)}]",
        ]
    lines.append("users:")
    for i in range(USERS):
        email = f"user{i}@drift.example"
        live = _live_user(rng, i)
        fields = {k: v for k, v in live.items() if k not in ("bank_accounts", "role")}
        user_id = factory.user(org, email, role_ids[live["role"]], role=live["role"], **fields)
        for key in live["bank_accounts"]:
            factory.assign(user_id, account_ids[key])
        if i % 7 == 0 and live["status"] == "active":
            factory.enrol(user_id)  # the platform's: the file's User never says so
        want = _drifted(rng, i, live)
        if want is None:
            continue
        # Case only: the same identity, written otherwise.
        written = email.upper() if i % 12 == 7 else email.capitalize() if i % 5 == 0 else email
        lines += _entry_lines(written, want, rng)
    for j in range(CREATES):
        new = _live_user(rng, USERS + j)
        new["status"], new["expires"] = "active", rng.choice([None, _day(10), _day(200)])
        lines += _entry_lines(f"new{j}@drift.example", new, rng)
    return "\n".join(lines) + "\n"


_LOAD = loader.load_desired  # the real one, while the test puts _plain_load in its place


def _plain_load(path: str | Any, **kwargs: Any) -> DesiredState:
    """The loader's state with every user built by keyword from the parsed file: the plain way
    the one loop that checks and builds must match."""
    loaded = _LOAD(path, **kwargs)
    users: dict[str, User] = {}
    parsed = yaml_rs.loads(Path(path).read_text(encoding="utf-8"), parse_datetime=False)
    for email, fields in parsed["users"].items():
        values = {k: v for k, v in fields.items() if k != "bank_accounts"}
        users[email.lower()] = User(
            email=email.lower(), bank_accounts=frozenset(fields.get("bank_accounts", [])), **values
        )
    return dataclasses.replace(loaded, users=users)


def _outputs(runner: Runner, path: Path, saved: Path) -> list[str]:
    found = []
    with mock.patch("userctl.clock.utcnow", return_value=NOW):
        for fmt in FORMATS:
            result = runner("plan", "-f", str(path), *fmt)
            assert result.exit_code in (0, 2, 3), result.output
            found.append(result.output)
        runner("plan", "-f", str(path), "--out", str(saved))
    return [*found, saved.read_text(encoding="utf-8")]


@pytest.mark.parametrize("thin", [True, False], ids=["driver", "sqlalchemy"])
def test_the_plan_is_the_plan_made_comparing_every_user(
    runner: Runner, factory: Factory, tmp_path: Path, thin: bool
) -> None:
    path = tmp_path / "drift.yaml"
    path.write_text(_populate(factory), encoding="utf-8")
    shown_by: dict[str, int] = {"held": 0}
    users_keyed = plan_read.users_keyed

    def counting(rows: Any, accounts: Any, like: Any = None) -> Any:
        users, duplicates = users_keyed(rows, accounts, like)
        shown_by["held"] += sum(1 for e, u in users.items() if like and like.get(e) is u)
        return users, duplicates

    with (
        mock.patch("userctl.db.thin.read_for_plan", return_value=None)
        if not thin
        else contextlib.nullcontext(),
        mock.patch("userctl.db.plan_read.users_keyed", counting),
    ):
        fast = _outputs(runner, path, tmp_path / "fast.json")
    # The row comparison did hand back the file's Users (a quarter of the users are unchanged).
    assert shown_by["held"] > USERS // 5 * (len(FORMATS) + 1)

    def plain(rows: Any, accounts: Any, like: Any = None) -> Any:
        return users_keyed(rows, accounts, None)

    with (
        mock.patch("userctl.db.thin.read_for_plan", return_value=None)
        if not thin
        else contextlib.nullcontext(),
        mock.patch("userctl.db.plan_read.users_keyed", plain),
        mock.patch("userctl.desired.loader.load_desired", _plain_load),
    ):
        reference = _outputs(runner, path, tmp_path / "plain.json")
    for (name, *_), mine, theirs in zip([*FORMATS, ("saved",)], fast, reference, strict=True):
        assert mine == theirs, name
    plan = json.loads(fast[2])
    actions = {(c["kind"], c["action"]) for c in plan["changes"]}
    # Drift of every kind did reach the plan.
    for wanted in [
        ("user", "create"),
        ("user", "delete"),
        ("user", "update"),
        ("user", "change_role"),
        ("user", "deactivate"),
        ("user", "activate"),
        ("user", "set_two_factor"),
        ("user", "set_expiry"),
        ("user", "expire"),
        ("assignment", "assign"),
        ("assignment", "unassign"),
    ]:
        assert wanted in actions, wanted
