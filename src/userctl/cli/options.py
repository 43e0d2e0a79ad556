"""What every command of the tree gets without asking for it, applied in one pass when a
command is first loaded (`prepare`): a USERCTL_* environment variable for each option, shown in
--help; the global options, accepted after the sub-command too; and examples at the end of
its help. (A mistyped sub-command gets click's own "Did you mean" suggestion.)

Light on purpose, like main.py: only click and the standard library.
"""

from __future__ import annotations

from typing import Any

import click
from click.core import ParameterSource

from userctl.cli.context import app
from userctl.cli.examples import EXAMPLES

PREFIX = "USERCTL"

# Options that mean the same thing wherever they appear share one variable, USERCTL_<OPTION>: a
# pipeline sets USERCTL_OPERATOR once for plan, apply and approve. Every other option (--format,
# whose choices differ per command; --yes, which a pipeline should say per command) gets the
# command-prefixed name of click's auto_envvar_prefix, USERCTL_<COMMAND>[_<SUB>]_<OPTION>, but
# from the long flag (USERCTL_PLAN_FORMAT) rather than the parameter's name (`fmt`).
SHARED = frozenset(
    {
        "DATABASE_URL",
        "ORGANIZATION",
        "NO_COLOR",
        "DEBUG",
        "CONNECT_TIMEOUT",
        "FILE",
        "OPERATOR",
        "OTP_CODE",
        "LOCK_TIMEOUT",
        "MAX_AGE",
        "ALLOW_MASS_REMOVAL",
        "NO_PRUNE",
        "REPLACE",
        "SMTP_FROM",
        "INVITE_BASE_URL",
    }
)

# Variables that are not options. The secret ones never become an option: a value on the command
# line lands in the shell history and the process list.
ENVIRONMENT: dict[str, str] = {
    "USERCTL_SECRET_KEY": "encrypts TOTP secrets at rest (secret)",
    "USERCTL_AUDIT_KEY": (
        "HMAC key of the audit chain: audit events carry an HMAC, audit verify checks it (secret)"
    ),
    "USERCTL_SMTP_URL": (
        "SMTP server for invitations, smtp[s|+starttls]://[user:password@]host[:port] (secret)"
    ),
    "USERCTL_AUDIT_SIGNING_KEY": (
        "Ed25519 private key (a file path, or the key's text): every write appends a signed "
        "checkpoint of the audit chain (secret)"
    ),
}


def envvar_name(path: tuple[str, ...], option: click.Option) -> str:
    """The variable of `option` on the command at `path` (e.g. ("audit", "verify"))."""
    longest = max(option.opts, key=len)
    key = longest.lstrip("-").upper().replace("-", "_")
    if key in SHARED:
        return f"{PREFIX}_{key}"
    return "_".join([PREFIX, *(part.upper().replace("-", "_") for part in path), key])


def _set_global(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """A global option given after the sub-command: it wins over one given before. Only a value
    typed here counts: the variable and the default were already read by the top level."""
    if ctx.get_parameter_source(param.name or "") is ParameterSource.COMMANDLINE:
        app(ctx).set_global(param.name or "", value, f"--{(param.name or '').replace('_', '-')}")


def _global_options(root: click.Command) -> list[click.Option]:
    """Copies of the top level's options for a sub-command: same names, variables and help,
    their values handed to the shared AppContext instead of the command's function."""
    copies = []
    for param in root.params:
        if not isinstance(param, click.Option) or not param.expose_value:
            continue
        copies.append(
            click.Option(
                param.opts,
                type=param.type,
                is_flag=param.is_flag,
                envvar=param.envvar,
                show_envvar=True,
                help=param.help,
                metavar=param.metavar,
                expose_value=False,
                callback=_set_global,
            )
        )
    return copies


def epilog(path: tuple[str, ...]) -> str:
    lines = EXAMPLES.get(" ".join(path), ())
    # \b keeps click from re-wrapping the examples into one paragraph.
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines) if lines else ""


def prepare(command: click.Command, path: tuple[str, ...], root: click.Command) -> None:
    """Give `command` (and, for a group, its sub-commands) what the module doc lists. Once per
    command object: a lazily loaded command is prepared when first asked for."""
    if getattr(command, "_userctl_prepared", False):
        return
    command._userctl_prepared = True  # type: ignore[attr-defined]
    if path:
        command.params.extend(_global_options(root))
    for param in command.params:
        if isinstance(param, click.Option) and param.expose_value:
            param.envvar = param.envvar or envvar_name(path, param)
        if isinstance(param, click.Option):
            param.show_envvar = True
    command.epilog = command.epilog or epilog(path)
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            prepare(sub, (*path, name), root)


def environment_epilog() -> str:
    """The top level's note on the variables that are not options."""
    rows = "\n".join(f"  {name}: {what}" for name, what in ENVIRONMENT.items())
    return (
        "\b\nEnvironment (besides each option's variable, shown with it):\n"
        + rows
        + "\n  NO_COLOR: any value disables colour"
    )
