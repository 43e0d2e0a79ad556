"""A saved plan is evidence, never authority: a plan edited by hand, with its digest recomputed
(anyone can), is refused at apply as forged, exit 4, with nothing written, when the planner would
not have written it for the live state (replan.check_rederived). And `apply PLAN -f FILE` applies
PLAN only when FILE plans to exactly it."""

from __future__ import annotations

import copy
import datetime as dt
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import pytest
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import (
    ADMIN_PERMS,
    SUPPORT,
    Org,
    apply_args,
    build_org,
    bulk_org,
    drop_gone,
    every_change,
    exported,
    live_state,
    new_user,
    rename,
    rows_of,
    save_plan,
    stamped,
    tables,
    with_users,
)
from tests.cli.yaml_files import write_desired
from tests.conftest import Factory, Runner
from userctl.db import models as m
from userctl.plan import compute_digest, dumps, user_address
from userctl.state import Role, fingerprint, user_record

Data = dict[str, Any]


def forge(path: Path, edit: Callable[[Data], None]) -> Path:
    """Edit a saved plan as an attacker would: change its content, then recompute its digest."""
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    signed = {k: v for k, v in data.items() if k not in ("digest", "findings", "summary")}
    data["digest"] = compute_digest(signed)
    forged = path.with_name("forged.json")
    forged.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return forged


def change_of(data: Data, address: str, action: str) -> Data:
    [found] = [c for c in data["changes"] if c["address"] == address and c["action"] == action]
    return found  # type: ignore[no-any-return]


def refused_as_forged(engine: Engine, runner: Runner, path: Path, *args: str) -> str:
    before = tables(engine)
    result = runner(*args)
    assert result.exit_code == 4, result.output
    assert "refused as forged" in result.stderr and "Traceback" not in result.output
    assert tables(engine) == before
    return result.stderr


def _lower_flags(data: Data) -> None:
    delete = change_of(data, user_address("gone@acme.co"), "delete")
    delete.update(destructive=False, requires_2fa=False)
    for c in data["changes"]:
        c.update(destructive=False, grants_privilege=False, requires_2fa=False)


