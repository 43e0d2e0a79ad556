"""What a reviewer sees is what is applied: every format flags the steps that grant privilege, the
PR comment names every destructive and privilege-granting step whatever its size cap, and nothing
taken from the desired-state file can inject markdown, HTML or terminal control sequences."""

from __future__ import annotations

import json
import re
import string
import unicodedata
from collections import Counter
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st
from markupsafe import escape

from tests.core.planner_states import ADMIN, OPS, desired, live, user
from userctl.plan import Finding, Plan
from userctl.planner import PlanOptions, diff
from userctl.printable import printable
from userctl.render import render
from userctl.render.markdown import MAX_BYTES, code, inline
from userctl.render.markdown import render as render_markdown
from userctl.render.tables import Column, render_user_detail, table, user_detail, verbatim_cell
from userctl.state import Role

FULL_PLAN = "The full plan is the `plan.json` artifact, or `userctl show plan.json`."


def privilege_plan() -> Plan:
    """Three ways to grant privilege: a payout bank account, a user created with a role that holds
    payouts.create, a role gaining payouts.approve."""
    auditor = Role("Auditor", "Reads", frozenset({"audit.view"}))
    pay = user("pay@acme.co", 1)
    state = live([pay], roles=[ADMIN, OPS, auditor])
    want = desired(
        [replace(pay, bank_accounts=frozenset({"ops-main"})), user("new@acme.co", 2)],
        roles=[
            ADMIN,
            OPS,
            replace(auditor, permissions=frozenset({"audit.view", "payouts.approve"})),
        ],
    )
    return diff(want, state)


def test_every_format_flags_the_steps_that_grant_privilege() -> None:
    data = privilege_plan().to_data()
    assert data["summary"]["grants_privilege"] == 3

    text = render(data, "text").splitlines()
    assert '~ role["Auditor"] update  [privilege, 2FA]' in text
    assert '+ user["new@acme.co"] create  [privilege, 2FA]' in text
    assert '+ assignment["pay@acme.co" -> "ops-main"] assign  [privilege, 2FA]' in text
    assert (
        text[-1] == "Plan: 1 to create, 2 to update, 0 to replace, 0 to delete (0 destructive, "
        "3 grant privilege, 3 need 2FA)."
    )

    md = render(data, "markdown")
    assert "| destructive | grant privilege | need 2FA |" in md and "| 0 | 3 | 3 |" in md
    assert (
        "**:key: Privilege-granting steps (3):**\n"
        '- `assignment["pay@acme.co" -> "ops-main"]` assign\n'
        '- `role["Auditor"]` update\n'
        '- `user["new@acme.co"]` create\n'
    ) in md  # a bank-account grant is more dangerous than a privileged create
    assert "Destructive steps" not in md

    page = render(data, "html")
    assert "<th>destructive</th><th>grant privilege</th><th>need 2FA</th></tr></thead>" in page
    assert '<td>0</td><td class="hot">3</td><td class="hot">3</td>' in page
    # Each step is listed under "Needs attention" first, then in its kind's table.
    attention = page.split('<section id="attention"', 1)[1].split("</section>", 1)[0]
    assert attention.count('<tr class="privilege">') == 3
    assert page.count('<tr class="privilege" id="c') == 3
    assert (
        page.count(
            '<span class="flag privilege">privilege</span><span class="flag twofa">2FA</span>'
        )
        == 6
    )

    as_json = json.loads(render(data, "json"))
    assert [c["grants_privilege"] for c in as_json["changes"]] == [True, True, True]


def diff_block(md: str) -> list[str]:
    return md.split("```diff\n", 1)[1].split("\n```\n", 1)[0].splitlines()


