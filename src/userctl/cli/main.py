"""The `userctl` click group: global options, lazy sub-commands, and the one place where
errors become messages and exit codes (DESIGN §5)."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click
from click.core import ParameterSource

from userctl import __version__
from userctl.cli.context import DEFAULT_DATABASE_URL, ENV_DATABASE_URL, AppContext
from userctl.cli.options import environment_epilog, epilog, prepare
from userctl.errors import DatabaseError, UsageError, UserctlError
from userctl.printable import printable

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
    "policy": "userctl.cli.policy_cmd:policy",
    "activity": "userctl.cli.activity_cmd:activity",
    "hygiene": "userctl.cli.hygiene_cmd:hygiene",
    "review": "userctl.cli.review_cmd:review",
    "evidence": "userctl.cli.evidence_cmd:evidence",
}


def _report(message: str) -> None:
    # Every error reaches the terminal here: a value quoted in it (an --operator, a name read from
    # the database) is shown with its hidden characters escaped, line by line.
    click.echo("\n".join(map(printable, message.split("\n"))), err=True)


class _ClosedPipe(Exception):
    """stdout's reader went away (not an OSError, which click would map to exit 1 itself)."""


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
        prepare(command, (cmd_name,), self)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:
            # click suggests from `self.commands`, which a lazy group leaves empty.
            raise click.exceptions.NoSuchCommand(
                exc.command_name, possibilities=self.list_commands(ctx), ctx=ctx
            ) from None

    def invoke(self, ctx: click.Context) -> Any:
        """Run the sub-command; a database error becomes a DatabaseError here, while the command's
        engine is still open to ask which revision the schema is at (see _database_error)."""
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # click would turn it into exit 1 itself: it is handled in `main` instead.
            raise _ClosedPipe() from None
        except Exception as exc:
            if not _is_database_error(exc):
                raise
            raise DatabaseError(_database_error(exc, ctx)) from exc

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override, unused-ignore]
        """Run without click's standalone handling so that every failure — ours, click's usage
        errors, the database's — is mapped to an exit code here and nowhere else."""
        kwargs["standalone_mode"] = False
        argv = list(kwargs.get("args") or (args[0] if args else None) or sys.argv[1:])
        debug = "--debug" in argv or _env_flag("USERCTL_DEBUG")
        try:
            _refuse_undecodable(argv)
            code = super().main(*args, **kwargs)
            sys.stdout.flush()  # a closed pipe shows here, not at exit where it cannot be caught
        except (BrokenPipeError, _ClosedPipe):
            # The reader stopped reading (`userctl audit log | head -1`): that is its choice, not
            # a failure, and says nothing on a terminal nobody reads.
            _silence_stdout()
            code = 0
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


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit cannot raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _env_flag(name: str) -> bool:
    """A flag's variable as click reads it (strictly: a value that is not a boolean is false here,
    and click then refuses it as a usage error)."""
    try:
        return bool(os.environ.get(name) and click.BOOL.convert(os.environ[name], None, None))
    except click.BadParameter:
        return False


def _is_multiline(exc: UserctlError) -> bool:
    return "\n" in str(exc)


def _refuse_undecodable(argv: list[str]) -> None:
    """Refuse an argument, or a USERCTL_* variable, whose bytes are not text in the locale's
    encoding. Python hands them over anyway, each bad byte as a lone surrogate, which no database,
    digest or file can store: the first statement to meet one would fail as an "unexpected" error.
    The message names the argument, never its value: it may be a password or a code."""
    encoding = sys.getfilesystemencoding()
    named = [(_argument_name(argv, i), value) for i, value in enumerate(argv)]
    named += [(name, value) for name, value in os.environ.items() if name.startswith("USERCTL_")]
    for what, value in named:
        try:
            value.encode(encoding)
        except UnicodeEncodeError as exc:
            byte = (
                ord(exc.object[exc.start]) & 0xFF
            )  # surrogateescape keeps the byte in the low bits
            shown = encoding.upper()
            raise UsageError(
                f"{what} is not {shown} text (byte 0x{byte:02x} cannot be "
                f"decoded): give it in {shown}"
            ) from None


def _argument_name(argv: list[str], i: int) -> str:
    """How a message names argv[i]: the option it is the value of, or its position."""
    option, equals, _ = argv[i].partition("=")
    if option.startswith("--") and equals:
        return f"the value of {option}"
    if i > 0 and argv[i - 1].startswith("-") and "=" not in argv[i - 1]:
        return f"the value of {argv[i - 1]}"
    return f"argument {i + 1}"


def _unexpected(exc: Exception) -> str:
    if _is_database_error(exc):  # outside a command (its invoke turns them into DatabaseError)
        return f"Error: database error: {_database_reason(exc)}; rerun with --debug for details."
    return f"Error: unexpected {type(exc).__name__}: {exc}. Rerun with --debug for the traceback."


def _is_database_error(exc: BaseException) -> bool:
    # Without importing SQLAlchemy: a command that never loaded it (validate) cannot have raised
    # one.
    errors = sys.modules.get("sqlalchemy.exc")
    return errors is not None and isinstance(exc, errors.SQLAlchemyError)


# Commands that migrate the schema themselves: their failure is not cured by running them again.
_MIGRATING = frozenset({"db", "init"})


def _database_error(exc: Exception, ctx: click.Context) -> str:
    """What failed, in one sentence; with "run `userctl db upgrade`" only when the schema really is
    behind. Any statement can fail ("value too long", "text fields cannot contain NUL"), and on an
    up-to-date schema an upgrade hint would send the reader after the wrong cause."""
    reason = f"database error: {_database_reason(exc)}"
    app = ctx.find_object(AppContext)
    if app is None or ctx.invoked_subcommand in _MIGRATING:
        return f"{reason}; rerun with --debug for details"
    from userctl.db.migrate import revision_problem

    try:
        problem = revision_problem(app.engine())
    except Exception:  # noqa: BLE001 - the revision is unknown: say only what failed
        problem = None
    return f"{reason}; {problem}" if problem else f"{reason}; rerun with --debug for details"


def _database_reason(exc: Exception) -> str:
    """The driver's own words, on one line: psycopg's message, the text of
    pymysql's (code, text)."""
    orig = getattr(exc, "orig", None) or exc
    args: tuple[Any, ...] = getattr(orig, "args", ())
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        text = args[1]
    else:
        text = str(orig)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(orig).__name__


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
    cli.main(prog_name="userctl")
