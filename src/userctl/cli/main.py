"""The `userctl` click group: global options, lazy sub-commands, and the one place where
errors become messages and exit codes (DESIGN §5)."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from userctl import __version__
from userctl.cli.context import DEFAULT_DATABASE_URL, AppContext
from userctl.errors import UserctlError

# Each sub-command lives in its own module, imported only when used: a pipeline running
# `userctl validate` never pays for SQLAlchemy or Alembic.
COMMANDS: dict[str, str] = {
    "init": "userctl.cli.init_cmd:init",
    "db": "userctl.cli.db_cmd:db",
    "validate": "userctl.cli.validate_cmd:validate",
    "schema": "userctl.cli.validate_cmd:schema",
    "plan": "userctl.cli.plan_cmd:plan",
    "apply": "userctl.cli.apply_cmd:apply",
    "approve": "userctl.cli.apply_cmd:approve",
    "show": "userctl.cli.show_cmd:show",
    "audit": "userctl.cli.audit_cmd:audit",
    "mfa": "userctl.cli.mfa_cmd:mfa",
    "notifications": "userctl.cli.notifications_cmd:notifications",
    "export": "userctl.cli.export_cmd:export",
    "users": "userctl.cli.views_cmd:users",
    "roles": "userctl.cli.views_cmd:roles",
    "accounts": "userctl.cli.views_cmd:accounts",
}


def _report(message: str) -> None:
    click.echo(message, err=True)


class UserctlGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override, unused-ignore]
        """Run without click's standalone handling so that every failure — ours, click's usage
        errors, the database's — is mapped to an exit code here and nowhere else."""
        kwargs["standalone_mode"] = False
        debug = "--debug" in (kwargs.get("args") or (args[0] if args else None) or sys.argv[1:])
        try:
            code = super().main(*args, **kwargs)
        except UserctlError as exc:
            if debug:
                raise
            _report(f"Error: {exc}" if not _is_multiline(exc) else str(exc))
            code = exc.exit_code
        except click.exceptions.Abort:
            _report("Aborted.")
            code = 1
        except click.ClickException as exc:
            exc.show()
            code = 1  # DESIGN §5: usage errors are 1; 2-4 carry meaning for pipelines
        except KeyboardInterrupt:
            _report("Interrupted.")
            code = 130
        except Exception as exc:  # noqa: BLE001 - the last resort: never a traceback without --debug
            if debug:
                raise
            _report(_unexpected(exc))
            code = 1
        sys.exit(code if isinstance(code, int) else 0)


def _is_multiline(exc: UserctlError) -> bool:
    return "\n" in str(exc)


def _unexpected(exc: Exception) -> str:
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(exc, SQLAlchemyError):
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return (
            f"Error: database error: {first}\n"
            "Check --database-url / USERCTL_DATABASE_URL and run `userctl db upgrade`; "
            "rerun with --debug for details."
        )
    return f"Error: unexpected {type(exc).__name__}: {exc}. Rerun with --debug for the traceback."


@click.group(cls=UserctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="userctl")
@click.option(
    "--database-url",
    envvar="USERCTL_DATABASE_URL",
    default=DEFAULT_DATABASE_URL,
    show_default=True,
    help="SQLAlchemy URL: sqlite:///FILE, postgresql+psycopg://..., mysql+pymysql://...",
)
@click.option("--organization", envvar="USERCTL_ORGANIZATION", help="Organization slug, when the database holds several.")
@click.option("--no-color", is_flag=True, help="Never colour output (NO_COLOR is honoured too).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, database_url: str, organization: str | None, no_color: bool, debug: bool) -> None:
    """Manage a business account's users, roles and payout bank-account assignments as code."""
    ctx.obj = AppContext(database_url=database_url, organization=organization, no_color=no_color, debug=debug)
    ctx.call_on_close(ctx.obj.close)


def main() -> None:
    cli.main(prog_name="userctl")