def test_markdown_diff_block_marks_updates_with_a_bang_github_colours() -> None:
    bob = user("bob@acme.co", 1)
    state = live([bob, user("gone@acme.co", 2)])
    want = desired(
        [
            replace(bob, first_name="Roberto", role="Admin"),
            user("new@acme.co", 3),
            user("re@acme.co", 4),
        ]
    )
    state = replace(
        state, users={**state.users, "re@acme.co": user("re@acme.co", 4, id_number="9")}
    )
    data = diff(want, state, PlanOptions(replace=frozenset({"re@acme.co"}))).to_data()
    lines = diff_block(render(data, "markdown"))
    assert '! user["bob@acme.co"] update' in lines
    assert '! user["bob@acme.co"] change_role  [destructive, privilege, 2FA]' in lines
    assert '+ user["new@acme.co"] create  [privilege, 2FA]' in lines
    assert '- user["gone@acme.co"] delete  [destructive, 2FA]' in lines
    assert '-/+ user["re@acme.co"] replace  [destructive, privilege, 2FA]' in lines
    assert not [line for line in lines if line.startswith("~")]
    # The terminal keeps Terraform's `~`.
    assert '~ user["bob@acme.co"] update' in render(data, "text").splitlines()


def big_plan() -> Plan:
    """2,500 changes: 1,000 users deleted, 500 given a payout bank account, 1,000 renamed."""
    gone = [user(f"gone{i:04d}@acme.co", 10 + i) for i in range(1000)]
    payees = [user(f"pay{i:04d}@acme.co", 2000 + i) for i in range(500)]
    renamed = [user(f"ren{i:04d}@acme.co", 4000 + i) for i in range(1000)]
    want = desired(
        [replace(u, bank_accounts=frozenset({"ops-main"})) for u in payees]
        + [replace(u, first_name="Renamed") for u in renamed]
    )
    plan = diff(want, live(gone + payees + renamed), PlanOptions(allow_mass_removal=True))
    assert Counter(f"{c.kind}.{c.action}" for c in plan.changes) == {
        "user.delete": 1000,
        "assignment.assign": 500,
        "user.update": 1000,
    }
    assert all(c.destructive or c.grants_privilege for c in plan.changes if c.action != "update")
    return plan


def test_a_2500_change_comment_names_every_destructive_and_privilege_step() -> None:
    plan = big_plan()
    md = render_markdown(plan.to_data())
    assert len(md) <= MAX_BYTES < 65_536
    head = md[: md.index("<details>")]
    risky = [c for c in plan.changes if c.destructive or c.grants_privilege]
    assert len(risky) == 1500 and all(f"`{c.address}`" in head for c in risky)
    assert '- user.delete × 1000: `user["gone0000@acme.co"]`, `user["gone0001@acme.co"]`, ' in head
    assert '- assignment.assign × 500: `assignment["pay0000@acme.co" -> "ops-main"]`, ' in head
    # Only the renames are cut from the diff, and the comment says so, by action.
    shown = re.search(r"<summary>Changes \((\d+) of 2500 shown\)</summary>", md)
    cut = re.search(
        r"\n```\n\n… (\d+) more change\(s\) not shown in this diff, to keep this comment "
        r"under 60000 bytes:\n"
        r"- 1500 destructive or privilege-granting "
        r"\(1000 user\.delete, 500 assignment\.assign\), each named above\n"
        r"- (\d+) neither destructive nor privilege-granting \((\d+) user\.update\)\n\n"
        + re.escape(FULL_PLAN)
        + r"\n\n</details>\n$",
        md,
    )
    assert shown and cut, md[-600:]
    assert int(shown.group(1)) + int(cut.group(1)) == 2500 and int(cut.group(1)) == 1500 + int(
        cut.group(2)
    )
    assert cut.group(2) == cut.group(3) and int(shown.group(1)) > 0
    assert diff_block(md)[2:] == [
        line
        for c in plan.changes[: int(shown.group(1))]
        for line in (f"! {c.address} update", '    first_name: "First" -> "Renamed"')
    ]
    assert "not named" not in md


