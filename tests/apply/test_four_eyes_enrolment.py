"""Four eyes means two people who cannot stand in for each other (DESIGN §8 invariant 2), on
every backend: whoever enrolled or re-keyed an operator's authenticator was shown its secret and
can act as them, so the two never count as two proofs (nor two operators enrolled by one third
person); a re-key voids the re-keyed operator's unused approvals; under four eyes re-keying an
enrolled operator needs a second confirmer; every enrolment's audit event names who enrolled
whom. The attacker here is admin root@acme.co, who holds users.manage and wants to apply a
destructive plan alone."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import (
    ORG,
    Org,
    build_org,
    drop_gone,
    make_plan,
    rows_of,
    tables,
)
from tests.conftest import Factory, Operator, Runner
from userctl.apply import apply_plan, approve_plan, code_can_confirm
from userctl.apply.enrolment import SecondConfirmer, enroll_user
from userctl.clock import unix_seconds, utcnow
from userctl.db import models as m
from userctl.errors import NotAuthorized, TwoFactorRequired
from userctl.plan import Plan

HOUR = dt.timedelta(hours=1)


class Clock:
    """Moments 31 s apart: every confirmation uses a fresh TOTP step, however fast the test."""

    def __init__(self) -> None:
        self.now = utcnow().replace(microsecond=0)

    def tick(self) -> dt.datetime:
        self.now += dt.timedelta(seconds=31)
        return self.now

    def code(self, op: Operator) -> str:
        return op.code(unix_seconds(self.now))


def _enrol(
    engine: Engine,
    clock: Clock,
    by: Operator,
    email: str,
    second: Operator | None = None,
) -> Operator:
    """`by` enrols `email` (a second confirmer's code too when given); returns the new operator,
    whose secret `by` now knows."""
    clock.tick()
    result = enroll_user(
        engine,
        ORG,
        email,
        by.email,
        clock.code(by),
        now=clock.now,
        second=SecondConfirmer(second.email, clock.code(second)) if second else None,
    )
    user_id = rows_of(engine, m.User.id, m.User.email == email)[0][0]
    return Operator(user_id, email, result.secret)


def _approve(engine: Engine, clock: Clock, plan: Plan, op: Operator) -> None:
    clock.tick()
    approve_plan(engine, plan, op.email, clock.code(op), now=clock.now, valid_for=HOUR)


@pytest.fixture
def org(factory: Factory) -> Org:
    return build_org(factory, four_eyes=True)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def bob(factory: Factory, org: Org) -> int:
    """An active admin never enrolled with userctl: root may enrol him alone."""
    return factory.user(org.id, "bob@acme.co", org.roles["Admin"], two_factor="required")


@pytest.fixture
def carl(factory: Factory, org: Org) -> Operator:
    """An operator whose authenticator nobody in the log enrolled (the platform's own)."""
    return factory.operator(org.id, "carl@acme.co", org.roles["Admin"])


def test_the_enroller_approves_as_the_enrolled_and_applies_with_their_own_code_refused(
    engine: Engine, org: Org, bob: int, clock: Clock
) -> None:
    plan = make_plan(engine, drop_gone(engine))
    b = _enrol(engine, clock, org.root, "bob@acme.co")
    _approve(engine, clock, plan, b)  # root, holding bob's secret
    before = tables(engine)

    clock.tick()
    with pytest.raises(TwoFactorRequired) as refused:
        apply_plan(engine, plan, org.root.email, otp_code=clock.code(org.root), now=clock.now)

    assert "root@acme.co enrolled the authenticator of bob@acme.co" in str(refused.value)
    assert tables(engine) == before
    assert code_can_confirm(engine, plan, org.root.email, clock.now) is False


def test_the_enroller_and_the_enrolled_approving_are_not_two_people(
    engine: Engine, org: Org, bob: int, carl: Operator, clock: Clock
) -> None:
    plan = make_plan(engine, drop_gone(engine))
    b = _enrol(engine, clock, org.root, "bob@acme.co")
    _approve(engine, clock, plan, b)
    _approve(engine, clock, plan, org.root)
    before = tables(engine)

    clock.tick()
    with pytest.raises(TwoFactorRequired):
        apply_plan(engine, plan, "carl@acme.co", otp_code=None, now=clock.now)
    # bob applying with "his" code beside root's approval: the same one person.
    with pytest.raises(TwoFactorRequired):
        apply_plan(engine, plan, b.email, otp_code=clock.code(b), now=clock.now)
    assert tables(engine) == before


def test_two_operators_enrolled_by_one_person_are_that_person_twice(
    engine: Engine, factory: Factory, org: Org, bob: int, clock: Clock
) -> None:
    factory.user(org.id, "dana@acme.co", org.roles["Admin"], two_factor="required")
    plan = make_plan(engine, drop_gone(engine))
    b = _enrol(engine, clock, org.root, "bob@acme.co")
    d = _enrol(engine, clock, org.root, "dana@acme.co")
    _approve(engine, clock, plan, b)
    _approve(engine, clock, plan, d)
    before = tables(engine)

    clock.tick()
    with pytest.raises(TwoFactorRequired) as refused:
        apply_plan(engine, plan, org.root.email, otp_code=None, now=clock.now)
    assert "root@acme.co enrolled the authenticators of both" in str(refused.value)
    assert tables(engine) == before


def test_someone_the_enroller_cannot_act_as_still_pairs_with_the_enrolled(
    engine: Engine, org: Org, bob: int, carl: Operator, clock: Clock
) -> None:
    """The rule refuses only stand-ins: carl's approval and bob's own code are two people."""
    plan = make_plan(engine, drop_gone(engine))
    b = _enrol(engine, clock, org.root, "bob@acme.co")
    _approve(engine, clock, plan, carl)

    clock.tick()
    result = apply_plan(engine, plan, b.email, otp_code=clock.code(b), now=clock.now)

    assert result.verified_by == "totp+approval:carl@acme.co" and result.applied > 0


def test_a_team_set_up_with_userctl_can_meet_four_eyes(
    engine: Engine, factory: Factory, org: Org, bob: int, clock: Clock
) -> None:
    """Every authenticator goes back to the admin init enrolled: root enrols bob, bob enrols
    dana. root and dana are two people (neither enrolled the other, nor did one person enrol
    both), so four eyes can be met, and with it the plan that turns four eyes off."""
    factory.user(org.id, "dana@acme.co", org.roles["Admin"], two_factor="required")
    plan = make_plan(engine, drop_gone(engine))
    b = _enrol(engine, clock, org.root, "bob@acme.co")
    d = _enrol(engine, clock, b, "dana@acme.co")
    _approve(engine, clock, plan, d)

    clock.tick()
    result = apply_plan(engine, plan, org.root.email, otp_code=clock.code(org.root), now=clock.now)

    assert result.verified_by == "totp+approval:dana@acme.co" and result.applied > 0


def test_under_four_eyes_a_rekey_needs_a_second_person(
    engine: Engine, factory: Factory, org: Org, bob: int, carl: Operator, clock: Clock
) -> None:
    b = _enrol(engine, clock, org.root, "bob@acme.co")  # a first enrolment: one person
    before = tables(engine)

    with pytest.raises(TwoFactorRequired, match="--second-operator"):
        _enrol(engine, clock, org.root, "bob@acme.co")
    with pytest.raises(NotAuthorized, match="one person's"):
        _enrol(engine, clock, org.root, "bob@acme.co", second=org.root)
    # A second confirmer whose authenticator root enrolled is root again.
    factory.user(org.id, "dana@acme.co", org.roles["Admin"], two_factor="required")
    assert tables(engine) != before
    before = tables(engine)
    with pytest.raises(NotAuthorized):
        # dana is not enrolled yet: not an operator at all.
        _enrol(engine, clock, org.root, "bob@acme.co", second=Operator(0, "dana@acme.co", "A" * 32))
    assert tables(engine) == before

    rekeyed = _enrol(engine, clock, org.root, "bob@acme.co", second=carl)

    assert rekeyed.secret != b.secret
    event = rows_of(engine, m.AuditEvent, m.AuditEvent.action == "mfa.enroll")[-1]
    assert event.verified_by == "totp+totp:carl@acme.co"
    assert json.loads(event.after) == {
        "totp_enrolled": True,
        "enrolled_by": "root@acme.co",
        "second_confirmer": "carl@acme.co",
    }


def test_a_second_confirmer_enrolled_by_the_first_is_refused(
    engine: Engine, factory: Factory, org: Org, bob: int, carl: Operator, clock: Clock
) -> None:
    _enrol(engine, clock, org.root, "bob@acme.co")
    factory.user(org.id, "dana@acme.co", org.roles["Admin"], two_factor="required")
    d = _enrol(engine, clock, org.root, "dana@acme.co")
    before = tables(engine)

    with pytest.raises(NotAuthorized, match="root@acme.co enrolled the authenticator of dana"):
        _enrol(engine, clock, org.root, "bob@acme.co", second=d)
    assert tables(engine) == before


def test_a_rekey_voids_the_rekeyed_operators_unused_approvals(
    engine: Engine, factory: Factory, clock: Clock
) -> None:
    """Without four eyes one approval confirms a plan: one made with bob's old authenticator
    must not survive its replacement."""
    org = build_org(factory, four_eyes=False)
    bob = factory.operator(org.id, "bob@acme.co", org.roles["Admin"])
    plan = make_plan(engine, drop_gone(engine))
    _approve(engine, clock, plan, bob)
    clock.tick()
    assert code_can_confirm(engine, plan, org.root.email, clock.now) is False

    _enrol(engine, clock, org.root, "bob@acme.co")

    event = rows_of(engine, m.AuditEvent, m.AuditEvent.action == "mfa.enroll")[-1]
    assert json.loads(event.after)["approvals_voided"] == 1
    before = tables(engine)
    clock.tick()
    with pytest.raises(TwoFactorRequired):
        apply_plan(engine, plan, org.root.email, otp_code=None, now=clock.now)
    assert tables(engine) == before
    assert code_can_confirm(engine, plan, org.root.email, clock.now) is True


def test_every_enrolment_names_who_enrolled_whom(runner: Runner, tmp_path: Path) -> None:
    """init's first admin is enrolled by themselves; `mfa enroll` by its confirmer."""
    from tests.cli.yaml_files import write_desired
    from userctl.state import DesiredState, Role, User

    admin = Role(
        "Admin", "", frozenset({"users.view", "users.add", "users.manage", "roles.manage"})
    )
    users = {
        e: User(
            email=e,
            first_name="A",
            last_name="B",
            id_type="CC",
            id_number=f"1234567{i}",
            phone=f"+57300000000{i}",
            role="Admin",
            status="active",
            two_factor="required",
        )
        for i, e in enumerate(("boss@small.co", "two@small.co"))
    }
    path = write_desired(tmp_path / "u.yaml", DesiredState("small-co", {"Admin": admin}, users))
    init = runner("init", "-f", str(path), "--admin", "boss@small.co", "--json")
    assert init.exit_code == 0, init.output
    import pyotp

    boss = pyotp.TOTP(json.loads(init.stdout)["totp_secret"])
    at = unix_seconds(utcnow())
    planned = runner(
        "apply", "-f", str(path), "--operator", "boss@small.co", "--yes", "--otp-code", boss.at(at)
    )
    assert planned.exit_code == 0, planned.output
    from userctl.db.engine import create_engine_for

    engine = create_engine_for(runner.db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.update(m.User).values(status="active"))
        enrolled = runner(
            "mfa",
            "enroll",
            "two@small.co",
            "--operator",
            "boss@small.co",
            "--otp-code",
            boss.at(at + 30),
        )
        assert enrolled.exit_code == 0, enrolled.output
        events = [
            (e.operator, e.address, json.loads(e.after))
            for e in rows_of(engine, m.AuditEvent, m.AuditEvent.action == "mfa.enroll")
        ]
    finally:
        engine.dispose()
    assert events == [
        (
            "boss@small.co",
            'user["boss@small.co"]',
            {"totp_enrolled": True, "enrolled_by": "boss@small.co"},
        ),
        (
            "boss@small.co",
            'user["two@small.co"]',
            {"totp_enrolled": True, "enrolled_by": "boss@small.co"},
        ),
    ]


def test_mfa_enroll_cli_rekey_under_four_eyes(
    runner: Runner, engine: Engine, factory: Factory, org: Org, carl: Operator, clock: Clock
) -> None:
    """The command a team runs: without a second operator exit 4 and nothing written; with one
    (a different person) the re-key goes through."""
    before = tables(engine)
    refused = runner(
        "mfa", "enroll", "carl@acme.co", "--operator", "root@acme.co", "--otp-code", org.root.code()
    )
    assert refused.exit_code == 4, refused.output
    assert "--second-operator" in refused.stderr and "Traceback" not in refused.output
    assert tables(engine) == before

    done = runner(
        "mfa",
        "enroll",
        "carl@acme.co",
        "--operator",
        "root@acme.co",
        "--otp-code",
        org.root.code(),
        "--second-operator",
        "calm@acme.co",
        "--second-otp-code",
        "123456",
    )
    # calm@acme.co has no authenticator: no operator, refused (exit 4), nothing written.
    assert done.exit_code == 4 and "calm@acme.co has no authenticator" in done.stderr
    assert tables(engine) == before
    lead = factory.operator(org.id, "lead@acme.co", org.roles["Admin"])
    done = runner(
        "mfa",
        "enroll",
        "carl@acme.co",
        "--operator",
        "root@acme.co",
        "--otp-code",
        # The step after the one the refused attempts used (the CLI reads the real clock, which a
        # loaded machine may have moved far past the test clock's ticks).
        org.root.code(unix_seconds(utcnow()) + 30),
        "--second-operator",
        "lead@acme.co",
        "--second-otp-code",
        lead.code(),
        "--json",
    )
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["totp_secret"] != carl.secret


def test_a_second_code_without_a_second_operator_is_bad_input(
    runner: Runner, engine: Engine, org: Org, carl: Operator
) -> None:
    before = tables(engine)
    result = runner(
        "mfa",
        "enroll",
        "carl@acme.co",
        "--operator",
        "root@acme.co",
        "--otp-code",
        org.root.code(),
        "--second-otp-code",
        "123456",
    )
    assert result.exit_code == 1 and "--second-otp-code needs --second-operator" in result.stderr
    assert tables(engine) == before


def test_a_wrong_second_code_is_booked_to_the_second_operator_and_enrols_nothing(
    engine: Engine, org: Org, carl: Operator, factory: Factory, clock: Clock
) -> None:
    from userctl.errors import TwoFactorFailed

    lead = factory.operator(org.id, "lead@acme.co", org.roles["Admin"])
    clock.tick()
    right = lead.code(unix_seconds(clock.now))
    wrong = "000000" if right != "000000" else "111111"
    with pytest.raises(TwoFactorFailed):
        enroll_user(
            engine,
            ORG,
            "carl@acme.co",
            "root@acme.co",
            clock.code(org.root),
            now=clock.now,
            second=SecondConfirmer("lead@acme.co", wrong),
        )
    events = [(e.action, e.operator) for e in rows_of(engine, m.AuditEvent)]
    assert events == [("otp.failure", "lead@acme.co")]
    secret = rows_of(engine, m.TotpSecret.secret, m.TotpSecret.user_id == carl.user_id)[0][0]
    from userctl.apply.secret_store import decrypt_secret

    assert decrypt_secret(secret) == carl.secret
