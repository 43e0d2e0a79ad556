"""The PR comment in the reader's units: its size is counted in UTF-8 bytes (GitHub's limits are
bytes: a job summary over 1 MiB is dropped whole), and the risky steps are named most dangerous
first, so a cap that cannot name them all never hides a delete or a bank-account grant behind a
flood of less dangerous privileged creates."""

from __future__ import annotations

import re
from dataclasses import replace

from tests.core.planner_states import ADMIN, OPS, desired, live, user
from userctl.planner import PlanOptions, diff
from userctl.render.markdown import DANGER, danger
from userctl.render.markdown import render as render_markdown
from userctl.state import Role

LEAD = Role("Lead", "Approves", frozenset({"payouts.view", "payouts.approve"}))


def one_of_each() -> list[str]:
    """A plan with one step of each kind of danger; returns the comment's risky section."""
    people = {
        "del": user("del@acme.co", 1),
        "deact": user("deact@acme.co", 2),
        "twofa": user("twofa@acme.co", 3, two_factor="required", totp_enrolled=True),
        "mover": user("mover@acme.co", 4),
        "unas": user("unas@acme.co", 5, bank_accounts=frozenset({"ops-backup"})),
        "payee": user("payee@acme.co", 6),
    }
    state = live(list(people.values()), roles=[ADMIN, OPS, LEAD])
    want = desired(
        [
            replace(people["deact"], status="inactive"),
            replace(people["twofa"], two_factor="disabled", totp_enrolled=False),
            replace(people["mover"], role="Admin"),
            replace(people["unas"], bank_accounts=frozenset()),
            replace(people["payee"], bank_accounts=frozenset({"ops-main"})),
            user("new@acme.co", 7),
        ],
        roles=[ADMIN, OPS, replace(LEAD, permissions=frozenset({"payouts.view"}))],
    )
    md = render_markdown(diff(want, state).to_data())
    return md[: md.index("<details>")].splitlines()


def test_the_comment_lists_risky_steps_most_dangerous_first() -> None:
    head = one_of_each()
    destructive = head.index(next(line for line in head if "Destructive steps" in line))
    privilege = head.index(next(line for line in head if "Privilege-granting steps" in line))
    listed = [line for line in head[destructive:] if line.startswith("- `")]
    assert [re.sub(r"^- `([^`]*)`.*", r"\1", line) for line in listed] == [
        'user["del@acme.co"]',  # deletes
        'user["deact@acme.co"]',  # deactivations
        'user["twofa@acme.co"]',  # 2FA disabled
        'user["mover@acme.co"]',  # role changes
        'role["Lead"]',  # permission removals
        'assignment["unas@acme.co" -> "ops-backup"]',  # other destructive
        # the privilege-granting list
        'user["mover@acme.co"]',
        'assignment["payee@acme.co" -> "ops-main"]',  # bank-account grants
        'user["new@acme.co"]',  # privileged creates
    ]
    assert destructive < privilege


def test_danger_ranks_follow_the_documented_order() -> None:
    def change(kind: str, action: str, destructive: bool = True) -> dict[str, object]:
        return {"kind": kind, "action": action, "destructive": destructive}

    ranked = [
        change("user", "delete"),
        change("user", "deactivate"),
        change("user", "disable_two_factor"),
        change("user", "change_role"),
        change("role", "update"),
        change("assignment", "unassign"),
        change("assignment", "assign", False),
        change("policy", "update"),
        change("user", "create", False),
    ]
    assert [DANGER[danger(c)] for c in ranked] == list(DANGER)


def test_a_bank_account_grant_is_never_hidden_behind_privileged_creates() -> None:
    """The issue's case: thousands of privileged creates and one bank-account grant. With the
    steps named in apply order the grant came last and went unnamed."""
    payee = user("payee@acme.co", 1)
    creates = [user(f"c{i:05d}@acme.co", 100 + i) for i in range(5000)]
    plan = diff(
        desired([replace(payee, bank_accounts=frozenset({"ops-main"})), *creates]),
        live([payee]),
        PlanOptions(),
    )
    md = render_markdown(plan.to_data(), 60_000)
    head = md[: md.index("<details>")]
    assert '`assignment["payee@acme.co" -> "ops-main"]`' in head
    # Not everything fits: the comment says exactly what it does not name, and where it all is.
    note = re.search(
        r"\*\*:warning: (\d+) destructive or privilege-granting step\(s\) are not named in this "
        r"comment \((\d+) user\.create\), to keep it under 60000 bytes; every step it names is at "
        r"least as dangerous\. The full plan is the `plan.json` artifact, or "
        r"`userctl show plan.json`\.\*\*",
        head,
    )
    assert note and note.group(1) == note.group(2)
    named = sum(f'`user["c{i:05d}@acme.co"]`' in head for i in range(5000))
    assert named + int(note.group(1)) == 5000 and named > 0


def test_the_cap_is_in_utf8_bytes_with_every_character_whole() -> None:
    """5,000 users with Cyrillic names: about two bytes a letter. Capped in characters, the comment
    ran over its size in bytes."""
    people = [
        user(f"u{i:05d}@acme.co", 100 + i, role="Viewer", first_name="Александра" * 3)
        for i in range(5000)
    ]
    viewer = Role("Viewer", "Reads", frozenset({"users.view"}))
    plan = diff(desired(people, roles=[ADMIN, OPS, viewer]), live(roles=[ADMIN, OPS, viewer]))
    for cap in (60_000, 200_000):
        md = render_markdown(plan.to_data(), cap)
        size = len(md.encode("utf-8"))
        assert cap - 5_000 < size <= cap, (cap, size)
        assert len(md) < size  # the characters are fewer: the cap is not counted in them
        assert f"under {cap} bytes" in md