def test_a_comment_too_small_to_name_every_risky_step_says_how_many_of_which_it_does_not() -> None:
    plan = big_plan()
    for cap in (20_000, 5_000):
        md = render_markdown(plan.to_data(), max_bytes=cap)
        assert len(md) <= cap
        head = md[: md.index("<details>")]
        named = [
            c
            for c in plan.changes
            if (c.destructive or c.grants_privilege) and f"`{c.address}`" in head
        ]
        deletes = [c for c in plan.changes if c.action == "delete"]
        # Named most dangerous first while they fit (apply order puts the deletes last): some
        # deletes, not all, and no bank-account grant while a delete is left unnamed.
        assert 0 < len(named) < 1500 and all(c.action == "delete" for c in named)
        unnamed = Counter(
            f"{c.kind}.{c.action}"
            for c in plan.changes
            if (c.destructive or c.grants_privilege) and c not in named
        )
        counts = ", ".join(f"{n} {label}" for label, n in unnamed.most_common())
        assert (
            f"**:warning: {sum(unnamed.values())} destructive or privilege-granting "
            f"step(s) are not named in this comment ({counts}), to keep it under "
            f"{cap} bytes; every step it names is at least as dangerous. {FULL_PLAN}**"
        ) in head
        assert "- user.delete × 1000: " in head and "- assignment.assign × 500: " in head
        assert head.index("- user.delete × 1000: ") < head.index("- assignment.assign × 500: ")
        named_deletes = sum(c in named for c in deletes)
        if named_deletes < 1000:
            assert f"… and {1000 - named_deletes} more not named here\n" in head
        # The footer counts the named apart from the unnamed, and claims nothing more.
        assert (
            "- "
            f"{sum(unnamed.values())} destructive or privilege-granting ({counts}), "
            "not named in this comment either\n"
        ) in md
        named_clause = re.search(
            r"\n- (\d+) destructive or privilege-granting \(([^)]*)\), each named above\n", md
        )
        assert named_clause and int(named_clause.group(1)) == len(named)


def test_code_spans_survive_backticks() -> None:
    assert code('user["ana@acme.co"]') == '`user["ana@acme.co"]`'
    assert code("a`b") == "``a`b``"
    assert code("`x``") == "``` `x`` ```"
    assert code("  ") == "`  `"


def code_span_content(span: str) -> str:
    """What CommonMark shows for `span`, which must be exactly one code span: it opens with a
    backtick run, closes at the next run of the same length (which must end `span`), and loses
    one space at each end when it has one at both and is not only spaces."""
    opening = len(span) - len(span.lstrip("`"))
    runs = [m for m in re.finditer("`+", span[opening:]) if len(m.group()) == opening]
    assert runs and runs[0].end() == len(span) - opening, span
    content = span[opening : len(span) - opening]
    if content.startswith(" ") and content.endswith(" ") and content.strip(" "):
        content = content[1:-1]
    return content


@given(st.text(min_size=1))
def test_a_code_span_shows_any_text_as_it_is(text: str) -> None:
    assert code_span_content(code(text)) == printable(text)


EVIL_ROLE = "Ops`</details><script>alert(1)</script>"
EVIL_LAST_NAME = "Back`tick``s ```</details>"


def evil_plan() -> Plan:
    evil = Role(EVIL_ROLE, "Payouts", frozenset({"payouts.view"}))
    more = replace(
        evil,
        description="<b>Pay</b> & approve | all",
        permissions=frozenset({"payouts.view", "payouts.approve"}),
    )
    eve = user(
        "eve@acme.co",
        5,
        role=EVIL_ROLE,
        last_name=EVIL_LAST_NAME,
        first_name="<img src=x onerror=alert(1)>",
    )
    plan = diff(desired([eve], roles=[ADMIN, OPS, more]), live(roles=[ADMIN, OPS, evil]))
    message = f"operator eve cannot join {EVIL_ROLE} *bold* [link](http://evil) a|b & <b>"
    return replace(plan, findings=(Finding("self_guard", True, message),))