def test_a_delete_marked_as_needing_no_2fa_is_refused(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    path = forge(save_plan(engine, drop_gone(engine), tmp_path), _lower_flags)
    stderr = refused_as_forged(engine, runner, path, *apply_args(path, org.root.email))
    assert (
        "gone@acme.co" in stderr
        and "is marked without risk, but it is [destructive, 2FA]" in stderr
    )
    assert rows_of(engine, m.User, m.User.email == "gone@acme.co")


def test_the_same_forgery_is_refused_even_with_a_valid_code(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    path = forge(save_plan(engine, drop_gone(engine), tmp_path), _lower_flags)
    refused_as_forged(engine, runner, path, *apply_args(path, org.root.email, org.root.code()))


def test_a_plan_claiming_a_weaker_policy_is_refused(
    engine: Engine, factory: Factory, runner: Runner, tmp_path: Path
) -> None:
    org = build_org(factory, policy="all")
    path = save_plan(
        engine, rename(exported(live_state(engine)), "calm@acme.co", "Renamed"), tmp_path
    )

    def weaker(data: Data) -> None:
        data["two_factor_policy"] = "destructive"
        for c in data["changes"]:
            c["requires_2fa"] = False

    forged = forge(path, weaker)
    stderr = refused_as_forged(engine, runner, forged, *apply_args(forged, org.root.email))
    assert "policy" in stderr


def test_options_edited_to_spare_or_replace_users_are_refused(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    path = save_plan(engine, drop_gone(engine), tmp_path)
    no_prune = forge(path, lambda d: d["options"].update(prune=False))
    refused_as_forged(
        engine, runner, no_prune, *apply_args(no_prune, org.root.email, org.root.code())
    )
    replaced = forge(path, lambda d: d["options"].update(replace=["calm@acme.co"]))
    refused_as_forged(
        engine,
        runner,
        replaced,
        *apply_args(
            replaced, org.root.email, org.root.code(at=dt.datetime.now(dt.UTC).timestamp() + 30)
        ),
    )


def test_an_update_of_an_immutable_field_is_refused(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    path = save_plan(
        engine, rename(exported(live_state(engine)), "calm@acme.co", "Renamed"), tmp_path
    )

    def new_identity(data: Data) -> None:
        update = change_of(data, user_address("calm@acme.co"), "update")
        update["diff"]["id_number"] = {"before": update["before"]["id_number"], "after": "999999"}
        update["after"]["id_number"] = "999999"

    forged = forge(path, new_identity)
    stderr = refused_as_forged(
        engine, runner, forged, *apply_args(forged, org.root.email, org.root.code())
    )
    assert "id_number" in stderr


def test_a_change_to_an_inactive_user_is_refused(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    path = save_plan(
        engine, rename(exported(live_state(engine)), "calm@acme.co", "Renamed"), tmp_path
    )
    live = live_state(engine)
    back = user_record(live.users["back@acme.co"])
    del back["bank_accounts"]

    def touch_inactive(data: Data) -> None:
        update = copy.deepcopy(change_of(data, user_address("calm@acme.co"), "update"))
        update.update(
            address=user_address("back@acme.co"),
            key=["back@acme.co"],
            before=back,
            after={**back, "first_name": "Sneaky"},
            diff={"first_name": {"before": back["first_name"], "after": "Sneaky"}},
        )
        data["changes"].append(update)
        # The right precondition too: only the planner's refusal is left to catch it.
        data["preconditions"][user_address("back@acme.co")] = fingerprint(
            live, "user", "back@acme.co"
        )

    forged = forge(path, touch_inactive)
    stderr = refused_as_forged(
        engine, runner, forged, *apply_args(forged, org.root.email, org.root.code())
    )
    assert "inactive" in stderr or "back@acme.co" in stderr


@pytest.mark.parametrize("who, key", [("back@acme.co", "payroll"), ("calm@acme.co", "offshore")])
def test_an_invented_assignment_is_refused(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path, who: str, key: str
) -> None:
    # An inactive user cannot be given a bank account; an account the organization does not have
    # cannot be given to anyone.
    path = save_plan(
        engine, rename(exported(live_state(engine)), "calm@acme.co", "Renamed"), tmp_path
    )

    def assign(data: Data) -> None:
        data["changes"].append(
            {
                "address": f'assignment["{who}" -> "{key}"]',
                "kind": "assignment",
                "key": [who, key],
                "action": "assign",
                "phase": "assignment.assign",
                "before": None,
                "after": {"user": who, "bank_account": key},
                "diff": {"assigned": {"before": False, "after": True}},
                "destructive": False,
                "grants_privilege": True,
                "requires_2fa": True,
                "deferred": False,
                "note": None,
            }
        )

    forged = forge(path, assign)
    refused_as_forged(engine, runner, forged, *apply_args(forged, org.root.email, org.root.code()))
    assert not {r.user_id for r in rows_of(engine, m.UserBankAccount)} & {
        org.users["back@acme.co"],
        org.users["calm@acme.co"],
    }


def test_a_change_to_another_organizations_user_is_refused(
    engine: Engine, factory: Factory, org: Org, runner: Runner, tmp_path: Path
) -> None:
    other = factory.org("other-co")
    role = factory.role(other, "Staff", ["users.view"])
    factory.user(other, "victim@other.co", role)
    path = save_plan(engine, drop_gone(engine), tmp_path)

    def delete_victim(data: Data) -> None:
        delete = copy.deepcopy(change_of(data, user_address("gone@acme.co"), "delete"))
        delete.update(
            address=user_address("victim@other.co"),
            key=["victim@other.co"],
            before={**delete["before"], "email": "victim@other.co"},
        )
        data["changes"].append(delete)

    forged = forge(path, delete_victim)
    refused_as_forged(engine, runner, forged, *apply_args(forged, org.root.email, org.root.code()))
    assert rows_of(engine, m.User, m.User.email == "victim@other.co")


def test_approve_refuses_a_forged_plan_too(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    path = forge(save_plan(engine, drop_gone(engine), tmp_path), _lower_flags)
    refused_as_forged(
        engine,
        runner,
        path,
        "approve",
        "--yes",
        str(path),
        "--operator",
        org.root.email,
        "--otp-code",
        org.root.code(),
    )


def test_an_honest_plan_of_every_kind_of_change_is_not_taken_for_a_forgery(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    desired, options = every_change(engine)
    path = save_plan(engine, desired, tmp_path, **options)
    result = runner(*apply_args(path, org.root.email, org.root.code()))
    assert result.exit_code == 0, result.output


# --- apply PLAN -f FILE ---------------------------------------------------------------------------


def test_apply_plan_with_its_own_file_applies_the_saved_plan(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    desired = drop_gone(engine)
    yaml_file = write_desired(tmp_path / "users.yaml", desired)
    planned = runner("plan", "-f", str(yaml_file), "--out", str(tmp_path / "plan.json"))
    assert planned.exit_code == 0, planned.output
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert saved["provenance"]["files"] == {
        str(yaml_file): saved["provenance"]["files"][str(yaml_file)]
    }

    result = runner(
        *apply_args(tmp_path / "plan.json", org.root.email, org.root.code()), "-f", str(yaml_file)
    )

    assert result.exit_code == 0, result.output
    assert not rows_of(engine, m.User, m.User.email == "gone@acme.co")
    [event] = [e for e in rows_of(engine, m.AuditEvent) if e.action == "user.delete"]
    assert event.plan_digest == saved["digest"]  # the reviewed plan, not a new plan of the file


def test_apply_plan_with_a_file_that_differs_by_one_user_is_refused(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    path = save_plan(engine, drop_gone(engine), tmp_path)
    merged = write_desired(
        tmp_path / "users.yaml", with_users(drop_gone(engine), drop=["calm@acme.co"])
    )
    before = tables(engine)

    result = runner(*apply_args(path, org.root.email, org.root.code()), "-f", str(merged))

    assert result.exit_code == 4, result.output
    assert f"{path} does not match {merged} on this branch" in result.stderr
    assert 'user["calm@acme.co"]' in result.stderr
    assert tables(engine) == before


def test_apply_plan_with_a_file_of_another_organization_is_refused(
    engine: Engine, factory: Factory, runner: Runner, tmp_path: Path
) -> None:
    """Two organizations in one database, alike where the plan touches them. The merged file
    declares beta-bank; the plan handed to the merge job (from a pull request's own CI job) is
    acme-payments' plan of the very same changes. The file plans to the same changes, rows and
    options for its own organization, but it says nothing of acme-payments: refused, nothing
    written."""
    acme, root = bulk_org(factory)
    beta = factory.org("beta-bank")
    admin = factory.role(beta, "Admin", ADMIN_PERMS)
    factory.role(beta, SUPPORT.name, sorted(SUPPORT.permissions), SUPPORT.description)
    factory.operator(beta, "boss@beta.co", admin)
    newcomer = new_user("new@acme.co", 1)
    path = save_plan(engine, with_users(exported(live_state(engine)), newcomer), tmp_path)
    merged = write_desired(
        tmp_path / "users.yaml", with_users(exported(live_state(engine, "beta-bank")), newcomer)
    )
    planned_for_beta = runner("plan", "-f", str(merged), "--format", "json")
    assert [c["address"] for c in json.loads(planned_for_beta.stdout)["changes"]] == [
        user_address("new@acme.co")
    ]
    before = tables(engine)

    result = runner(*apply_args(path, root.email), "-f", str(merged))

    assert result.exit_code == 4, result.output
    # Every plan pins its organization's row (a precondition keyed by its slug).
    assert "the rows it depends on differ" in result.stderr
    assert "Traceback" not in result.output
    assert tables(engine) == before
    assert acme != beta and not rows_of(engine, m.User, m.User.email == "new@acme.co")


# --- --max-age ------------------------------------------------------------------------------------


def _saved_at(engine: Engine, tmp_path: Path, made: dt.datetime) -> Path:
    from tests.apply.apply_helpers import make_plan

    path = tmp_path / "old.json"
    path.write_text(dumps(stamped(make_plan(engine, drop_gone(engine)), made)), encoding="utf-8")
    return path


@pytest.mark.parametrize("command", ["apply", "approve"])
def test_a_plan_older_than_max_age_is_refused(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path, command: str
) -> None:
    old = _saved_at(
        engine, tmp_path, dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=8)
    )
    before = tables(engine)
    args = (
        apply_args(old, org.root.email, org.root.code())
        if command == "apply"
        else [
            "approve",
            "--yes",
            str(old),
            "--operator",
            org.root.email,
            "--otp-code",
            org.root.code(),
        ]
    )

    result = runner(*args)

    assert result.exit_code == 4, result.output
    assert "longer ago than --max-age 7 days" in result.stderr
    assert tables(engine) == before
    assert runner(*args, "--max-age", "9").exit_code == 0


def test_a_plan_made_in_the_future_is_refused(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    future = _saved_at(
        engine, tmp_path, dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=1)
    )
    result = runner(*apply_args(future, org.root.email, org.root.code()))
    assert result.exit_code == 4 and "in the future" in result.stderr


def test_organization_must_match_a_saved_plan(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    path = save_plan(engine, drop_gone(engine), tmp_path)
    result = runner(
        "--organization", "other-co", *apply_args(path, org.root.email, org.root.code())
    )
    assert (
        result.exit_code == 1
        and "does not match" in result.stderr
        and "acme-payments" in result.stderr
    )


@pytest.mark.parametrize(
    "name, why",
    [
        ("R" * 150, "150 characters, more than the 100"),
        ("Ops\u202eevil", "U+202E"),
        ("\u0410dmin", "mixes scripts"),
    ],
)
def test_a_value_no_file_could_declare_is_refused(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path, name: str, why: str
) -> None:
    # The planner never checks a value (the loader did); a hand-written plan skips the loader.
    live = exported(live_state(engine))
    path = save_plan(
        engine,
        replace(
            live, roles={**live.roles, "Viewer": Role("Viewer", "", frozenset({"users.view"}))}
        ),
        tmp_path,
    )

    def rename_role(data: Data) -> None:
        create = change_of(data, 'role["Viewer"]', "create")
        create["after"]["name"] = name
        create["key"] = [name]
        create["address"] = "role[" + json.dumps(name, ensure_ascii=False) + "]"
        data["preconditions"][create["address"]] = data["preconditions"].pop('role["Viewer"]')

    forged = forge(path, rename_role)
    stderr = refused_as_forged(
        engine, runner, forged, *apply_args(forged, org.root.email, org.root.code())
    )
    assert why in stderr and "\u202e" not in stderr


# --- a saved plan read change by change -----------------------------------------------------------


def test_a_forged_change_deep_in_a_plan_read_in_many_chunks_is_refused_naming_it(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    """The saved plan is read in chunks (plan.read_saved): a create whose diff is not the one its
    `after` gives, last of 1,500 and past the first chunks of the file, is kept as stated and
    refused by re-derivation, named."""
    bulk = [new_user(f"bulk{i:04d}@acme.co", 100 + i) for i in range(1500)]
    path = save_plan(engine, with_users(exported(live_state(engine)), *bulk), tmp_path)
    assert path.stat().st_size > 2 * 2**20  # more than two chunks of the reader

    def mismatched_diff(data: Data) -> None:
        last = change_of(data, user_address("bulk1499@acme.co"), "create")
        last["diff"]["first_name"]["after"] = "Mallory"

    forged = forge(path, mismatched_diff)
    stderr = refused_as_forged(engine, runner, forged, *apply_args(forged, org.root.email))
    assert 'user["bulk1499@acme.co"] create is not what the planner writes' in stderr
    assert "diff differ" in stderr


def test_a_saved_plan_reformatted_by_a_tool_applies_as_written(
    engine: Engine, org: Org, runner: Runner, tmp_path: Path
) -> None:
    """Decided: a saved plan's JSON layout is not part of it (its digest covers its content), so
    one re-indented with its keys in another order, as jq writes it, is the plan that was
    reviewed: applied, under the digest it was written with."""
    path = save_plan(engine, drop_gone(engine), tmp_path)
    data = json.loads(path.read_text(encoding="utf-8"))
    reformatted = path.with_name("reformatted.json")
    reformatted.write_text(
        json.dumps(dict(reversed(list(data.items()))), indent=4, ensure_ascii=True),
        encoding="utf-8",
    )
    result = runner(*apply_args(reformatted, org.root.email, org.root.code()))
    assert result.exit_code == 0, result.output
    assert not rows_of(engine, m.User, m.User.email == "gone@acme.co")
    [event] = [e for e in rows_of(engine, m.AuditEvent) if e.action == "user.delete"]
    assert event.plan_digest == data["digest"]


# --- the changes' order and number are what the planner writes ---------------------------------


def _reversed_changes(data: Data) -> None:
    data["changes"].reverse()


def _last_change_twice(data: Data) -> None:
    data["changes"].append(copy.deepcopy(data["changes"][-1]))


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (_reversed_changes, 'user["upd@acme.co"] update is not what the planner writes'),
        (_last_change_twice, 'user["upd@acme.co"] update is a change the planner does not write'),
    ],
    ids=["reversed", "last-twice"],
)
def test_honest_changes_reordered_or_repeated_are_refused(
    engine: Engine,
    org: Org,
    runner: Runner,
    tmp_path: Path,
    edit: Callable[[Data], None],
    why: str,
) -> None:
    """Every change as the planner writes it, but in another order, or one of them twice (the
    digest recomputed; both still fit the live state): the re-derived change at each place is
    compared with the saved one at that place (by fingerprint, then as data), so the plan is
    refused, even with a valid code."""
    desired = rename(
        rename(exported(live_state(engine)), "calm@acme.co", "Kalm"), "upd@acme.co", "Up"
    )
    path = save_plan(engine, desired, tmp_path)
    assert [c["address"] for c in json.loads(path.read_text(encoding="utf-8"))["changes"]] == [
        user_address("calm@acme.co"),
        user_address("upd@acme.co"),
    ]
    forged = forge(path, edit)
    stderr = refused_as_forged(
        engine, runner, forged, *apply_args(forged, org.root.email, org.root.code())
    )
    assert why in stderr
