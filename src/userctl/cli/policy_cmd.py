"""`userctl policy check`: the organization's policies judged on the live database as it is now
(no file), for drift made outside userctl; a scheduled pipeline alerts on exit 4."""

from __future__ import annotations

import click

from userctl.cli.context import reading
from userctl.cli.messages import say
from userctl.errors import PolicyViolation
from userctl.render.results import document


@click.group()
def policy() -> None:
    """The organization's access policies."""


@policy.command("check")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def check(fmt: str) -> None:
    """Judge the policies stored for the organization against its live users and roles, and its
    users' expiries (one past, of a user still active, is a violation; those within 30 days are
    listed): exit 0 when none is broken, 4 when some is."""
    from userctl.clock import utcnow
    from userctl.db.snapshot import read_live_state
    from userctl.policies import in_force, live_check
    from userctl.render.common import gate_line, in_force_line
    from userctl.state import organization_settings, policy_text

    with reading() as (conn, _org_id, org):
        live = read_live_state(conn, org.slug)
    violations, expiring = live_check(live, utcnow().date())
    # The gate a plan made now would be judged under, as the plan carries it.
    gate = organization_settings(live.organization)
    settings = [{"policy": s.rule, "value": s.value, "default": s.default} for s in in_force(live)]
    if fmt == "json":
        click.echo(
            document(
                {
                    "organization": org.slug,
                    "policies": [
                        {"policy": policy_text(key), "value": value}
                        for key, value in sorted(live.policies.items())
                    ],
                    "gate": gate,
                    "in_force": settings,
                    "violations": [{"rule": v.rule, "message": v.message} for v in violations],
                    "expiring": [
                        {
                            "email": str(f.path[1]),
                            "expires": live.users[str(f.path[1])].expires,
                            "message": f.message,
                        }
                        for f in expiring
                    ],
                }
            ),
            nl=False,
        )
    elif not live.policies and not violations:
        say(f"{org.slug} declares no policies.")
    elif not violations:
        say(
            f"{org.slug}: {len(live.policies)} "
            f"polic{'y' if len(live.policies) == 1 else 'ies'} checked, none broken."
        )
    if fmt == "text":
        click.echo(gate_line({"gate": gate}))
        click.echo(in_force_line(settings))
        for f in expiring:
            say(f"note: {f.message}")
    if violations:
        if fmt == "text":
            for v in violations:
                say(v.message)
        raise PolicyViolation(
            f"{len(violations)} policy violation(s) in {org.slug}'s live database"
        )