def outside_code(md: str) -> tuple[str, list[str]]:
    """`md` without its fenced diff block, backslash escapes and code spans (what GitHub reads as
    markdown and HTML), and what its code spans show. Scanned left to right as CommonMark does:
    an escaped backtick opens nothing; a backtick run opens a span closed by the next run of the
    same length, or else is literal."""
    md = re.sub(r"^```diff\n.*?^```$", "", md, flags=re.DOTALL | re.MULTILINE)
    rest, spans, i = [], [], 0
    while i < len(md):
        if md[i] == "\\" and i + 1 < len(md) and md[i + 1] in string.punctuation:
            i += 2
            continue
        if md[i] != "`":
            rest.append(md[i])
            i += 1
            continue
        run = len(md[i:]) - len(md[i:].lstrip("`"))
        close = next((m for m in re.finditer("`+", md[i + run :]) if len(m.group()) == run), None)
        if close is None:
            rest.append(md[i : i + run])
            i += run
            continue
        end = i + run + close.end()
        spans.append(code_span_content(md[i:end]))
        i = end
    return "".join(rest), spans


def test_markdown_escapes_everything_from_the_file() -> None:
    plan = evil_plan()
    md = render(plan.to_data(), "markdown")
    role_address = f"role[{json.dumps(EVIL_ROLE)}]"
    rest, spans = outside_code(md)
    # The role is named in a code span that shows it as it is.
    assert role_address in spans and 'user["eve@acme.co"]' in spans
    # The diff block holds the rest and no line of it closes its fence early.
    block = diff_block(md)
    assert md.count("```diff\n") == 1 and not [
        line for line in block if line.lstrip(" ").startswith("```")
    ]
    assert (
        f"    last_name = {json.dumps(EVIL_LAST_NAME)}" in block
        and f"~ {role_address} update" not in block
    )
    assert f"! {role_address} update  [privilege, 2FA]" in block
    # Outside code, no HTML but the comment's own folding, and the message's markdown is inert.
    assert sorted(set(re.findall(r"<[^>]*>", rest))) == [
        "</details>",
        "</summary>",
        "<details>",
        "<summary>",
    ]
    assert rest.count("</details>") == 1 and md.rstrip().endswith("</details>")
    assert (
        "cannot join Ops\\`&lt;/details&gt;&lt;script&gt;alert(1)&lt;/script&gt; \\*bold\\* "
        "\\[link\\](http://evil) a\\|b &amp; &lt;b&gt;"
    ) in md
    assert inline("a_b\\c~d") == "a\\_b\\\\c\\~d"


def test_html_escapes_everything_from_the_file() -> None:
    page = render(evil_plan().to_data(), "html")
    assert "<script" not in page and "<img" not in page and "<b>Pay" not in page
    assert str(escape(f"role[{json.dumps(EVIL_ROLE)}]")) in page
    assert (
        str(escape(json.dumps(EVIL_LAST_NAME))) in page
        and "&lt;img src=x onerror=alert(1)&gt;" in page
    )
    assert "&lt;b&gt;Pay&lt;/b&gt; &amp; approve | all" in page
    # Every tag on the page is one of the page's own.
    assert {tag.split()[0] for tag in re.findall(r"<(/?[a-zA-Z0-9!]+)[^>]*>", page)} <= {
        "!DOCTYPE",
        "html",
        "/html",
        "head",
        "/head",
        "meta",
        "link",
        "title",
        "/title",
        "style",
        "/style",
        "body",
        "/body",
        "header",
        "/header",
        "main",
        "/main",
        "section",
        "/section",
        "nav",
        "/nav",
        "ol",
        "/ol",
        "dl",
        "/dl",
        "dt",
        "/dt",
        "dd",
        "/dd",
        "br",
        "a",
        "/a",
        "h1",
        "/h1",
        "h2",
        "/h2",
        "p",
        "/p",
        "b",
        "/b",
        "code",
        "/code",
        "div",
        "/div",
        "table",
        "/table",
        "thead",
        "/thead",
        "tbody",
        "/tbody",
        "tr",
        "/tr",
        "th",
        "/th",
        "td",
        "/td",
        "ul",
        "/ul",
        "li",
        "/li",
        "span",
        "/span",
    }


ANSI = "\x1b[2J\x1b]0;pwned\x07"
RLO_EMAIL = "ana\u202e@acme.co"


