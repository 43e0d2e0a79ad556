"""Execute a plan's changes against the database: a dispatch table by (kind, action), with
consecutive changes of one kind written in batches (CHUNK rows at a time; the bulk inserts and
updates as tuples through the driver's executemany, db/driver.py), in the plan's order. Each
handler reads a change's record as its kind's typed record. Progress is reported per batch, so a
bar keeps moving through one big group."""

from __future__ import annotations

import datetime as dt
from itertools import groupby
from typing import Any, Callable, Final, Iterator, Sequence, TypeVar

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection

from userctl.clock import naive_utc
from userctl.db import models, tables
from userctl.db.batches import chunks
from userctl.db.driver import driver_rows, insert_many, update_many
from userctl.db.rows import insert_role
from userctl.db.rows import stored as _stored
from userctl.plan import ACTION_TABLE, Change, field_of
from userctl.state import GATE_RULES, canonical_json, role_from_record

T = TypeVar("T")
CHUNK = 1000
# The columns create_users writes, in the order of its tuples: every field of a user change's
# record (state.USER_COLUMNS, a test holds them to it) and what the row adds.
USER_INSERT: Final = (
    "organization_id",
    "email",
    "first_name",
    "last_name",
    "id_type",
    "id_number",
    "phone",
    "status",
    "two_factor",
    "force_password_reset",
    "totp_enrolled",
    "expires",
    "role_id",
    "created_at",
    "updated_at",
)
Handler = Callable[["Executor", Sequence[Change]], None]
Progress = Callable[[int], None]


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    return chunks(items, CHUNK)


