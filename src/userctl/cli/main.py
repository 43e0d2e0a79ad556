"""The `userctl` click group: global options, lazy sub-commands, and the one place where
errors become messages and exit codes (DESIGN §5)."""

from __future__ import annotations

import os
import sys
from typing import Any

import click
from click.core import ParameterSource

from userctl import __version__
from userctl.cli import failures, leave
from userctl.cli.argv import env_flag, refuse_undecodable
from userctl.cli.commands import LazyGroup
from userctl.cli.context import DEFAULT_DATABASE_URL, ENV_DATABASE_URL, AppContext
from userctl.cli.options import environment_epilog, epilog
from userctl.errors import DatabaseError, ExitCode, UserctlError, exit_code_of


class UserctlGroup(LazyGroup):
    """The root group: every failure of every command becomes its message and exit code here."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the sub-command; a database error becomes a DatabaseError here, while the command's
        engine is still open to ask which revision the schema is at (failures.database_error)."""
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # click would turn it into exit 1 itself: it is handled in `main` instead.
            raise failures.ClosedPipe() from None
        except Exception as exc:
            if not failures.is_database_error(exc):
                raise
            raise DatabaseError(failures.database_error(exc, ctx)) from exc

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override, unused-ignore]
        """Run without click's standalone handling so that every failure — ours, click's usage
        errors, the database's — is mapped to an exit code here and nowhere else."""
        kwargs["standalone_mode"] = False
        argv = list(kwargs.get("args") or (args[0] if args else None) or sys.argv[1:])
        debug = "--debug" in argv or env_flag("USERCTL_DEBUG")
        try:
            refuse_undecodable(argv)
            code = _returned(super().main(*args, **kwargs))
            sys.stdout.flush()  # a closed pipe shows here, not at exit where it cannot be caught
        except (BrokenPipeError, failures.ClosedPipe):
            # The reader stopped reading (`userctl audit log | head -1`): that is its choice, not
            # a failure, and says nothing on a terminal nobody reads.
            failures.silence_stdout()
            code = ExitCode.OK
        except UserctlError as exc:
            if debug:
                raise
            failures.report(f"Error: {exc}" if not failures.is_multiline(exc) else str(exc))
            code = exit_code_of(exc)
        except click.exceptions.Abort:
            failures.report("Aborted.")
            code = ExitCode.ERROR
        except click.ClickException as exc:
            exc.show()
            code = ExitCode.ERROR  # click's own usage code (2) means "changes" to a pipeline
        except KeyboardInterrupt:
            failures.report("Interrupted.")
            code = ExitCode.INTERRUPTED
        except Exception as exc:  # noqa: BLE001 - the last resort: never a traceback without --debug
            if debug:
                raise
            failures.report(failures.unexpected(exc))
            code = exit_code_of(exc)  # a bug: its own code, so a pipeline tells it from a typo
        sys.exit(int(code))


def _returned(value: Any) -> ExitCode:
    """A finished command's code: what it returned if an ExitCode (`plan`), else success."""
    return value if isinstance(value, ExitCode) else ExitCode.OK


@click.group(
    cls=UserctlGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=environment_epilog() + "\n\n" + epilog(()),
)
@click.version_option(__version__, prog_name="userctl")
@click.option(
    "--database-url",
    envvar=ENV_DATABASE_URL,
    default=DEFAULT_DATABASE_URL,
    show_default=True,
    show_envvar=True,
    help="SQLAlchemy URL: sqlite:///FILE, postgresql+psycopg://..., mysql+pymysql://...",
)
@click.option(
    "--organization",
    envvar="USERCTL_ORGANIZATION",
    show_envvar=True,
    help="Organization slug, when the database holds several.",
)
@click.option(
    "--connect-timeout",
    type=click.IntRange(1, 3600),
    envvar="USERCTL_CONNECT_TIMEOUT",
    show_envvar=True,
    metavar="SECONDS",
    help="Give up on a database server that does not answer a new connection within this "
    "many seconds (default 10).",
)
@click.option(
    "--no-color",
    is_flag=True,
    envvar="USERCTL_NO_COLOR",
    show_envvar=True,
    help="Never colour output (NO_COLOR is honoured too).",
)
@click.option(
    "--debug", is_flag=True, envvar="USERCTL_DEBUG", show_envvar=True, help="Show tracebacks."
)
@click.pass_context
def cli(
    ctx: click.Context,
    database_url: str,
    organization: str | None,
    connect_timeout: int | None,
    no_color: bool,
    debug: bool,
) -> None:
    """Manage a business account's users, roles and payout bank-account assignments as code.

    The global options are accepted after the sub-command too, where they win."""
    given_as = "--database-url"
    source = ctx.get_parameter_source("database_url")
    if source is ParameterSource.ENVIRONMENT:
        given_as = ENV_DATABASE_URL
    elif source is ParameterSource.DEFAULT and ENV_DATABASE_URL in os.environ:
        # click reads an empty variable as unset; here it is a missing secret, not a default.
        database_url, given_as = os.environ[ENV_DATABASE_URL], ENV_DATABASE_URL
    ctx.obj = AppContext(
        database_url=database_url,
        organization=organization,
        no_color=no_color,
        debug=debug,
        connect_timeout=connect_timeout,
        database_url_from=given_as,
    )
    ctx.call_on_close(ctx.obj.close)


def main() -> None:
    leave.run(lambda: cli.main(prog_name="userctl"))
