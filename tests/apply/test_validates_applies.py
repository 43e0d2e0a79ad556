"""Whatever validates, applies (issue 10: "valid in `validate`, rejected by the database").

Hypothesis writes desired-state files that the loader accepts, out to the edges of what it
accepts: names of 100 characters from every script the product serves (Latin with accents,
Greek, Cyrillic, CJK, emoji; in NFC, and never mixing the look-alike letters of the first three),
or full of quotes and backslashes (which double when an address quotes them), role names and
bank-account keys of 100, emails of 254, descriptions of 500 in any mix of scripts. Each is planned
and applied on SQLite, PostgreSQL and MariaDB through the CLI, with a real TOTP code, into a fresh
organization whose platform-registered bank accounts and already active users the factory creates
first. Then:
- the apply exits 0 (a file the loader accepts never fails on a column width or a collation),
  and the audit chain, hashed over the addresses as written, verifies as read back;
- planning the same file again shows no changes (what was stored is what was declared);
- `userctl export` of the result loads back to the same desired state, and plans to no changes.
"""

from __future__ import annotations

import itertools
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st
from pyotp import TOTP

from tests.apply.apply_helpers import apply_args
from tests.cli.yaml_files import write_desired
from tests.conftest import Factory, Runner
from userctl.desired.loader import load_desired
from userctl.desired.semantic import fold
from userctl.errors import InputError
from userctl.state import ID_TYPES, LIMITS, PERMISSIONS, TWO_FACTOR, DesiredState, Role, User

# Refused by the loader in every string (desired/characters.py); Cs (a lone surrogate) cannot be
# written in UTF-8 at all.
REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
# Not printable for YAML (YAML 1.2 §5.1): the YAML reader refuses the file before userctl looks.
NOT_YAML: Final = frozenset("\ufffe\uffff")
# The scripts of the people this product serves, and emoji (all outside Cc/Cf).
SCRIPTS: Final = {
    "latin": (0x00C0, 0x024F),
    "greek": (0x0370, 0x03FF),
    "cyrillic": (0x0400, 0x04FF),
    "cjk": (0x4E00, 0x9FFF),
    "emoji": (0x1F300, 0x1FAFF),
}
# Characters that an address (role["…"], assignment["…" -> "…"]) writes as two.
ESCAPED: Final = '"\\'

# The longest values, as declared once for the loader and the database alike.
ROLE_MAX: Final = LIMITS["roles.name"].max_length
NAME_MAX: Final = LIMITS["users.first_name"].max_length
DESCRIPTION_MAX: Final = LIMITS["roles.description"].max_length
KEY_MAX: Final = LIMITS["bank_accounts.key"].max_length
EMAIL_MAX: Final = LIMITS["users.email"].max_length

# The operator who applies, in every organization: their role holds what any plan needs.
ROOT_ROLE: Final = Role(
    "Root", "Operators", frozenset({"users.view", "users.add", "users.manage", "roles.manage"})
)
ROOT: Final = User(
    email="root@acme.co",
    first_name="Root",
    last_name="Operator",
    id_type="DNI",
    id_number="ROOT0001",
    phone="+10000000001",
    role="Root",
    status="active",
    two_factor="required",
)


def allowed(char: str) -> bool:
    return unicodedata.category(char) not in REFUSED_CATEGORIES and char not in NOT_YAML


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def one_name(text: str) -> str:
    """Names that look alike are one name (DESIGN §2: NFC and case folding), by the loader's own
    rule: the strategy never declares two of them, so the files it writes stay valid."""
    return fold(text)


# Scripts whose letters look alike: a name keeps to one of them ("Аdmin" with a Cyrillic А reads as
# "Admin"; DESIGN §2 "mixed scripts"). A letter's script is the first word of its Unicode name.
LOOKALIKE_SCRIPTS: Final = ("LATIN", "GREEK", "CYRILLIC")


def script_of(char: str) -> str | None:
    word = unicodedata.name(char, "").split(" ", 1)[0]
    return word if word in LOOKALIKE_SCRIPTS else None


