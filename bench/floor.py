"""The floor of each benchmarked step: the least work any tool doing the step must do, as a whole
process of its own (interpreter start-up included, as for `userctl`), with the raw driver
(sqlite3, psycopg, PyMySQL) and no SQLAlchemy, userctl or ORM import.

    python bench/floor.py parse FILE             # validate: parse the file with yaml-rs
    python bench/floor.py read DB ORG_ID [FILE]  # plan (FILE), export / users list: the users
                                                 #   and user_bank_accounts rows of the organization
    python bench/floor.py write DB ORG_ID FILE   # apply: parse, read, then write every row the
                                                 #   desired state changes with executemany in one
                                                 #   transaction, plus hashing one audit event per
                                                 #   change; rolled back so that userctl's step
                                                 #   starts from the same state
    python bench/floor.py events DB ORG_ID       # audit verify / log: read the event rows

DB is JSON: {"backend": "sqlite", "path": ...}, {"backend": "postgresql", "conninfo": ...} or
{"backend": "mysql", "host", "port", "user", "database"}. Prints the number of rows it handled.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
from typing import Any, Iterator

UPDATABLE = (
    "first_name",
    "last_name",
    "id_type",
    "id_number",
    "phone",
    "status",
    "two_factor",
    "force_password_reset",
)
BATCH = 2000


class Db:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.backend = spec["backend"]
        if self.backend == "sqlite":
            import sqlite3

            self.conn: Any = sqlite3.connect(spec["path"], isolation_level=None)
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.execute("BEGIN")
        elif self.backend == "postgresql":
            import psycopg

            self.conn = psycopg.connect(spec["conninfo"])
        else:
            import pymysql  # type: ignore[import-untyped]

            self.conn = pymysql.connect(
                host=spec["host"],
                port=spec["port"],
                user=spec["user"],
                database=spec["database"],
                charset="utf8mb4",
            )

    def sql(self, text: str) -> str:
        if self.backend == "mysql":  # reserved words there
            text = text.replace("before, after", "`before`, `after`").replace(
                "SELECT key,", "SELECT `key`,"
            )
        return text if self.backend == "sqlite" else text.replace("?", "%s")

    def rows(self, text: str, params: tuple[Any, ...] = ()) -> list[Any]:
        cur = self.conn.cursor()
        cur.execute(self.sql(text), params)
        return list(cur.fetchall())

    def stream(self, text: str, params: tuple[Any, ...] = ()) -> Iterator[Any]:
        """Rows in bounded batches (PostgreSQL: a named server-side cursor; MariaDB: unbuffered)."""
        if self.backend == "postgresql":
            cur: Any = self.conn.cursor(name="floor")
        elif self.backend == "mysql":
            import pymysql.cursors  # type: ignore[import-untyped]

            cur = self.conn.cursor(pymysql.cursors.SSCursor)
        else:
            cur = self.conn.cursor()
        cur.execute(self.sql(text), params)
        while batch := cur.fetchmany(BATCH):
            yield from batch
        cur.close()

    def many(self, text: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            cur = self.conn.cursor()
            for start in range(0, len(rows), BATCH):
                cur.executemany(self.sql(text), rows[start : start + BATCH])


def read(db: Db, org_id: int) -> tuple[list[Any], list[Any]]:
    users = db.rows(
        f"SELECT {', '.join(_USER_COLUMNS)} FROM users WHERE organization_id = ?", (org_id,)
    )
    pairs = db.rows(
        "SELECT uba.user_id, uba.bank_account_id FROM user_bank_accounts uba JOIN users u ON u.id "
        "= uba.user_id WHERE u.organization_id = ?",
        (org_id,),
    )
    return users, pairs


def parse(path: str) -> dict[str, Any]:
    import yaml_rs

    with open(path, encoding="utf-8") as fh:
        document: Any = yaml_rs.loads(fh.read())
        return dict(document)


def write(db: Db, org_id: int, desired: dict[str, Any]) -> int:
    """Every row the desired users change, written as apply writes them, and one hashed audit
    event per change; returns the number of changes."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    users, _pairs = read(db, org_id)
    live = {_field(r, "email"): r for r in users}
    roles = dict(db.rows("SELECT name, id FROM roles WHERE organization_id = ?", (org_id,)))
    new_roles = [name for name in desired["roles"] if name not in roles]
    db.many(
        "INSERT INTO roles (organization_id, name, description) VALUES (?, ?, ?)",
        [(org_id, name, desired["roles"][name].get("description", "")) for name in new_roles],
    )
    roles = dict(db.rows("SELECT name, id FROM roles WHERE organization_id = ?", (org_id,)))
    db.many(
        "INSERT INTO role_permissions (role_id, permission) VALUES (?, ?)",
        [(roles[name], p) for name in new_roles for p in desired["roles"][name]["permissions"]],
    )
    banks = dict(db.rows("SELECT key, id FROM bank_accounts WHERE organization_id = ?", (org_id,)))
    wanted = desired["users"]
    creates = [e for e in wanted if e not in live]
    deletes = [live[e] for e in live if e not in wanted]
    updates = [
        (e, wanted[e])
        for e in wanted
        if e in live and wanted[e]["first_name"] != _field(live[e], "first_name")
    ]
    events: list[dict[str, Any]] = [
        {"action": "role.create", "address": name, "after": desired["roles"][name]}
        for name in new_roles
    ]
    db.many(
        "UPDATE users SET first_name = ?, updated_at = ? WHERE id = ?",
        [(u["first_name"], now, _field(live[e], "id")) for e, u in updates],
    )
    events += [
        {"action": "user.update", "address": e, "after": {"first_name": u["first_name"]}}
        for e, u in updates
    ]
    gone = [_field(r, "id") for r in deletes]
    for start in range(
        0, len(gone), 500
    ):  # IN lists: notifications.user_id has no index to probe row by row
        part = tuple(gone[start : start + 500])
        marks = ", ".join("?" * len(part))
        for statement in (
            "DELETE FROM user_bank_accounts WHERE user_id IN ({})",
            "UPDATE notifications SET user_id = NULL WHERE user_id IN ({})",
            "DELETE FROM users WHERE id IN ({})",
        ):
            db.conn.cursor().execute(db.sql(statement.format(marks)), part)
    events += [{"action": "user.delete", "address": _field(r, "email")} for r in deletes]
    db.many(
        "INSERT INTO users (organization_id, email, id_type, id_number, phone, first_name, "
        "last_name, role_id, status, two_factor, totp_enrolled, force_password_reset, created_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                org_id,
                e,
                u["id_type"],
                u["id_number"],
                u["phone"],
                u["first_name"],
                u["last_name"],
                roles[u["role"]],
                u["status"],
                u["two_factor"],
                False,
                u["force_password_reset"],
                now,
                now,
            )
            for e in creates
            for u in (wanted[e],)
        ],
    )
    ids = dict(db.rows("SELECT email, id FROM users WHERE organization_id = ?", (org_id,)))
    assigned = [(ids[e], banks[k]) for e in creates for k in wanted[e].get("bank_accounts", [])]
    db.many("INSERT INTO user_bank_accounts (user_id, bank_account_id) VALUES (?, ?)", assigned)
    db.many(
        "INSERT INTO notifications (organization_id, user_id, recipient, kind, status, attempts, "
        "created_at) VALUES (?, ?, ?, 'invitation', 'queued', 0, ?)",
        [(org_id, ids[e], e, now) for e in creates],
    )
    events += [{"action": "user.create", "address": e, "after": wanted[e]} for e in creates]
    events += [
        {"action": "assignment.assign", "address": f"{e}/{k}"}
        for e in creates
        for k in wanted[e].get("bank_accounts", [])
    ]
    head, rows = "0" * 64, []
    for seq, event in enumerate(events, start=1):
        before = None
        after = (
            None
            if event.get("after") is None
            else json.dumps(event["after"], sort_keys=True, separators=(",", ":"))
        )
        payload = json.dumps(
            {
                "organization_id": org_id,
                "seq": seq,
                "time": now.isoformat() + "Z",
                "operator": "floor",
                "verified_by": "totp",
                "plan_digest": None,
                "action": event["action"],
                "address": event["address"],
                "before": before,
                "after": after,
                "prev_hash": head,
                "operator_verified": True,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8")
        digest = hashlib.sha256(payload).hexdigest()
        rows.append(
            (
                org_id,
                -seq,
                now,
                "floor",
                "totp",
                True,
                None,
                event["action"],
                event["address"],
                before,
                after,
                head,
                digest,
            )
        )
        head = digest
    db.many(
        "INSERT INTO audit_events (organization_id, seq, created_at, operator, verified_by, "
        "operator_verified, plan_digest, action, address, before, after, prev_hash, hash) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    db.conn.rollback()
    return len(events)


def _field(row: Any, name: str) -> Any:
    return row[_USER_COLUMNS.index(name)]


# Every column of the users table (db/tables.py), in the order `read` selects them.
_USER_COLUMNS = (
    "id",
    "organization_id",
    "email",
    "id_type",
    "id_number",
    "phone",
    "first_name",
    "last_name",
    "role_id",
    "status",
    "two_factor",
    "totp_enrolled",
    "force_password_reset",
    "created_at",
    "updated_at",
)


def main(argv: list[str]) -> None:
    kind = argv[0]
    if kind == "parse":
        print(len(parse(argv[1])["users"]))
        return
    db = Db(json.loads(argv[1]))
    org_id = int(argv[2])
    if kind == "read":
        if len(argv) > 3:
            parse(argv[3])
        users, pairs = read(db, org_id)
        print(len(users) + len(pairs))
    elif kind == "write":
        print(write(db, org_id, parse(argv[3])))
    elif kind == "events":
        print(
            sum(
                1
                for _ in db.stream(
                    "SELECT * FROM audit_events WHERE organization_id = ? ORDER BY seq, id",
                    (org_id,),
                )
            )
        )
    else:
        raise SystemExit(f"unknown floor {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