def control_plan() -> Plan:
    """Terminal control sequences, C1 controls, a bidi override and a zero-width space in every
    place a plan carries text from outside: names, emails, role names, notes and findings."""
    role = Role("Ops\u200b", "", frozenset({"payouts.view"}))
    ana = user(RLO_EMAIL, 5, first_name=ANSI, last_name="csi\x9b31m", role=role.name)
    plan = diff(desired([ana], roles=[ADMIN, OPS, role]), live(roles=[ADMIN, OPS, role]))
    changes = tuple(replace(c, note=f"note {ANSI}") for c in plan.changes)
    return replace(
        plan,
        changes=changes,
        findings=(Finding("self_guard", True, f"operator {RLO_EMAIL} {ANSI}"),),
    )


def raw_controls(text: str) -> list[str]:
    return [ch for ch in text if unicodedata.category(ch) in ("Cc", "Cf") and ch != "\n"]


def test_text_never_writes_a_control_character_from_the_data() -> None:
    data = control_plan().to_data()
    out = render(data, "text")
    assert raw_controls(out) == []
    lines = out.splitlines()
    assert '+ user["ana\\u202e@acme.co"] create' in lines
    assert '    first_name = "\\u001b[2J\\u001b]0;pwned\\u0007"' in lines
    assert '    last_name = "csi\\u009b31m"' in lines and '    role = "Ops\\u200b"' in lines
    assert "    (note \\x1b[2J\\x1b]0;pwned\\x07)" in lines
    assert "BLOCKED [self_guard]: operator ana\\u202e@acme.co \\x1b[2J\\x1b]0;pwned\\x07" in lines
    # In colour, the only escapes are the renderer's own SGR codes.
    coloured = render(data, "text", color=True)
    assert raw_controls(re.sub(r"\x1b\[[0-9;]*m", "", coloured)) == []
    for fmt in ("markdown", "html"):
        assert raw_controls(render(data, fmt)) == [], fmt


def test_printable_escapes_control_and_format_characters_only() -> None:
    assert (
        printable("a\x1bb\x07\x7f\x85\u202e\u200b\ufeff\U000e0001")
        == "a\\x1bb\\x07\\x7f\\x85\\u202e\\u200b\\ufeff\\U000e0001"
    )
    assert printable("tab\there\nnl") == "tab\\x09here\\x0anl"
    kept = "Pérez 日本 🙂 \u00a0nbsp \\x1b"
    assert printable(kept) == kept


def test_tables_never_write_a_control_character() -> None:
    columns = (Column("name", "Name"), Column("error", "Error"))
    rows = [{"name": f"x{ANSI}\u202ey", "error": "550\r\nrefused\x1b[31m"}]
    shown = table(columns, rows)
    assert raw_controls(shown) == [] and "x\\x1b[2J\\x1b]0;pwned\\x07\\u202ey" in shown
    # The outbox's verbatim cells keep line breaks and all, escaped.
    assert "550\\x0d\\x0arefused\\x1b[31m" in table(columns, rows, cell=verbatim_cell)
    eve = user(RLO_EMAIL, 5, first_name=ANSI)
    detail = user_detail(eve, replace(OPS, description=f"Pay{ANSI}"), {})
    text = render_user_detail(detail, "table")
    assert raw_controls(text) == [] and "ana\\u202e@acme.co" in text and "Pay\\x1b[2J" in text


def test_the_saved_plans_name_cannot_end_the_approve_commands_code_span() -> None:
    """`plan --out` names the file in the PR comment's approve command: a backtick in it once
    ended the code span, and what followed was markdown (a link, an image, raw HTML)."""
    data = privilege_plan().to_data()
    saved = "p`[approve here](http://evil)`<img src=x>.json"
    md = render_markdown(data, saved_as=saved)
    line = next(line for line in md.splitlines() if line.startswith("**2FA:**"))
    span = line[line.index("approve this exact plan first with ") + 35 : -1]
    # The name as the shell reads it back (tests/core/test_suggested_commands.py), whole.
    assert code_span_content(span) == (
        f"userctl approve '{saved}' --operator EMAIL --otp-code CODE"
    )
    # The page shows the same command, escaped.
    page = render(data, "html", saved_as=saved)
    assert str(escape(f"`userctl approve '{saved}' --operator EMAIL")) in page