class Executor:
    def __init__(self, conn: Connection, organization_id: int, now: dt.datetime) -> None:
        self.conn = conn
        self.org_id = organization_id
        self.now = naive_utc(now)
        self.created: list[tuple[str, int]] = []
        self._progress: Progress | None = None
        self._role_ids = self._ids(models.Role.name, models.Role.id, models.Role.organization_id)
        # By identity, as the plan names users: a row the platform stored as `View1@Hidden.co`
        # is the plan's user["view1@hidden.co"].
        self._user_ids = self._ids(
            models.User.email_key, models.User.id, models.User.organization_id
        )
        self._bank_ids = self._ids(
            models.BankAccount.key, models.BankAccount.id, models.BankAccount.organization_id
        )

    def _ids(self, key: Any, ident: Any, org_column: Any) -> dict[str, int]:
        return dict(driver_rows(self.conn, select(key, ident).where(org_column == self.org_id)))

    def run(
        self, changes: Sequence[Change], progress: Progress | None = None
    ) -> list[tuple[str, int]]:
        """Apply `changes` (already in plan order); returns (email, id) of every user created.
        `progress` gets the number of changes done after each batch; the numbers add up to
        len(changes)."""
        self._progress = progress
        try:
            for (kind, action), group in groupby(changes, key=lambda c: (c.kind, c.action)):
                HANDLERS[(kind, action)](self, list(group))
        finally:
            self._progress = None
        return self.created

    def _done(self, count: int) -> None:
        """Every handler reports each change exactly once, after the batch that wrote it."""
        if self._progress is not None and count:
            self._progress(count)

    def bump_serial(self) -> int:
        org = models.Organization
        self.conn.execute(update(org).where(org.id == self.org_id).values(serial=org.serial + 1))
        return int(self.conn.execute(select(org.serial).where(org.id == self.org_id)).scalar_one())

    # --- roles ---------------------------------------------------------------------------------

    def create_roles(self, changes: Sequence[Change]) -> None:
        for c in changes:
            role = role_from_record(c.role_after())
            self._role_ids[c.key[0]] = insert_role(self.conn, self.org_id, role)
            self._done(1)

    def update_roles(self, changes: Sequence[Change]) -> None:
        perms = models.RolePermission
        for c in changes:
            role_id = self._role_ids[c.key[0]]
            if "description" in c.diff:
                self.conn.execute(
                    update(models.Role)
                    .where(models.Role.id == role_id)
                    .values(description=c.diff["description"]["after"])
                )
            permissions = field_of(c.diff, "permissions")
            if permissions.get("added"):
                self.conn.execute(
                    insert(perms),
                    [{"role_id": role_id, "permission": p} for p in permissions["added"]],
                )
            if permissions.get("removed"):
                self.conn.execute(
                    delete(perms).where(
                        perms.role_id == role_id, perms.permission.in_(permissions["removed"])
                    )
                )
            self._done(1)

    def delete_roles(self, changes: Sequence[Change]) -> None:
        ids = [self._role_ids.pop(c.key[0]) for c in changes]
        self.conn.execute(
            delete(models.RolePermission).where(models.RolePermission.role_id.in_(ids))
        )
        self.conn.execute(delete(models.Role).where(models.Role.id.in_(ids)))
        self._done(len(ids))

    # --- users ---------------------------------------------------------------------------------

    def create_users(self, changes: Sequence[Change]) -> None:
        org, now, role_ids = self.org_id, self.now, self._role_ids
        emails = []
        for part in _chunks(changes):
            rows = []
            for c in part:
                a = c.user_after()
                emails.append(a["email"])
                rows.append(
                    (
                        org,
                        a["email"],
                        a["first_name"],
                        a["last_name"],
                        a["id_type"],
                        a["id_number"],
                        a["phone"],
                        a["status"],
                        a["two_factor"],
                        a["force_password_reset"],
                        # A new row never has an authenticator, whatever a change's record says.
                        False,
                        _stored("expires", a["expires"]),
                        role_ids[a["role"]],
                        now,
                        now,
                    )
                )
            insert_many(self.conn, tables.users, USER_INSERT, rows)
            self._done(len(part))
        # The new rows' ids, read back once for the group, as the executor read every id of the
        # organization when it started: one pass over the rows rather than one IN (...) per batch.
        user = models.User
        self._user_ids = self._ids(user.email_key, user.id, user.organization_id)
        self.created.extend((e, self._user_ids[e]) for e in emails)

    def replace_users(self, changes: Sequence[Change]) -> None:
        self._delete_user_rows([self._user_ids.pop(c.key[0]) for c in changes])
        self.create_users(changes)

    def update_users(self, changes: Sequence[Change]) -> None:
        """update / change_role / activate / deactivate / set_two_factor / disable_two_factor:
        set the fields of each change's diff; rows setting the same fields share one statement."""
        by_fields: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        for c in changes:
            values = {name: _stored(name, d["after"]) for name, d in c.diff.items()}
            if "role" in values:
                values["role_id"] = self._role_ids[values.pop("role")]
            values["updated_at"] = self.now
            fields = tuple(sorted(values))
            by_fields.setdefault(fields, []).append(
                (*(values[f] for f in fields), self._user_ids[c.key[0]])
            )
        for fields, rows in by_fields.items():
            for part in _chunks(rows):
                update_many(self.conn, tables.users, fields, "id", part)
                self._done(len(part))
        disabled = [self._user_ids[c.key[0]] for c in changes if c.action == "disable_two_factor"]
        for ids in _chunks(disabled):
            # Disabling 2FA removes the enrolled authenticator (studio guide).
            self.conn.execute(delete(models.TotpSecret).where(models.TotpSecret.user_id.in_(ids)))

    def delete_users(self, changes: Sequence[Change]) -> None:
        self._delete_user_rows([self._user_ids.pop(c.key[0]) for c in changes], report=True)

    def _delete_user_rows(self, ids: list[int], *, report: bool = False) -> None:
        for part in _chunks(ids):
            # Explicit rather than trusting ON DELETE CASCADE, which SQLite enforces only per
            # connection.
            for column in (
                models.UserBankAccount.user_id,
                models.TotpSecret.user_id,
                models.OtpUse.user_id,
                models.Approval.approver_id,
            ):
                self.conn.execute(delete(column.table).where(column.in_(part)))
            self.conn.execute(
                update(models.Notification)
                .where(models.Notification.user_id.in_(part))
                .values(user_id=None)
            )
            self.conn.execute(delete(models.User).where(models.User.id.in_(part)))
            if report:  # a replace reports its users once, when they are created again
                self._done(len(part))

    # --- policies ------------------------------------------------------------------------------

    def create_policies(self, changes: Sequence[Change]) -> None:
        self.conn.execute(
            insert(models.Policy),
            [
                {
                    "organization_id": self.org_id,
                    "rule": c.key[0],
                    "name": c.key[1],
                    "value": canonical_json(c.policy_after()["value"]),
                }
                for c in changes
            ],
        )
        self._done(len(changes))

    def update_policies(self, changes: Sequence[Change]) -> None:
        p, org = models.Policy, models.Organization
        for c in changes:
            if c.key[0] in GATE_RULES:
                # The gate's settings are the organization's columns of the same names.
                self.conn.execute(
                    update(org)
                    .where(org.id == self.org_id)
                    .values({c.key[0]: c.policy_after()["value"]})
                )
                continue
            self.conn.execute(
                update(p)
                .where(p.organization_id == self.org_id, p.rule == c.key[0], p.name == c.key[1])
                .values(value=canonical_json(c.policy_after()["value"]))
            )
        self._done(len(changes))

    def delete_policies(self, changes: Sequence[Change]) -> None:
        p = models.Policy
        for c in changes:
            self.conn.execute(
                delete(p).where(
                    p.organization_id == self.org_id, p.rule == c.key[0], p.name == c.key[1]
                )
            )
        self._done(len(changes))

    # --- assignments ---------------------------------------------------------------------------

    def _pairs(self, changes: Sequence[Change]) -> list[dict[str, int]]:
        return [
            {"b_user": self._user_ids[c.key[0]], "b_bank": self._bank_ids[c.key[1]]}
            for c in changes
        ]

    def assign(self, changes: Sequence[Change]) -> None:
        for part in _chunks(changes):
            insert_many(
                self.conn,
                tables.user_bank_accounts,
                ("user_id", "bank_account_id"),
                [(p["b_user"], p["b_bank"]) for p in self._pairs(part)],
            )
            self._done(len(part))

    def unassign(self, changes: Sequence[Change]) -> None:
        uba = models.UserBankAccount
        stmt = delete(uba).where(
            uba.user_id == bindparam("b_user"), uba.bank_account_id == bindparam("b_bank")
        )
        for part in _chunks(changes):
            self.conn.execute(stmt, self._pairs(part))
            self._done(len(part))


# One handler per row of plan.ACTION_TABLE (a test holds them to it); the user changes that
# only set fields of the row share one.
HANDLERS: dict[tuple[str, str], Handler] = {
    ("role", "create"): Executor.create_roles,
    ("role", "update"): Executor.update_roles,
    ("role", "delete"): Executor.delete_roles,
    ("user", "create"): Executor.create_users,
    ("user", "replace"): Executor.replace_users,
    ("user", "delete"): Executor.delete_users,
    **{
        key: Executor.update_users
        for key in ACTION_TABLE
        if key[0] == "user" and key[1] not in ("create", "replace", "delete")
    },
    ("assignment", "assign"): Executor.assign,
    ("assignment", "unassign"): Executor.unassign,
    ("policy", "create"): Executor.create_policies,
    ("policy", "update"): Executor.update_policies,
    ("policy", "delete"): Executor.delete_policies,
}
