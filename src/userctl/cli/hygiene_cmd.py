"""`userctl hygiene`: the hygiene findings every plan shows (dormant users, expired invitations,
privileged users without 2FA), against the live database alone."""

from __future__ import annotations

import click

from userctl.cli.common import reading
from userctl.errors import Refused
from userctl.printable import printable


@click.command()
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def hygiene(fmt: str) -> None:
    """Dormant users (no login for policies.max_inactive_days, default 90), invitations that
    expired unused, and holders of a privileged permission without an enrolled authenticator.
    Exit 0 unless a policy makes a finding blocking (then 4)."""
    from userctl import hygiene as core
    from userctl.clock import iso_z, utcnow
    from userctl.db.hygiene import read_facts, settings_for

    now = utcnow()
    with reading() as (conn, org_id, org):
        settings = settings_for(conn, org_id)
        found = core.findings(read_facts(conn, org_id, settings, now), settings, now)
    if fmt == "json":
        from userctl.render.results import document

        click.echo(
            document(
                {
                    "organization": org.slug,
                    "checked_at": iso_z(now),
                    "settings": settings.to_data(),
                    "findings": [f.to_data() for f in found],
                }
            ),
            nl=False,
        )
    elif not found:
        click.echo(f"{org.slug}: no hygiene findings")
    else:
        for f in found:
            click.echo(printable(f"{'BLOCKING ' if f.blocking else ''}{f.code}: {f.message}"))
    blocking = [f for f in found if f.blocking]
    if blocking:
        raise Refused(
            f"{len(blocking)} blocking hygiene finding(s): the "
            "organization's policies require them fixed"
        )
