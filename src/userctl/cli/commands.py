"""Which module holds each sub-command, and the group that imports one only when it is used."""

from __future__ import annotations

import importlib

import click

from userctl.cli.options import prepare

# Each sub-command lives in its own module, imported only when used: a pipeline running
# `userctl validate` never pays for SQLAlchemy or Alembic.
COMMANDS: dict[str, str] = {
    "init": "userctl.cli.init_cmd:init",
    "db": "userctl.cli.db_cmd:db",
    "validate": "userctl.cli.validate_cmd:validate",
    "schema": "userctl.cli.validate_cmd:schema",
    "plan": "userctl.cli.plan_cmd:plan",
    "apply": "userctl.cli.apply_cmd:apply",
    "approve": "userctl.cli.approve_cmd:approve",
    "show": "userctl.cli.show_cmd:show",
    "audit": "userctl.cli.audit_cmd:audit",
    "mfa": "userctl.cli.mfa_cmd:mfa",
    "notifications": "userctl.cli.notifications_cmd:notifications",
    "export": "userctl.cli.export_cmd:export",
    "users": "userctl.cli.views_cmd:users",
    "roles": "userctl.cli.views_cmd:roles",
    "accounts": "userctl.cli.accounts_cmd:accounts",
    "policy": "userctl.cli.policy_cmd:policy",
    "activity": "userctl.cli.activity_cmd:activity",
    "hygiene": "userctl.cli.hygiene_cmd:hygiene",
    "review": "userctl.cli.review_cmd:review",
    "evidence": "userctl.cli.evidence_cmd:evidence",
}


class LazyGroup(click.Group):
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
