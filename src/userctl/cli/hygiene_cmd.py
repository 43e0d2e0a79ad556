"""`userctl hygiene`: the hygiene findings every plan shows (dormant users, expired invitations,
privileged users without 2FA), against the live database alone."""

from __future__ import annotations

import click

from userctl.cli.context import reading
from userctl.cli.messages import say
from userctl.errors import Refused


@click.command()
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def hygiene(fmt: str) -> None:
    """Dormant users (no login for policies.max_inactive_days, default 90), invitations that
    expired unused, holders of a privileged permission without an enrolled authenticator, and
    expiring access: users whose expiry is within 30 days, and users past it still active (a
    blocking finding). Exit 0 unless a finding blocks (then 4)."""
    from userctl.clock import iso_z, utcnow
    from userctl.db.hygiene import hygiene_report

    now = utcnow()
    with reading() as (conn, org_id, org):
        settings, found = hygiene_report(conn, org_id, org, now)
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
        say(f"{org.slug}: no hygiene findings")
    else:
        for f in found:
            say(f"{'BLOCKING ' if f.blocking else ''}{f.code}: {f.message}")
    blocking = [f for f in found if f.blocking]
    if blocking:
        raise Refused(
            f"{len(blocking)} blocking hygiene finding(s): the "
            "organization's policies (or an expiry past) require them fixed"
        )
