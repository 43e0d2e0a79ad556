"""Every output makes hidden characters visible (issue 19 part 4, DESIGN §8 invariant 7): a
platform writes the database, so a name, a role's description, a bank's name or a role name may
hold a bidi override (U+202E, U+2066), an ESC sequence, a BEL, NEXT LINE (U+0085), a zero-width
space (U+200B) or a line separator (U+2028). The values go in by plain SQL; then each output of
every command that shows them (tables, text, CSV, JSON, Markdown, HTML, the evidence pack) must
show them escaped and never raw, and JSON must still parse to the very values stored. A saved
plan holding them keeps its digest and applies.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import exported, live_state
from tests.cli.yaml_files import write_desired
from tests.conftest import Factory, Operator, Runner
from userctl.db import tables
from userctl.state import Role

HIDDEN: Final = ("\u202e", "\x1b", "\x07", "\u0085", "\u200b", "\u2028", "\u2066")
# The values the platform writes; each hidden character appears in some value of each kind.
FIRST: Final = "Ana\u202eX\x1b[2J"
LAST: Final = "B\x07\u0085C\u200bD\u2028E\u2066F"
DESCRIPTION: Final = "reads\u2028all\u202e\x1b[31m\u0085"
BANK: Final = "Banco\u202e\u2066\x07"
ACCOUNT_TYPE: Final = "sav\u200b\x1b"
ROLE: Final = "Legacy\u202e\u200b"  # a role name: in addresses (role["..."]), lines of text


@dataclass
class Acme:
    root: Operator
    org: int


def _update(engine: Engine, table: str, where: tuple[str, str], **values: str) -> None:
    """What a platform does: write the row, no userctl rule in between."""
    t = tables.metadata.tables[table]
    with engine.begin() as conn:
        conn.execute(sa.update(t).where(t.c[where[0]] == where[1]).values(values))


@pytest.fixture
def acme(factory: Factory, engine: Engine) -> Acme:
    org = factory.org("acme-payments")
    admin = factory.role(
        org, "Admin", ["users.view", "users.add", "users.manage", "roles.manage"], "Full access"
    )
    viewer = factory.role(org, "Viewer", ["users.view"], "Reads")
    factory.role(org, "Legacy", ["users.view"], "Nobody holds it")
    root = factory.operator(org, "root@acme.co", admin, first_name="Root", last_name="Admin")
    ana = factory.user(org, "ana@acme.co", viewer, first_name="Ana", last_name="B")
    factory.assign(ana, factory.bank_account(org, "ops-main"))
    _update(engine, "users", ("email", "ana@acme.co"), first_name=FIRST, last_name=LAST)
    _update(engine, "roles", ("name", "Viewer"), description=DESCRIPTION)
    _update(engine, "roles", ("name", "Legacy"), name=ROLE)
    _update(engine, "bank_accounts", ("key", "ops-main"), bank=BANK, account_type=ACCOUNT_TYPE)
    return Acme(root, org)


def assert_shown(output: str, *stored: str) -> None:
    """No hidden character raw in `output`, and each of `stored` shown as printable() writes it
    (a bidi override as `\\u202e`, an ESC as `\\x1b`)."""
    raw = sorted({f"U+{ord(c):04X}" for c in output if c in HIDDEN})
    assert raw == [], f"raw hidden characters {raw} in:\n{output[:2000]}"
    for value in stored:
        # As text shows it (printable: `\x1b`), or as a quoted value (JSON's escapes: `\u001b`).
        shown = (_escaped(value), json.dumps(value)[1:-1])
        assert any(s in output for s in shown), (value, output[:2000])


def _escaped(value: str) -> str:
    out = []
    for c in value:
        if c in HIDDEN:
            out.append(f"\\x{ord(c):02x}" if ord(c) <= 0xFF else f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return "".join(out)


def _json_strings(data: Any) -> set[str]:
    if isinstance(data, str):
        return {data}
    if isinstance(data, dict):
        return set(data) | {s for v in data.values() for s in _json_strings(v)}
    if isinstance(data, list):
        return {s for v in data for s in _json_strings(v)}
    return set()


def assert_json_shown(output: str, *stored: str) -> Any:
    """JSON escapes every hidden character as \\uXXXX (never raw), and parses to the values
    stored."""
    raw = sorted({f"U+{ord(c):04X}" for c in output if c in HIDDEN})
    assert raw == [], f"raw hidden characters {raw} in:\n{output[:2000]}"
    data = json.loads(output)
    strings = _json_strings(data)
    text = "\n".join(strings)
    for value in stored:
        assert value in strings or value in text, (value, sorted(strings)[:50])
    for c in HIDDEN:
        if any(c in v for v in stored):
            assert f"\\u{ord(c):04x}" in output
    return data


def _ok(result: Any) -> str:
    assert result.exit_code == 0, result.output
    return str(result.stdout)


# --- the views -------------------------------------------------------------------------------


def test_views_show_hidden_characters_escaped(runner: Runner, acme: Acme) -> None:
    for fmt in ("table", "csv"):
        assert_shown(_ok(runner("users", "list", "--format", fmt)), FIRST, LAST)
        assert_shown(_ok(runner("users", "show", "ana@acme.co", "--format", fmt)), FIRST, LAST)
        assert_shown(_ok(runner("roles", "list", "--format", fmt)), DESCRIPTION, ROLE)
        assert_shown(_ok(runner("accounts", "list", "--format", fmt)), BANK, ACCOUNT_TYPE)
    assert_shown(_ok(runner("users", "show", "ana@acme.co")), DESCRIPTION, BANK)
    listed = assert_json_shown(_ok(runner("users", "list", "--format", "json")), FIRST, LAST)
    assert {(u["first_name"], u["last_name"]) for u in listed} >= {(FIRST, LAST)}
    shown = assert_json_shown(
        _ok(runner("users", "show", "ana@acme.co", "--format", "json")), FIRST, DESCRIPTION, BANK
    )
    assert shown["role"]["description"] == DESCRIPTION
    assert shown["bank_accounts"]["assigned"][0]["account_type"] == ACCOUNT_TYPE
    roles = assert_json_shown(_ok(runner("roles", "list", "--format", "json")), DESCRIPTION, ROLE)
    assert {r["name"] for r in roles} == {"Admin", "Viewer", ROLE}
    assert_json_shown(_ok(runner("accounts", "list", "--format", "json")), BANK, ACCOUNT_TYPE)


def test_a_csv_record_stays_on_one_line(runner: Runner, acme: Acme) -> None:
    # U+2028 and U+0085 break a line for some readers, a raw LF or CR for all: none is written.
    for command in (("users", "list"), ("roles", "list"), ("accounts", "list")):
        text = _ok(runner(*command, "--format", "csv"))
        records = list(csv.reader(io.StringIO(text, newline="")))
        assert len(records) == len(text.splitlines()), text


# --- review, plan, apply, audit log, evidence --------------------------------------------------


def test_review_shows_hidden_characters_escaped(runner: Runner, acme: Acme) -> None:
    assert_shown(_ok(runner("review", "--format", "csv")), FIRST, LAST)
    assert_shown(_ok(runner("review", "--format", "html")), FIRST, LAST)
    report = assert_json_shown(_ok(runner("review", "--format", "json")), FIRST, LAST)
    assert report["organization"] == "acme-payments"


def _clean_desired(engine: Engine, tmp_path: Path) -> Path:
    """The file a team would write to clean up: ana renamed, the description rewritten, the
    hostile role dropped (a delete: destructive, it needs the operator's code)."""
    desired = exported(live_state(engine))
    ana = replace(desired.users["ana@acme.co"], first_name="Ana", last_name="B")
    roles = {n: r for n, r in desired.roles.items() if n != ROLE}
    roles["Viewer"] = Role("Viewer", "Reads", roles["Viewer"].permissions)
    desired = replace(desired, roles=roles, users={**desired.users, ana.email: ana})
    return write_desired(tmp_path / "users.yaml", desired)


def test_plan_apply_and_audit_show_hidden_characters_escaped(
    runner: Runner, acme: Acme, engine: Engine, tmp_path: Path
) -> None:
    path = _clean_desired(engine, tmp_path)
    for fmt in ("text", "markdown", "html"):
        planned = runner("plan", "-f", str(path), "--format", fmt)
        assert planned.exit_code == 0, planned.output
        assert_shown(planned.stdout, FIRST, ROLE)
    saved = tmp_path / "plan.json"
    planned = runner("plan", "-f", str(path), "--format", "json", "--out", str(saved))
    data = assert_json_shown(_ok(planned), FIRST, LAST, DESCRIPTION, ROLE)
    # The saved plan is the same text: escaped, yet the same data, so its digest still verifies.
    assert saved.read_text(encoding="utf-8") == planned.stdout
    assert_json_shown(saved.read_text(encoding="utf-8"), FIRST, ROLE)
    assert data["digest"].startswith("sha256:")
    assert_shown(_ok(runner("show", str(saved))), FIRST, ROLE)
    assert_json_shown(_ok(runner("show", str(saved), "--format", "json")), FIRST, ROLE)

    applied = runner(
        "apply", str(saved), "--operator", "root@acme.co", "--otp-code", acme.root.code(), "--yes"
    )
    assert applied.exit_code == 0, applied.output
    assert_shown(applied.output)
    assert "No changes." in _ok(runner("plan", "-f", str(path)))

    log = _ok(runner("audit", "log"))
    assert_shown(log, ROLE)
    events = assert_json_shown(_ok(runner("audit", "log", "--format", "json")), FIRST, ROLE)
    assert any(e["address"] == f'role["{ROLE}"]' for e in events)
    assert _ok(runner("audit", "verify")).startswith("audit chain intact")

    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    out = tmp_path / "evidence"
    made = runner("evidence", "--since", today, "--until", today, "-o", str(out))
    assert made.exit_code == 0, made.output
    names = sorted(p.name for p in out.iterdir())
    assert {"audit-log.csv", "audit-log.json", "plans.html", "review.html"} <= set(names)
    for file in out.iterdir():
        text = file.read_text(encoding="utf-8")
        if file.suffix == ".json":
            assert_json_shown(text)
        else:
            assert_shown(text)
    assert_json_shown((out / "audit-log.json").read_text(encoding="utf-8"), FIRST, ROLE)
    assert_shown((out / "audit-log.csv").read_text(encoding="utf-8"), ROLE)
    assert_shown((out / "plans.html").read_text(encoding="utf-8"), ROLE)


def test_hygiene_and_policy_check_show_hidden_characters_escaped(
    runner: Runner, acme: Acme, engine: Engine
) -> None:
    # ana's role, renamed by the platform, now holds a privileged permission she has no
    # authenticator for (a hygiene finding), and a policy caps its holders at none (a violation):
    # both messages name the role; a policy the platform stored under a hostile name forbids the
    # two together (a violation naming the policy and the role).
    role = "Vie\u202ewer\x1b"
    policy = "duty\u2066\u0085"
    _update(engine, "roles", ("name", "Viewer"), name=role)
    with engine.begin() as conn:
        role_id = conn.execute(
            sa.select(tables.roles.c.id).where(tables.roles.c.name == role)
        ).scalar_one()
        conn.execute(
            sa.insert(tables.role_permissions).values(role_id=role_id, permission="users.manage")
        )
        conn.execute(
            sa.insert(tables.policies).values(
                organization_id=acme.org,
                rule="separation_of_duties",
                name=policy,
                value='["users.manage", "users.view"]',
            )
        )
    hygiene = runner("hygiene")
    assert hygiene.exit_code == 0, hygiene.output
    assert_shown(hygiene.output, role)
    found = assert_json_shown(_ok(runner("hygiene", "--format", "json")), role)
    assert any(role in f["message"] for f in found["findings"])
    checked = runner("policy", "check")
    assert checked.exit_code == 4, checked.output
    assert_shown(checked.output, policy)
    checked = runner("policy", "check", "--format", "json")
    assert checked.exit_code == 4, checked.output
    assert_json_shown(checked.stdout, policy)


# --- what reaches stderr ----------------------------------------------------------------------


def test_an_error_quoting_its_input_shows_hidden_characters_escaped(
    runner: Runner, acme: Acme, engine: Engine, tmp_path: Path
) -> None:
    # Every error goes through one reporter: an argument echoed back (here an unknown user's
    # address, typed with an OSC sequence that would retitle the terminal) is shown escaped.
    result = runner("users", "show", "x\x1b]0;owned\x07\u202e@acme.co")
    assert result.exit_code == 1, result.output
    assert_shown(result.stderr, "x\x1b]0;owned\x07\u202e@acme.co")
    assert result.stderr.startswith("Error: ")
    # A message that names its input as given, not as repr() would: the reporter escapes it.
    path = _clean_desired(engine, tmp_path)
    named = "acme\x1b[2J\u202e"
    result = runner("--organization", named, "validate", "-f", str(path))
    assert result.exit_code == 1, result.output
    assert_shown(result.stderr, named)
    assert result.stderr.startswith("Error: --organization acme\\x1b[2J\\u202e does not match")


def test_an_export_warning_shows_hidden_characters_escaped(
    runner: Runner, acme: Acme, factory: Factory, engine: Engine, tmp_path: Path
) -> None:
    # A private-use character is no character the loader refuses, yet no font shows it as what
    # it is: the export's warning about an inactive holder shows it escaped.
    gone = factory.user(acme.org, "gone@acme.co", factory.role(acme.org, "Old", []))
    factory.assign(gone, factory.bank_account(acme.org, "vault\ue000"))
    _update(engine, "users", ("email", "gone@acme.co"), status="inactive")
    _update(engine, "users", ("email", "ana@acme.co"), first_name="Ana", last_name="B")
    _update(engine, "roles", ("name", "Viewer"), description="Reads")
    _update(engine, "roles", ("name", ROLE), name="Legacy")
    result = runner("export", "-o", str(tmp_path / "users.yaml"))
    assert result.exit_code == 0, result.output
    assert "Warning: gone@acme.co is inactive but still holds bank accounts (vault\\ue000)" in (
        result.stderr
    )
    assert "\ue000" not in result.stderr


# --- what a command says about the paths it was given --------------------------------------

# A path as a pull request can name it (a CI step that validates each changed file): an OSC
# sequence that retitles the terminal, a bell, a bidi override.
HOSTILE_NAME: Final = "x\x1b]0;owned\x07\u202e"


def test_a_path_a_command_names_on_success_shows_hidden_characters_escaped(
    runner: Runner, factory: Factory, engine: Engine, tmp_path: Path
) -> None:
    from tests.apply.apply_helpers import build_org

    build_org(factory)
    desired = write_desired(tmp_path / "users.yaml", exported(live_state(engine)))
    named = tmp_path / f"{HOSTILE_NAME}.yaml"
    named.write_bytes(desired.read_bytes())
    key = tmp_path / f"{HOSTILE_NAME}.key"
    runs = {
        "validate": runner("validate", "-f", str(named)),
        "export": runner("export", "-o", str(tmp_path / f"{HOSTILE_NAME}-export.yaml")),
        "plan --out": runner(
            "plan", "-f", str(desired), "--out", str(tmp_path / f"{HOSTILE_NAME}.json")
        ),
        "audit keygen": runner("audit", "keygen", "-o", str(key)),
        "evidence": runner(
            "evidence",
            "--since",
            "2020-01-01",
            "--until",
            "2099-12-31",
            "-o",
            str(tmp_path / f"{HOSTILE_NAME}-pack"),
        ),  # fmt: skip
    }
    for name, result in runs.items():
        assert result.exit_code in (0, 2, 3), (name, result.output)
        # A plan without changes names no file; the others say where they wrote or what they read.
        assert_shown(result.output, *([] if name == "plan --out" else [HOSTILE_NAME]))


SRC: Final = Path(__file__).resolve().parents[2] / "src" / "userctl"


def test_every_sentence_a_command_writes_goes_through_say() -> None:
    """cli/messages.say escapes what a sentence quotes; a command that formats its own (an
    f-string, or printable() by hand) handed straight to click.echo is one that can forget."""
    import re

    by_hand = re.compile(r"click\.echo\(\s*(\(?\s*f[\"']|printable\()", re.S)
    found = [
        f"{path.relative_to(SRC)}:{text.count(chr(10), 0, m.start()) + 1}"
        for path in sorted((SRC / "cli").rglob("*.py"))
        for text in [path.read_text(encoding="utf-8")]
        for m in by_hand.finditer(text)
    ]
    assert found == []
