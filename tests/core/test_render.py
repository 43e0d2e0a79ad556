"""Renderers on hand-made plans: each reads the plan's data and shows what reviewers need."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from markupsafe import escape

from tests.core.planner_states import ADMIN, OPS, desired, live, user
from userctl.plan import Finding, Plan
from userctl.planner import PlanOptions, diff
from userctl.render import render
from userctl.render.markdown import render as render_markdown
from userctl.state import Role

SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "plan.schema.json").read_text())


def sample_plan(**kw: Any) -> Plan:
    bob = user("bob@acme.co", 1, bank_accounts=frozenset({"ops-main"}))
    state = live([bob, user("gone@acme.co", 2), user("ivy@acme.co", 3, status="invited")])
    want = desired(
        [
            replace(bob, first_name="Roberto", role="Admin"),
            user("new@acme.co", 4, bank_accounts=frozenset({"payroll"})),
            user("ivy@acme.co", 3),
        ]
    )
    return diff(want, state, PlanOptions(**kw))


def test_text_uses_terraform_symbols_and_field_diffs() -> None:
    out = render(sample_plan().to_data(), "text")
    lines = out.splitlines()
    # The new user's role, Ops, holds payouts.create: creating them grants privilege; so does
    # moving bob from Ops to Admin (users.add, users.manage, roles.manage).
    assert '+ user["new@acme.co"] create  [privilege, 2FA]' in lines
    assert '~ user["bob@acme.co"] update' in lines
    assert '~ user["bob@acme.co"] change_role  [destructive, privilege, 2FA]' in lines
    assert '- user["gone@acme.co"] delete  [destructive, 2FA]' in lines
    assert '    first_name: "First" -> "Roberto"' in lines
    # A deferred step is one line of summary by default, in full with --verbose.
    assert '# user["ivy@acme.co"] activate  [deferred]' not in lines
    assert any(
        line.startswith("2 deferred (1 assignment assign, 1 user activate): pending registration")
        for line in lines
    )
    verbose = render(sample_plan().to_data(), "text", verbose=True).splitlines()
    assert '# user["ivy@acme.co"] activate  [deferred]' in verbose
    assert lines[-1].startswith(
        "Plan: 1 to create, 2 to update, 0 to replace, 1 to delete"
        " (2 destructive, 2 grant privilege, 3 need 2FA)"
    )
    assert "\x1b[" not in out


def test_text_replace_symbol_and_colour_only_when_asked() -> None:
    p = diff(
        desired([user("bob@acme.co", 1, phone="+5731100000")]),
        live([user("bob@acme.co", 1)]),
        PlanOptions(replace=frozenset({"bob@acme.co"})),
    )
    plain = render(p.to_data(), "text")
    assert '-/+ user["bob@acme.co"] replace  [destructive, privilege, 2FA]' in plain.splitlines()
    coloured = render(p.to_data(), "text", color=True)
    assert "\x1b[" in coloured and re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain


def test_text_no_changes() -> None:
    state = live([user("bob@acme.co", 1)])
    assert "No changes" in render(diff(desired([user("bob@acme.co", 1)]), state).to_data(), "text")


def test_text_shows_blocking_findings() -> None:
    p = replace(sample_plan(), findings=(Finding("admin_guard", True, "nobody left"),))
    assert "BLOCKED [admin_guard]: nobody left" in render(p.to_data(), "text")


def test_json_validates_against_the_plan_schema() -> None:
    data = json.loads(render(sample_plan(operator="root@acme.co").to_data(), "json"))
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    assert data["format_version"] == 3
    assert {
        "address",
        "action",
        "before",
        "after",
        "diff",
        "destructive",
        "requires_2fa",
        "deferred",
    } <= set(data["changes"][0])
    bad = {**data, "changes": [{**data["changes"][0], "action": "explode"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SCHEMA).validate(bad)


def test_json_with_findings_validates_against_the_plan_schema() -> None:
    p = replace(
        sample_plan(),
        findings=(
            Finding("admin_guard", True, "nobody left"),
            Finding("removal_guard", False, "allowed"),
        ),
    )
    data = json.loads(render(p.to_data(), "json"))
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    assert [(f["code"], f["blocking"]) for f in data["findings"]] == [
        ("admin_guard", True),
        ("removal_guard", False),
    ]
    bad = {**data, "findings": [{"code": "admin_guard", "blocking": "yes", "message": "x"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SCHEMA).validate(bad)


def test_plan_schema_enums_match_the_planner() -> None:
    from userctl.plan import ACTIONS, PHASES

    change = SCHEMA["$defs"]["change"]["properties"]
    assert set(change["action"]["enum"]) == {a for actions in ACTIONS.values() for a in actions}
    assert change["phase"]["enum"] == list(PHASES)
    assert set(change["kind"]["enum"]) == set(ACTIONS)


def test_markdown_puts_summary_then_destructive_then_privilege_then_folded_details() -> None:
    md = render(sample_plan().to_data(), "markdown")
    table = md.index("| create | update |")
    destructive = md.index("**:warning: Destructive steps (2):**")
    privilege = md.index("**:key: Privilege-granting steps (2):**")
    twofa = md.index("**2FA:** 3 step(s) need a 2FA confirmation")
    details = md.index("<details>")
    assert table < destructive < privilege < twofa < details
    assert md.index('- `user["gone@acme.co"]` delete') < privilege
    assert privilege < md.index('- `user["new@acme.co"]` create') < twofa
    # A step both destructive and privilege-granting is in both lists.
    assert md.count('- `user["bob@acme.co"]` change_role') == 2
    assert "| 1 | 2 | 0 | 1 | 2 | 2 | 2 | 3 |" in md
    assert md.rstrip().endswith("</details>")


def test_markdown_blocked_plan_says_so_first() -> None:
    p = replace(sample_plan(), findings=(Finding("removal_guard", True, "too many"),))
    md = render(p.to_data(), "markdown")
    assert md.index("cannot be applied") < md.index("<details>")


# A role without privileged permissions: creating its users is a plain change.
VIEWER = Role("Viewer", "Reads", frozenset({"users.view"}))


def test_markdown_is_capped_and_says_what_was_cut() -> None:
    many = [user(f"n{i:04d}@acme.co", 100 + i, role="Viewer") for i in range(2000)]
    p = diff(desired(many, roles=[ADMIN, OPS, VIEWER]), live(roles=[ADMIN, OPS, VIEWER]))
    md = render_markdown(p.to_data(), max_bytes=20_000)
    assert len(md) <= 20_000
    cut = re.search(
        r"\n\n… (\d+) more change\(s\) not shown in this diff, to keep this comment "
        r"under 20000 bytes:\n"
        r"- (\d+) neither destructive nor privilege-granting \((\d+) user\.create\)\n\n"
        r"The full plan is the `plan.json` artifact, or `userctl show plan.json`\.\n\n"
        r"</details>\n$",
        md,
    )
    assert cut, md[-500:]
    shown = re.search(r"<summary>Changes \((\d+) of 2000 shown\)</summary>", md)
    assert (
        shown
        and int(shown.group(1)) + int(cut.group(1)) == 2000
        and cut.group(1) == cut.group(2) == cut.group(3)
    )
    assert md.count('+ user["n') == int(
        shown.group(1)
    )  # whole changes only: each shown with its fields
    assert md.count("    phone = ") == int(shown.group(1))
    assert (
        "named above" not in md
        and "Destructive steps" not in md
        and "Privilege-granting steps" not in md
    )
    assert md.rstrip().endswith("</details>")


def test_markdown_cap_names_every_destructive_change_it_leaves_out() -> None:
    many = [user(f"n{i:04d}@acme.co", 100 + i) for i in range(400)]
    state = live(many)
    p = diff(desired([]), state, PlanOptions(allow_mass_removal=True))  # 400 destructive deletes
    md = render_markdown(p.to_data(), max_bytes=20_000)
    assert len(md) <= 20_000
    head = md[: md.index("<details>")]
    assert (
        '**:warning: Destructive steps (400):**\n- user.delete × 400: `user["n0000@acme.co"]`, '
        in head
    )
    assert all(f'`user["n{i:04d}@acme.co"]`' in head for i in range(400))
    cut = re.search(
        r"… (\d+) more change\(s\) not shown in this diff, to keep this comment "
        r"under 20000 bytes:\n"
        r"- (\d+) destructive or privilege-granting \((\d+) user\.delete\), each named above\n\n",
        md,
    )
    assert cut and cut.group(1) == cut.group(2) == cut.group(3) and int(cut.group(1)) > 0
    assert "not named" not in md


def test_markdown_that_fits_is_not_cut() -> None:
    md = render(sample_plan().to_data(), "markdown")
    assert "not shown in this diff" not in md and "more change(s)" not in md
    assert f"<summary>All changes ({len(sample_plan().changes)})</summary>" in md


def test_html_is_one_self_contained_page() -> None:
    p = diff(desired([user("x<script>@acme.co", 9, first_name="<b>Bold</b>")]), live())
    page = render(p.to_data(), "html")
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "&lt;b&gt;Bold&lt;/b&gt;" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    # The one link is the empty icon, inline, so the browser asks for no /favicon.ico; and the
    # page's own policy forbids any other load.
    assert re.findall(r"<link[^>]*>", page) == ['<link rel="icon" href="data:,">']
    assert "default-src 'none'; style-src 'unsafe-inline'; img-src data:" in page
    assert p.digest in page


def test_html_shows_the_planning_options_and_preconditions() -> None:
    p = diff(
        desired([user("new@acme.co", 9)]), live(), PlanOptions(operator="root@acme.co", prune=False)
    )
    page = render(p.to_data(), "html")
    assert "--operator: <code>root@acme.co</code>" in page and "no (--no-prune)" in page
    assert p.preconditions
    for address, expected in p.preconditions.items():
        assert f"<td><code>{escape(address)}</code></td><td><code>{expected}</code></td>" in page


def hand_made_plan() -> Plan:
    """Written out change by change, not derived by the planner: the renderers must show what a
    plan says, whatever produced it."""
    from userctl.plan import PHASES, Change

    phase = PHASES.index
    return Plan(
        organization="acme",
        two_factor_policy="all",
        changes=(
            Change(
                "role",
                ("Auditor",),
                "create",
                phase("role.create"),
                None,
                {"name": "Auditor", "description": "Reads", "permissions": ["audit.view"]},
                {
                    "permissions": {
                        "before": None,
                        "after": ["audit.view"],
                        "added": ["audit.view"],
                        "removed": [],
                    }
                },
            ),
            Change(
                "user",
                ("zoe@acme.co",),
                "set_two_factor",
                phase("user.update"),
                {"two_factor": "optional"},
                {"two_factor": "required"},
                {"two_factor": {"before": "optional", "after": "required"}},
                requires_2fa=True,
            ),
            Change(
                "assignment",
                ("zoe@acme.co", "ops-main"),
                "assign",
                phase("assignment.assign"),
                None,
                {"user": "zoe@acme.co", "bank_account": "ops-main"},
                {"assigned": {"before": False, "after": True}},
                deferred=True,
                note="deferred: pending registration",
            ),
            Change(
                "role",
                ("Legacy",),
                "delete",
                phase("role.delete"),
                {"name": "Legacy", "description": "", "permissions": []},
                None,
                {},
                destructive=True,
                requires_2fa=True,
            ),
        ),
        preconditions={'role["Legacy"]': "sha256:" + "0" * 64},
        findings=(Finding("removal_guard", False, "allowed by --allow-mass-removal"),),
        options={"prune": True, "replace": [], "allow_mass_removal": True, "operator": None},
    )


def test_every_renderer_shows_a_hand_made_plan_as_it_is() -> None:
    data = hand_made_plan().to_data()
    text = render(data, "text", verbose=True).splitlines()
    assert '+ role["Auditor"] create' in text and "    permissions = [audit.view]" in text
    assert '~ user["zoe@acme.co"] set_two_factor  [2FA]' in text
    assert '    two_factor: "optional" -> "required"' in text
    assert '# assignment["zoe@acme.co" -> "ops-main"] assign  [deferred]' in text
    assert '- role["Legacy"] delete  [destructive, 2FA]' in text
    assert "note [removal_guard]: allowed by --allow-mass-removal" in text
    assert text[-1] == (
        "Plan: 1 to create, 1 to update, 0 to replace, 1 to delete"
        " (1 destructive, 0 grant privilege, 2 need 2FA). 1 deferred (not applied now)."
    )

    md = render(data, "markdown")
    assert "| 1 | 1 | 0 | 1 | 1 | 1 | 0 | 2 |" in md
    assert (
        md.index("Destructive steps (1)") < md.index("<details>")
        and '- `role["Legacy"]` delete' in md
    )
    assert "2 step(s) need a 2FA confirmation" in md

    page = render(data, "html")
    assert "set_two_factor" in page and "allowed by --allow-mass-removal" in page
    assert (
        "<dt>2FA policy</dt><dd><b>all</b>: every change to an existing user or role needs a "
        "TOTP code</dd>" in page
    )

    again = json.loads(render(data, "json"))
    jsonschema.Draft202012Validator(SCHEMA).validate(again)
    assert again == json.loads(json.dumps(data))


def test_every_format_summarises_hygiene_notes_and_deferred_steps_after_the_changes() -> None:
    """Issue 20, part 4: the same notes on every plan are counted in one line (text) or folded
    under one (markdown); a note about this plan (a guard's) and a blocking finding stay in full;
    the markdown still names every destructive step before anything folded."""
    plan = replace(
        hand_made_plan(),
        findings=(
            Finding("dormant_user", False, "old@acme.co: no login for 200 days"),
            Finding("dormant_user", False, "older@acme.co: no login for 300 days"),
            Finding("removal_guard", False, "allowed by --allow-mass-removal"),
        ),
    )
    data = plan.to_data()
    text = render(data, "text")
    assert "old@acme.co" not in text and "note [removal_guard]" in text
    assert "2 note(s) (dormant_user ×2). See them: --verbose, or `userctl hygiene`." in text
    assert "1 deferred (1 assignment assign): pending registration" in text
    assert text.index('role["Legacy"]') < text.index("1 deferred (")
    verbose = render(data, "text", verbose=True)
    assert "note [dormant_user]: old@acme.co: no login for 200 days" in verbose

    md = render(data, "markdown")
    folded = md.index("<details><summary>2 note(s), none blocking: `dormant_user` ×2</summary>")
    assert md.index("Destructive steps (1)") < folded
    assert md.index("note `removal_guard`") < md.index("Destructive steps (1)")
    assert "old@acme.co" in md[folded:]
    assert "1 deferred (1 assignment assign)" in md

    page = render(data, "html")
    assert (
        "<p>1 deferred (1 assignment assign): pending registration, done when those users" in page
    )

    blocked = replace(plan, findings=(Finding("dormant_user", True, "old@acme.co: blocks"),))
    assert "BLOCKED [dormant_user]: old@acme.co: blocks" in render(blocked.to_data(), "text")