def characters(script: str | None) -> st.SearchStrategy[str]:
    """Characters the loader accepts in any string; with a `script`, none of another look-alike
    script (a name's), without one, any (prose: a description may quote a word
    in another script)."""

    def fits(char: str) -> bool:
        return allowed(char) and (script is None or script_of(char) in (None, script))

    ranges = {
        name: span
        for name, span in SCRIPTS.items()
        if script is None or name.upper() not in LOOKALIKE_SCRIPTS or name.upper() == script
    }
    return st.one_of(
        st.sampled_from(ESCAPED),
        st.characters(min_codepoint=0x20, max_codepoint=0x7E).filter(fits),
        *(
            st.characters(min_codepoint=lo, max_codepoint=hi).filter(fits)
            for lo, hi in ranges.values()
        ),
        st.characters(exclude_categories=sorted(REFUSED_CATEGORIES)).filter(
            fits
        ),  # anything else allowed
    )


# One character of each kind, repeated to the limit: the longest values, and the widest once quoted.
FILLERS: Final = (*ESCAPED, "é", "Ω", "Ж", "漢", "\U0001f600")


def filled(length: int) -> list[str]:
    return [c * length for c in FILLERS] + [(ESCAPED * length)[:length]]


def substitutes(text: str) -> bool:
    """Whether the loader takes `text` for a ${...} substitution, which it refuses in any string
    (DESIGN §2: a plan must be reproducible from git alone)."""
    return "${" in text


def texts(
    max_size: int, *, min_size: int = 1, blank: bool = True, script: str | None = None
) -> st.SearchStrategy[str]:
    """Strings the loader accepts, up to `max_size` characters once in NFC; `blank=False`: not only
    spaces (first and last names); `script`: no letter of another look-alike script."""
    drawn = st.one_of(
        st.sampled_from(filled(max_size)),
        st.text(characters(script), min_size=min_size, max_size=max_size),
    )
    return drawn.map(nfc).filter(
        lambda t: (
            min_size <= len(t) <= max_size and (blank or not t.isspace()) and not substitutes(t)
        )
    )


def names(max_size: int, *, blank: bool = True) -> st.SearchStrategy[str]:
    """Names (of roles, people, bank accounts): text in one look-alike script at most."""
    return st.sampled_from(LOOKALIKE_SCRIPTS).flatmap(
        lambda script: texts(max_size, blank=blank, script=script)
    )


ATEXT: Final = "A-Za-z0-9!#$%&'*+/=?^_`{|}~-"


def longest_email(local: str, tld: str) -> str:
    """An address of exactly 254 characters: `local`, then labels of up to 63 letters and `tld`."""
    room = EMAIL_MAX - len(local) - 1 - len(tld)  # for the labels, each followed by its dot
    labels: list[str] = []
    while room:
        size = min(63, room - 1)
        if room - (size + 1) == 1:  # what would be left could not hold a label and its dot
            size -= 1
        labels.append("x" * size)
        room -= size + 1
    email = f"{local}@{''.join(label + '.' for label in labels)}{tld}"
    assert len(email) == EMAIL_MAX, email
    return email


EMAILS: Final = st.one_of(
    st.builds(
        lambda local, labels, tld: f"{local}@{'.'.join(labels)}.{tld}",
        st.from_regex(rf"\A[{ATEXT}]{{1,30}}(\.[{ATEXT}]{{1,10}}){{0,2}}\Z"),
        st.lists(
            st.from_regex(r"\A[A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?\Z"),
            min_size=1,
            max_size=3,
        ),
        st.from_regex(r"\A[A-Za-z]{2,8}\Z"),
    ),
    st.builds(
        longest_email, st.from_regex(rf"\A[{ATEXT}]{{1,64}}\Z"), st.from_regex(r"\A[A-Za-z]{2,8}\Z")
    ),
).filter(lambda email: not substitutes(email))  # `$` and `{` may stand in an address, not together


@dataclass(frozen=True)
class Declared:
    """A user of the file, and whether the platform already has them (active, with these bank
    accounts assigned) before the apply."""

    user: User  # the email as the file writes it (any case)
    existing: bool = False
    live_accounts: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Scenario:
    roles: tuple[Role, ...]
    users: tuple[Declared, ...]
    keys: tuple[str, ...]  # bank accounts registered on the platform

    def desired(self, slug: str) -> DesiredState:
        roles = {r.name: r for r in (ROOT_ROLE, *self.roles)}
        users = {d.user.email: d.user for d in self.users}
        users[ROOT.email] = ROOT
        return DesiredState(slug, roles, users)


