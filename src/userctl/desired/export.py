"""Live state → desired-state YAML (DESIGN §5 `userctl export`): the file a team commits to
start managing an existing organization as code. Pure: no database, no clock.

A database holds whatever its platform wrote: a tab in a description, U+202E in a name, two roles
`Viewer` and `viewer`. `checked_export` never returns a text the loader would refuse: it runs the
loader's own checks on it (loader.text_problems, the rules of `userctl validate`) and names each
refused value by the database row and column it came from.

The text is written by hand rather than by a YAML dumper, because it must carry comments (a
dumper cannot write them), must never contain anchors, aliases or tags, and must be read back
by the strict loader exactly as meant: every field is written, in a fixed order, sorted, so
the same live state always gives the same bytes (a re-export diffs cleanly in git).
"""

from __future__ import annotations

import json
import re
from typing import Callable, Final, Sequence

from userctl.errors import InputError, Problem
from userctl.state import (
    KEYED_POLICY_RULES,
    POLICY_RULES,
    LiveState,
    Policies,
    Role,
    User,
    gate_policies,
)

# The schema is not published anywhere: the default modeline points at a copy beside the file
# (`userctl schema > userctl.schema.json`), which the next line of the export says how to make.
SCHEMA_PATH: Final = "userctl.schema.json"
SCHEMA_HINT: Final = (
    f"# Editors check this file against {SCHEMA_PATH} beside it: `userctl schema > {SCHEMA_PATH}`."
)
INDENT: Final = "  "
PENDING_COMMENT: Final = "# pending registration (invited)"

# A plain scalar is written unquoted only when it starts with a letter and holds nothing that
# YAML gives a meaning to (no `:`, `#`, quotes, brackets, commas, leading/trailing spaces...).
_PLAIN: Final = re.compile(r"[^\W\d_][\w.@+\- ]*(?<! )")
# Words that some YAML reader (1.1 or 1.2) takes for a boolean or null when unquoted; the strict
# loader refuses the ambiguous ones, so they are always quoted.
_KEYWORDS: Final = frozenset({"null", "true", "false", "yes", "no", "on", "off", "y", "n"})
# What json.dumps(text, ensure_ascii=False) writes for a string, without building an encoder for
# each of the export's hundreds of thousands of values.
_json_string: Final[Callable[[str], str]] = json.encoder.encode_basestring


def modeline(schema: str = SCHEMA_PATH) -> str:
    """The first line: tells editors using the YAML language server which schema to check with
    (a path is relative to the file)."""
    return f"# yaml-language-server: $schema={schema}"


def export_yaml(live: LiveState, schema: str = SCHEMA_PATH) -> str:
    """The desired-state file that declares `live` exactly: planning it against the same
    database shows no changes (`warnings` names the states no file can declare)."""
    lines = [
        modeline(schema),
        *([SCHEMA_HINT] if schema == SCHEMA_PATH else []),
        "# Exported by `userctl export` from organization "
        f"{live.organization.slug}. This file is the",
        "# whole truth for the organization: users and roles absent from it are deleted at apply.",
        "version: 1",
        f"organization: {scalar(live.organization.slug)}",
        *_policy_lines({**live.policies, **gate_policies(live.organization)}),
    ]
    lines.append("roles:" if live.roles else "roles: {}")
    for name in sorted(live.roles):
        lines.extend(_role_lines(live.roles[name]))
    lines.append("users:" if live.users else "users: {}")
    scalars = _Scalars()
    users = live.users
    lines += [_user_lines(users[email], scalars) for email in sorted(users)]
    return "\n".join(lines) + "\n"


# How a refusal names the export it stopped, in place of a file nobody will see.
EXPORTED: Final = "the export"
# Where a loader message points into the text ("(at line 11)", "(first at line 4)"): a line of a
# file that is not written means nothing to the reader; the row named says where the value is.
_LINE_OF_THE_TEXT: Final = re.compile(r" \((?:first )?(?:defined )?at line \d+\)")


def checked_export(live: LiveState, schema: str = SCHEMA_PATH) -> str:
    """export_yaml(live), once the loader accepts it; otherwise InputError naming each value it
    refuses by its database row and column, then what to do."""
    from userctl.desired.loader import text_problems

    text = export_yaml(live, schema)
    problems = text_problems(text, EXPORTED)
    if problems:
        raise InputError(refusals(problems, live))
    return text


def refusals(problems: Sequence[Problem], live: LiveState) -> list[Problem]:
    """The loader's `problems` with an exported text, each one sentence naming the row and the
    column of `live` the value came from (never a line of the text, which is not written), and a
    last one saying that nothing was written and why."""
    named = [
        Problem(
            f"{_row_and_column(p.path, live)}: {_LINE_OF_THE_TEXT.sub('', p.message)}",
            path=("export",),
        )
        for p in problems
    ]
    return named + [
        Problem(
            f"nothing was written: the file would hold {len(problems)} value(s) that "
            "`userctl validate` refuses, so it could not be planned; correct them where they are "
            "stored (the platform, or the database) and export again",
            path=("export",),
        )
    ]


