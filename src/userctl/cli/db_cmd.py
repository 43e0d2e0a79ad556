"""`userctl db`: the schema, versioned by the migrations shipped with userctl (DESIGN §1b)."""

from __future__ import annotations

import click

from userctl.cli.context import app
from userctl.cli.messages import say


@click.group()
def db() -> None:
    """Database schema maintenance."""


@db.command()
def upgrade() -> None:
    """Run pending migrations (creates the tables in an empty database)."""
    from userctl.db import migrate
    from userctl.db.engine import redacted

    engine = app().engine()
    before, after = migrate.upgrade(engine)
    where = redacted(engine.url)
    if before == after:
        say(f"Database at {where} is already at revision {after}.")
    else:
        say(f"Database at {where} upgraded from {before or 'empty'} to revision {after}.")


@db.command("seal-secrets")
def seal_secrets() -> None:
    """Seal with USERCTL_SECRET_KEY, each to its user, the TOTP secrets stored in clear (enrolled
    before the key was set) or sealed to no one (by an earlier userctl). Once the key is set, a
    secret not sealed to its user is refused, since whoever can write the database could have
    put it there: run this once, right after setting the key or upgrading userctl. A secret in
    clear beside encrypted ones is left alone (its user re-enrols)."""
    from userctl.apply.otp import seal_secrets as seal
    from userctl.db.engine import redacted

    engine = app().engine()
    count, refused = seal(engine)
    say(f"Sealed {count} TOTP secret(s) at {redacted(engine.url)}.")
    for why in refused:
        say(f"Left alone: {why}", err=True)