ROLES: Final = st.builds(
    Role,
    name=names(ROLE_MAX),
    description=st.one_of(st.just(""), texts(DESCRIPTION_MAX)),
    permissions=st.frozensets(st.sampled_from(PERMISSIONS)),
)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    roles = draw(
        st.lists(ROLES, max_size=3, unique_by=lambda r: one_name(r.name)).filter(
            lambda rs: one_name(ROOT_ROLE.name) not in {one_name(r.name) for r in rs}
        )
    )
    keys = tuple(draw(st.lists(names(KEY_MAX), max_size=3, unique=True)))
    emails = draw(
        st.lists(EMAILS, max_size=4, unique_by=str.lower).filter(
            lambda es: ROOT.email not in map(str.lower, es)
        )
    )
    identities = draw(
        st.lists(
            st.tuples(st.sampled_from(ID_TYPES), st.from_regex(r"\A[A-Za-z0-9]{4,20}\Z")),
            min_size=len(emails),
            max_size=len(emails),
            unique=True,
        ).filter(lambda ids: (ROOT.id_type, ROOT.id_number) not in ids)
    )
    role_names = [ROOT_ROLE.name, *(r.name for r in roles)]
    users: list[Declared] = []
    for email, (id_type, id_number) in zip(emails, identities):
        existing = draw(st.booleans())
        # A user created by the apply stays invited until they register: their assignments would
        # wait (deferred), so only users the platform already has get bank accounts, and only
        # they can be declared inactive (a new user cannot be created inactive).
        status = draw(st.sampled_from(("active", "inactive"))) if existing else "active"
        accounts = (
            frozenset(draw(st.sets(st.sampled_from(keys))))
            if keys and existing and status == "active"
            else frozenset()
        )
        live_accounts = (
            frozenset(draw(st.sets(st.sampled_from(keys)))) if keys and existing else frozenset()
        )
        user = User(
            email=email,
            first_name=draw(names(NAME_MAX, blank=False)),
            last_name=draw(names(NAME_MAX, blank=False)),
            id_type=id_type,
            id_number=id_number,
            phone=draw(st.from_regex(r"\A\+[0-9]{8,15}\Z")),
            role=draw(st.sampled_from(role_names)),
            status=status,
            two_factor=draw(st.sampled_from(TWO_FACTOR)),
            force_password_reset=draw(st.booleans()),
            bank_accounts=accounts,
        )
        users.append(Declared(user, existing, live_accounts))
    return Scenario(tuple(roles), tuple(users), keys)


# The widest addresses any valid file makes: an assignment of the longest email to a key of 100
# quotes (474 characters once quoted; 400 was the column), its unassignment from a key of 100
# backslashes, and roles of 100 quotes and backslashes with descriptions of 500.
QUOTES, BACKSLASHES = '"' * KEY_MAX, "\\" * KEY_MAX
LONGEST_EMAIL: Final = longest_email("a" * 64, "co")
WIDEST: Final = Scenario(
    roles=(
        Role('"' * ROLE_MAX, '"' * DESCRIPTION_MAX, frozenset({"payouts.view"})),
        Role("\\" * ROLE_MAX, "\U0001f600" * DESCRIPTION_MAX, frozenset()),
        Role("漢" * ROLE_MAX, "Ж" * DESCRIPTION_MAX, frozenset({"customers.view"})),
    ),
    users=(
        Declared(
            User(
                LONGEST_EMAIL.upper(),
                "\U0001f600" * NAME_MAX,
                "Ω" * NAME_MAX,
                "CC",
                "A" * 20,
                "+" + "9" * 15,
                '"' * ROLE_MAX,
                two_factor="required",
                bank_accounts=frozenset({QUOTES}),
            ),
            existing=True,
            live_accounts=frozenset({BACKSLASHES}),
        ),
        Declared(
            User(
                longest_email("b" * 64, "io"),
                "é" * NAME_MAX,
                "\\" * NAME_MAX,
                "PP",
                "B" * 4,
                "+12345678",
                "\\" * ROLE_MAX,
            )
        ),
    ),
    keys=(QUOTES, BACKSLASHES),
)
# Names MariaDB's default collations take for one: accents, trailing spaces, and any two emoji
# (utf8mb4_unicode_ci weighs every character beyond the BMP the same). Case too, but names that
# differ only in case are one name to the reviewer (DESIGN §2), so the file never declares both.
ALIKE_FOR_MARIADB: Final = Scenario(
    roles=(
        Role("Emile", "", frozenset()),
        Role("Émile", "", frozenset()),
        Role("Emile ", "", frozenset()),
        Role("\U0001f680", "", frozenset()),
        Role("\U0001f389", "", frozenset()),
    ),
    users=(
        Declared(
            User(
                "ana@acme.co",
                "Ana",
                "Ruiz",
                "CC",
                "12345678",
                "+573001112233",
                "\U0001f389",
                bank_accounts=frozenset({"ops", "óps", "ops "}),
            ),
            existing=True,
        ),
    ),
    keys=("ops", "óps", "ops ", "\U0001f4b0"),
)