def _row_and_column(path: tuple[str | int, ...], live: LiveState) -> str:
    """Which row and column of the database a path of the exported document comes from."""

    def q(text: object) -> str:
        return json.dumps(str(text), ensure_ascii=False)

    section, rest = (path[0], path[1:]) if path else ("", ())
    if section == "organization":
        return f"organizations row {q(live.organization.slug)}, column slug"
    if section == "roles" and rest:
        role = q(rest[0])
        if len(rest) == 1:
            return f"roles row {role}, column name"
        if rest[1] == "permissions":
            return f"role_permissions of role {role}, column permission"
        return f"roles row {role}, column {rest[1]}"
    if section == "users" and rest:
        email = q(rest[0])
        if len(rest) == 1:
            return f"users row {email}, column email"
        if rest[1] == "bank_accounts" and len(rest) > 2 and isinstance(rest[2], int):
            user = live.users.get(str(rest[0]))
            keys = sorted(user.bank_accounts) if user is not None else []
            key = q(keys[rest[2]]) if rest[2] < len(keys) else f"#{rest[2] + 1}"
            return f"bank_accounts row {key} (assigned to {email}), column key"
        return f"users row {email}, column {rest[1]}"
    if section == "policies":
        return f"policies row {q('.'.join(str(p) for p in rest))}"
    return f"{EXPORTED}, at {Problem('', path).dotted_path()}"


def warnings(live: LiveState) -> list[str]:
    """What the export cannot round-trip, for the person running it."""
    return [
        f"{user.email} is inactive but still holds bank accounts "
        f"({', '.join(sorted(user.bank_accounts))}), which no file can declare and an inactive "
        "user cannot be changed: the file will not plan until you delete them (remove them from "
        "the file) or reactivate them (status: active)"
        for _, user in sorted(live.users.items())
        if user.status == "inactive" and user.bank_accounts
    ] + [
        f"{' and '.join(group)} are one identity (their emails differ only by case): the file "
        "will not validate until all but one are deleted or renamed on the platform"
        for group in live.case_duplicates
    ]


def _policy_lines(policies: Policies) -> list[str]:
    """The `policies:` section, rules in their documented order; none when there are none."""
    if not policies:
        return []
    lines = ["policies:"]
    for rule in POLICY_RULES:
        if rule in KEYED_POLICY_RULES:
            entries = sorted((name, value) for (r, name), value in policies.items() if r == rule)
            if entries:
                lines.append(f"{INDENT}{rule}:")
                lines += [
                    f"{INDENT * 2}{scalar(name)}: {_policy_value(value)}" for name, value in entries
                ]
        elif (rule, "") in policies:
            lines.append(f"{INDENT}{rule}: {_policy_value(policies[(rule, '')])}")
    return lines


def _policy_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return flow_list(frozenset(value))
    if isinstance(value, str):
        return scalar(value)
    return str(value)


def _role_lines(role: Role) -> list[str]:
    return [
        f"{INDENT}{scalar(role.name)}:",
        f"{INDENT * 2}description: {scalar(role.description)}",
        f"{INDENT * 2}permissions: {flow_list(role.permissions)}",
    ]


def _user_lines(user: User, scalars: _Scalars) -> str:
    """The user's entry, its fields in the order of DECLARED_USER_FIELDS (a test holds the two
    equal), as one piece of text: spelt out rather than looped over, as it runs once per user."""
    status = user.status
    head = f"{INDENT}{scalar(user.email)}:"
    if status == "invited":
        # The platform activates invited users when they register; a desired state can only
        # say `active`, which the planner shows as pending rather than as a change.
        status = "active"
        head += "  " + PENDING_COMMENT
    accounts = user.bank_accounts
    held = ""
    if user.status == "inactive" and accounts:
        # Only the platform can leave this state behind: DESIGN §1 forbids declaring accounts
        # for an inactive user, and an inactive user cannot be modified. Written as the file
        # must say it, so that `plan` stops at this user and says what to do.
        held = (
            f"{_FIELD}# still assigned in the database: {', '.join(sorted(accounts))}; "
            f"an inactive user\n{_FIELD}# can hold none and cannot be changed: delete or "
            "reactivate them\n"
        )
        accounts = frozenset()
    # Document numbers and phones are always quoted: they look like numbers to YAML.
    text = (
        f"{head}\n"
        f"{_FIELD}first_name: {scalars[user.first_name]}\n"
        f"{_FIELD}last_name: {scalars[user.last_name]}\n"
        f"{_FIELD}id_type: {scalars[user.id_type]}\n"
        f"{_FIELD}id_number: {quoted(user.id_number)}\n"
        f"{_FIELD}phone: {quoted(user.phone)}\n"
        f"{_FIELD}role: {scalars[user.role]}\n"
        f"{_FIELD}status: {status}\n"
        f"{_FIELD}two_factor: {scalars[user.two_factor]}\n"
        f"{_FIELD}force_password_reset: {'true' if user.force_password_reset else 'false'}\n"
        f"{held}{_FIELD}bank_accounts: {flow_list(accounts, scalars)}"
    )
    if user.expires is not None:
        text += f"\n{_FIELD}expires: {quoted(user.expires)}"
    return text


_FIELD: Final = INDENT * 2


class _Scalars(dict[str, str]):
    """scalar() of each text, worked out once per export: a role, a document type, a name or an
    account key recurs across thousands of users."""

    def __missing__(self, text: str) -> str:
        written = self[text] = scalar(text)
        return written


def scalar(text: str) -> str:
    """`text` as a YAML scalar that every YAML reader reads back as this exact string."""
    if _PLAIN.fullmatch(text) and text.lower() not in _KEYWORDS:
        return text
    return quoted(text)


def quoted(text: str) -> str:
    """A double-quoted scalar. JSON's string syntax is valid YAML; characters that are not
    printable (which JSON leaves as they are beyond the C0 controls) are escaped too."""
    encoded = _json_string(text)
    if encoded.isprintable():
        return encoded
    return "".join(c if c.isprintable() else _escape(c) for c in encoded)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def flow_list(items: frozenset[str], scalars: dict[str, str] | None = None) -> str:
    if not items:
        return "[]"
    if scalars is None:
        return "[" + ", ".join(scalar(item) for item in sorted(items)) + "]"
    return "[" + ", ".join(scalars[item] for item in sorted(items)) + "]"