_organizations = itertools.count()


def realise(scenario: Scenario, factory: Factory, slug: str) -> str:
    """The platform side of `scenario` in a new organization `slug`: its operator (enrolled), the
    bank accounts and the users it already has. Returns the operator's TOTP secret."""
    org = factory.org(slug)
    root_role = factory.role(
        org, ROOT_ROLE.name, sorted(ROOT_ROLE.permissions), ROOT_ROLE.description
    )
    root = factory.operator(
        org,
        ROOT.email,
        root_role,
        first_name=ROOT.first_name,
        last_name=ROOT.last_name,
        id_type=ROOT.id_type,
        id_number=ROOT.id_number,
        phone=ROOT.phone,
    )
    accounts = {
        key: factory.bank_account(org, key, masked_number=f"****{i:04d}")
        for i, key in enumerate(scenario.keys)
    }
    for declared in scenario.users:
        if not declared.existing:
            continue
        u = declared.user
        user_id = factory.user(
            org,
            u.email,
            root_role,
            first_name="Before",
            last_name="Apply",
            id_type=u.id_type,
            id_number=u.id_number,
            phone=u.phone,
            status="active",
            two_factor="optional",
        )
        for key in sorted(declared.live_accounts):
            factory.assign(user_id, accounts[key])
    return root.secret


def loaded(path: Path) -> tuple[dict[str, Role], dict[str, User]]:
    """What the file declares, read by both parsers (the fast one vouches for most files)."""
    fast, precise = load_desired(path), load_desired(path, parser="precise")
    assert (fast.roles, fast.users) == (precise.roles, precise.users)
    return dict(fast.roles), dict(fast.users)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(scenario=WIDEST)
@example(scenario=ALIKE_FOR_MARIADB)
@given(scenario=scenarios())
def test_whatever_validates_applies_and_exports_back(
    factory: Factory, runner: Runner, tmp_path: Path, scenario: Scenario
) -> None:
    slug = f"v{next(_organizations)}-{secrets.token_hex(3)}"
    here = tmp_path / slug
    here.mkdir()
    file = write_desired(here / "users.yaml", scenario.desired(slug))
    note(file.read_text(encoding="utf-8"))
    try:
        declared = loaded(file)
    except InputError as exc:  # the strategy writes only valid files: the loader and it disagree
        pytest.fail(f"the loader refused a file the strategy meant as valid:\n{exc}")
    secret = realise(scenario, factory, slug)

    planned = runner(
        "plan", "-f", str(file), "--out", str(here / "plan.json"), "--operator", ROOT.email
    )
    assert planned.exit_code == 0, planned.output

    applied = runner(*apply_args(here / "plan.json", ROOT.email, TOTP(secret).now()))

    assert applied.exit_code == 0, applied.output
    # Every address was stored as written: the hash chain over them reads back intact.
    verified = runner("--organization", slug, "audit", "verify")
    assert verified.exit_code == 0, verified.output
    again = runner("plan", "-f", str(file), "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    exported = runner("--organization", slug, "export", "-o", str(here / "exported.yaml"))
    assert exported.exit_code == 0, exported.output
    assert loaded(here / "exported.yaml") == declared
    replanned = runner("plan", "-f", str(here / "exported.yaml"), "--detailed-exitcode")
    assert replanned.exit_code == 0, replanned.output
