"""Every step a large organization takes, as a whole `userctl` process, next to its floor measured
in the same run (bench/floor.py: the least work the step needs, with the raw driver), on SQLite,
PostgreSQL and MariaDB (the servers when reachable; each run creates its own databases and drops
them after). Absolute seconds differ between machines and minutes; the ratio to the floor is what
carries over.

    python bench/bench.py             # 10k and 100k users, audit log of 10k and 1M events,
                                      # 8 organizations at once
    python bench/bench.py --quick     # 10k users and 10k events only
    python bench/bench.py --sizes 50000 --backends sqlite,postgresql --events 10000
    python bench/bench.py --quick --backends sqlite --events '' --steps plan   # plan alone

Per backend and size: `userctl init` creates the organization (untimed), then `apply -f` of the
whole file (N creates, with a real TOTP code), `plan` and `validate` of a 1%-drifted file,
`export`, `users list`, and `apply` of N mixed changes (N/2 renames, N/4 deletes, N/4 creates;
--allow-mass-removal). A read-only step runs BENCH_RUNS (default 3) times alternated with its
floor (A B A B ...), and more pairs (up to 15) while they have taken under BENCH_MIN_SECONDS
(default 8): the table has each side's median seconds and CPU, and the CPU ratio as the median
of the pairs' ratios, their range beside it. An apply runs once (it changes the
database), its floor once before it. `audit verify` and
`audit log --format json` run over an organization whose events are generated straight into
the table, chained with userctl's own hashing so that verify passes. Then 8 organizations in one
PostgreSQL database each apply 5,000 creates concurrently, against the slowest of 8 applied
one at a time. Peak MB is the process's maximum RSS (/usr/bin/time -v).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection, Iterator

import pyotp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from gen_org import BANK_ACCOUNT_KEYS, generate, user_email  # noqa: E402

from userctl.apply import audit  # noqa: E402
from userctl.db.thin import SQLITE_INSTANT  # noqa: E402
from userctl.state import canonical_json  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
# A short step (a 10k plan: 0.3 s against a 0.15 s floor) runs more pairs, until its pairs have
# taken this many seconds or there are MAX_PAIRS: on a 2-core machine one pair of such short
# processes can swing by half (1.5-2.7x in one run at stop 24), and the median of three did too.
MIN_PAIRED_SECONDS = float(os.environ.get("BENCH_MIN_SECONDS", "8"))
MAX_PAIRS = 15
ADMIN = user_email(0)
PYTHON = sys.executable
USERCTL = str(Path(sys.executable).with_name("userctl"))
AUDIT_ORG_ID = 900
AUDIT_SLUG = "audit-bench"
TIME = "/usr/bin/time"


# --- databases ----------------------------------------------------------------------------------


@dataclass
class Target:
    """One fresh database of one backend: the URL userctl is given and the spec floor.py is."""

    backend: str
    url: str
    spec: dict[str, Any]
    drop: Callable[[], None]


def sqlite_target(tmp: Path, name: str) -> Target:
    path = tmp / f"{name}.db"
    return Target(
        "sqlite",
        f"sqlite:///{path}",
        {"backend": "sqlite", "path": str(path)},
        lambda: path.unlink(missing_ok=True),
    )


def postgresql_target(name: str) -> Target:
    import psycopg

    with psycopg.connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True, connect_timeout=3
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return Target(
        "postgresql",
        f"postgresql://postgres@127.0.0.1:5432/{name}",
        {
            "backend": "postgresql",
            "conninfo": f"host=127.0.0.1 port=5432 user=postgres dbname={name}",
        },
        drop,
    )


def mariadb_target(name: str) -> Target:
    import pymysql  # type: ignore[import-untyped]

    def admin(sql: str) -> None:
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", connect_timeout=3)
        try:
            conn.cursor().execute(sql)
        finally:
            conn.close()

    admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    return Target(
        "mariadb",
        f"mysql://root@127.0.0.1:3306/{name}",
        {"backend": "mysql", "host": "127.0.0.1", "port": 3306, "user": "root", "database": name},
        lambda: admin(f"DROP DATABASE IF EXISTS `{name}`"),
    )


def make_target(backend: str, tmp: Path, label: str) -> Target:
    name = f"userctl_bench_{os.getpid()}_{secrets.token_hex(3)}_{label}"
    if backend == "sqlite":
        return sqlite_target(tmp, name)
    return postgresql_target(name) if backend == "postgresql" else mariadb_target(name)


def reachable(backend: str) -> bool:
    try:
        if backend == "postgresql":
            import psycopg

            psycopg.connect(
                "host=127.0.0.1 port=5432 user=postgres dbname=postgres", connect_timeout=3
            ).close()
        elif backend == "mariadb":
            import pymysql

            pymysql.connect(host="127.0.0.1", port=3306, user="root", connect_timeout=3).close()
        return True
    except Exception as exc:  # noqa: BLE001 - any failure: the backend is left out, and said so
        print(f"# {backend} not reachable ({type(exc).__name__}): left out", file=sys.stderr)
        return False


# --- processes ----------------------------------------------------------------------------------


@dataclass
class Measured:
    seconds: float
    peak_mb: float
    code: int
    out: str
    # User + system seconds of the process (of the best run, or the median of paired runs):
    # steadier than wall time on a busy machine.
    cpu: float = 0.0
    # Each run's CPU seconds, in the order run: for a pair of commands run alternately (`paired`),
    # the i-th of one was run next to the i-th of the other.
    cpus: tuple[float, ...] = ()


def _time_report(path: str) -> tuple[float, float]:
    """(peak RSS MB, user + system CPU seconds) from /usr/bin/time -v's report."""
    text = Path(path).read_text()
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    cpu = sum(float(m) for m in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", text))
    return (int(rss.group(1)) / 1024 if rss else 0.0), cpu


@dataclass
class _Run:
    seconds: float
    peak_mb: float
    cpu: float
    proc: subprocess.CompletedProcess[str]


def _timed(cmd: list[str], env: dict[str, str], report: str) -> _Run:
    start = time.perf_counter()
    proc = subprocess.run(
        [TIME, "-v", "-o", report, *cmd], env=env, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    rss, cpu = _time_report(report)
    return _Run(seconds, rss, cpu, proc)


def _checked(cmd: list[str], last: subprocess.CompletedProcess[str], check: bool) -> None:
    if check and last.returncode not in (0, 2, 3):
        raise SystemExit(
            f"{' '.join(cmd[:4])}... exited {last.returncode}:\n"
            f"{last.stdout[-2000:]}\n{last.stderr[-2000:]}"
        )


def run(cmd: list[str], env: dict[str, str], runs: int = 1, check: bool = True) -> Measured:
    """The whole process under /usr/bin/time: best wall seconds of `runs` (with that run's CPU),
    their highest peak RSS."""
    with tempfile.NamedTemporaryFile(suffix=".time") as report:
        done = [_timed(cmd, env, report.name) for _ in range(runs)]
    _checked(cmd, done[-1].proc, check)
    best = min(done, key=lambda r: r.seconds)
    return Measured(
        best.seconds,
        max(r.peak_mb for r in done),
        done[-1].proc.returncode,
        done[-1].proc.stdout,
        best.cpu,
        tuple(r.cpu for r in done),
    )


def paired(
    cmd: list[str],
    floor_cmd: list[str],
    env: dict[str, str],
    runs: int = RUNS,
    check: bool = True,
    min_seconds: float = MIN_PAIRED_SECONDS,
) -> tuple[Measured, Measured]:
    """`cmd` and its floor, `runs` times each, alternately (A B A B ...): a machine whose speed
    drifts (other work, the page cache, the CPU's clock) drifts under both alike, and each pair's
    CPU ratio is taken between neighbours (Row takes their median). Then more pairs while all of
    them have taken under `min_seconds` (up to MAX_PAIRS): short steps get the pairs their noise
    needs, long ones `runs`. Each side reports its median wall and CPU seconds and its highest
    peak RSS."""
    mine: list[_Run] = []
    floors: list[_Run] = []
    with tempfile.NamedTemporaryFile(suffix=".time") as report:
        while len(mine) < runs or (
            len(mine) < MAX_PAIRS and sum(r.seconds for r in (*mine, *floors)) < min_seconds
        ):
            mine.append(_timed(cmd, env, report.name))
            floors.append(_timed(floor_cmd, env, report.name))
    _checked(cmd, mine[-1].proc, check)
    _checked(floor_cmd, floors[-1].proc, True)
    return _measured(mine), _measured(floors)


def _measured(done: list[_Run]) -> Measured:
    last = done[-1].proc
    return Measured(
        statistics.median(r.seconds for r in done),
        max(r.peak_mb for r in done),
        last.returncode,
        last.stdout,
        statistics.median(r.cpu for r in done),
        tuple(r.cpu for r in done),
    )


def environment(target: Target, organization: str | None = None) -> dict[str, str]:
    # As an installed userctl runs: bytecode cached (PYTHONDONTWRITEBYTECODE would recompile every
    # run).
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("USERCTL_")
    }
    env.update(USERCTL_DATABASE_URL=target.url, NO_COLOR="1")
    if organization:
        env["USERCTL_ORGANIZATION"] = organization
    return env


class Codes:
    """Real TOTP codes for one operator: each time step can be used once, so successive applies
    take the next step (the server accepts one step of drift), waiting when they run ahead."""

    def __init__(self, secret: str) -> None:
        self.totp = pyotp.TOTP(secret)
        self.last = 0

    def next(self) -> str:
        while True:
            now_step = int(time.time()) // 30
            step = max(now_step, self.last + 1)
            if step <= now_step + 1:
                self.last = step
                return str(self.totp.at(step * 30))
            time.sleep(1)


# --- the table ----------------------------------------------------------------------------------


@dataclass
class Row:
    step: str
    backend: str
    n: str
    mine: Measured
    floor: Measured

    def line(self) -> str:
        ratio = self.mine.seconds / self.floor.seconds if self.floor.seconds else float("nan")
        return (
            f"| {self.step} | {self.backend} | {self.n} | {self.mine.seconds:.2f} | "
            f"{self.mine.peak_mb:.0f} | {self.floor.seconds:.2f} | {ratio:.2f}× | "
            f"{self.mine.cpu:.2f} / {self.floor.cpu:.2f} | {self.cpu_ratio()} |"
        )

    def cpu_ratio(self) -> str:
        """The median of the paired runs' CPU ratios, with their range and how many pairs; a
        single run's ratio."""
        pairs = (
            [a / b for a, b in zip(self.mine.cpus, self.floor.cpus, strict=True) if b]
            if len(self.mine.cpus) == len(self.floor.cpus) > 1
            else []
        )
        if not pairs:
            return f"{self.mine.cpu / self.floor.cpu:.2f}×" if self.floor.cpu else "nan"
        return f"{statistics.median(pairs):.2f}× ({min(pairs):.2f}-{max(pairs):.2f}, {len(pairs)})"


HEADER = (
    "| step | backend | N | seconds | peak MB | floor s | ratio | client CPU s (userctl / floor) | "
    "CPU ratio |\n|---|---|---:|---:|---:|---:|---:|---:|---:|"
)


def floor(kind: str, *args: str) -> list[str]:
    return [PYTHON, str(HERE / "floor.py"), kind, *args]


def human(n: int) -> str:
    return (
        f"{n // 1_000_000}M"
        if n >= 1_000_000 and n % 1_000_000 == 0
        else f"{n // 1000}k"
        if n % 1000 == 0
        else str(n)
    )


def accounts_csv(tmp: Path) -> Path:
    """The bank accounts the generated users are assigned to, for `userctl accounts import`."""
    path = tmp / "accounts.csv"
    path.write_text(
        "key,bank,account_type,masked_number,currency\n"
        + "".join(
            f"{k},Bench Bank,savings,****{i:04d},COP\n" for i, k in enumerate(BANK_ACCOUNT_KEYS)
        )
    )
    return path


def apply_saved(
    desired: Path, tmp: Path, env: dict[str, str], codes: Codes, *options: str
) -> Measured:
    """`userctl apply PLAN` of the plan saved (untimed) by `userctl plan --out`, as the pipeline
    applies a reviewed plan. Not `apply -f FILE`: that checks the code against the time its own
    planning ended, and at 100k users on a busy machine that is past the code's validity."""
    saved = tmp / "apply-plan.json"
    run([USERCTL, "plan", "-f", str(desired), "--out", str(saved), *options], env)
    return run(
        [USERCTL, "apply", str(saved), "--operator", ADMIN, "--yes", "--otp-code", codes.next()],
        env,
    )


def register_everyone(target: Target, desired: Path) -> None:
    """What happens as invitees register: they become active, and the bank accounts the file
    gives them (deferred until then) are assigned. Otherwise every later plan would hold a
    deferred activation per user and a deferred assignment per account, and "1% drift" would be
    a plan of the whole organization."""
    import yaml_rs
    from sqlalchemy import text

    from userctl.db.engine import create_engine_for

    document: Any = yaml_rs.loads(desired.read_text(encoding="utf-8"))
    users: dict[str, Any] = document["users"]
    engine = create_engine_for(target.url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE users SET status = 'active' WHERE status = 'invited'"))
        ids: dict[str, int] = dict(conn.execute(text("SELECT email, id FROM users")).all())
        banks: dict[str, int] = dict(
            conn.execute(text("SELECT bank_accounts.key, id FROM bank_accounts")).all()
        )
        pairs = [
            {"u": ids[e], "b": banks[k]}
            for e, u in users.items()
            for k in u.get("bank_accounts", [])
        ]
        conn.execute(text("DELETE FROM user_bank_accounts"))
        if pairs:
            conn.execute(
                text("INSERT INTO user_bank_accounts (user_id, bank_account_id) VALUES (:u, :b)"),
                pairs,
            )
    engine.dispose()


def with_one_mistake(text: str) -> str:
    """The same organization with the last id_number unquoted (a number where a string goes)."""
    head, _, tail = text.rpartition('id_number: "')
    number, _, rest = tail.partition('"')
    return f"{head}id_number: 0{number}{rest}"


# --- one backend, one size ----------------------------------------------------------------------


# The steps of one organization `--steps` can pick. The creates are applied (and everyone
# registered) whichever are picked: every later step reads that organization.
STEPS = ("validate", "apply", "plan", "export", "users", "mixed")


def organization_steps(
    backend: str,
    n: int,
    tmp: Path,
    emit: Callable[[Row], None],
    steps: Collection[str] = STEPS,
) -> None:
    target = make_target(backend, tmp, human(n))
    try:
        base, drift, mixed = tmp / f"base{n}.yaml", tmp / f"drift{n}.yaml", tmp / f"mixed{n}.yaml"
        if not base.exists():
            # All active: apply creates users active only (invited); 5% inactive would be refused.
            base.write_text(generate(n, seed=1, inactive=False), encoding="utf-8")
            drift.write_text(
                generate(
                    n, seed=1, rename_every=200, drop_every=400, extra=n // 400, inactive=False
                ),
                encoding="utf-8",
            )
            mixed.write_text(
                generate(n, seed=1, rename_every=2, drop_every=4, extra=n // 4, inactive=False),
                encoding="utf-8",
            )
        accounts = accounts_csv(tmp)
        env = environment(target)
        spec = json.dumps(target.spec)
        n_label = human(n)
        init = run([USERCTL, "init", "-f", str(base), "--admin", ADMIN, "--json"], env)
        codes = Codes(json.loads(init.out)["totp_secret"])
        run([USERCTL, "accounts", "import", str(accounts), "--operator", ADMIN], env)
        org_id = "1"

        if backend == "sqlite" and "validate" in steps:  # no database: once per size
            emit(
                Row(
                    "validate",
                    "-",
                    n_label,
                    *paired(
                        [USERCTL, "validate", "-f", str(drift)], floor("parse", str(drift)), env
                    ),
                )
            )
            # A mistake sends the file to the precise parser, which locates it: what a PR author
            # waits for.
            wrong = tmp / f"wrong{n}.yaml"
            wrong.write_text(with_one_mistake(drift.read_text(encoding="utf-8")), encoding="utf-8")
            emit(
                Row(
                    "validate (1 problem)",
                    "-",
                    n_label,
                    *paired(
                        [USERCTL, "validate", "-f", str(wrong)],
                        floor("parse", str(drift)),
                        env,
                        check=False,
                    ),
                )
            )
        # The floor writes (and rolls back) the creates before they are applied: after, it would
        # find every user there and time an empty write.
        write_floor = (
            run(floor("write", spec, org_id, str(base)), env) if "apply" in steps else None
        )
        created = apply_saved(base, tmp, env, codes)
        if write_floor is not None:
            emit(Row("apply (creates)", backend, n_label, created, write_floor))
        register_everyone(target, base)
        if "plan" in steps:
            emit(
                Row(
                    "plan (1% drift)",
                    backend,
                    n_label,
                    *paired(
                        [USERCTL, "plan", "-f", str(drift), "--detailed-exitcode"],
                        floor("read", spec, org_id, str(drift)),
                        env,
                    ),
                )
            )
        read_floor = floor("read", spec, org_id)
        if "export" in steps:
            emit(
                Row(
                    "export",
                    backend,
                    n_label,
                    *paired([USERCTL, "export", "-o", str(tmp / "exported.yaml")], read_floor, env),
                )
            )
        if "users" in steps:
            emit(
                Row(
                    "users list",
                    backend,
                    n_label,
                    *paired([USERCTL, "users", "list"], read_floor, env),
                )
            )
        if "mixed" in steps:
            write_floor = run(floor("write", spec, org_id, str(mixed)), env)
            emit(
                Row(
                    "apply (mixed)",
                    backend,
                    f"{n_label} ({write_floor.out.strip()} changes)",
                    apply_saved(mixed, tmp, env, codes, "--allow-mass-removal"),
                    write_floor,
                )
            )
    finally:
        target.drop()


# --- the audit log ------------------------------------------------------------------------------

AUDIT_COLUMNS = (
    "organization_id",
    "seq",
    "created_at",
    "operator",
    "verified_by",
    "operator_verified",
    "plan_digest",
    "action",
    "address",
    "before",
    "after",
    "prev_hash",
    "hash",
    "hmac",
    "reason",
    "refers_to",
)


def audit_rows(count: int) -> Iterator[tuple[Any, ...]]:
    """`count` events of one organization, chained by userctl's own hashing (audit._payload)."""
    created = dt.datetime(2026, 1, 1, 12, 0, 0)
    head = audit.GENESIS
    digest = "sha256:" + "ab" * 32
    for seq in range(1, count + 1):
        email = user_email(seq % 100_000)
        row = {
            "organization_id": AUDIT_ORG_ID,
            "seq": seq,
            "created_at": created + dt.timedelta(seconds=seq // 1000),
            "operator": ADMIN,
            "verified_by": "totp",
            "operator_verified": True,
            "plan_digest": digest,
            "action": "user.update",
            "address": f'user["{email}"]',
            "before": canonical_json({"first_name": "Ana"}),
            "after": canonical_json({"first_name": f"Ana {seq}"}),
            "prev_hash": head,
            # Every stored field the hash covers (audit._payload): a plan's --reason on some
            # events, and an expiry's deactivation naming the event it follows from on others.
            "reason": "quarterly review" if seq % 10 == 0 else None,
            "refers_to": seq - 1 if seq % 50 == 0 else None,
        }
        head = row["hash"] = hashlib.sha256(audit._payload(row)).hexdigest()
        row["hmac"] = None
        yield tuple(row[c] for c in AUDIT_COLUMNS)


def _stored(value: Any) -> Any:
    return value.strftime(SQLITE_INSTANT) if isinstance(value, dt.datetime) else value


def load_events(target: Target, count: int) -> None:
    """The organization and its `count` events, straight into the tables with the raw driver."""
    org = (
        "INSERT INTO organizations (id, slug, name, two_factor_policy, min_admins, four_eyes, "
        f"serial, created_at) VALUES ({AUDIT_ORG_ID}, '{AUDIT_SLUG}', 'Audit bench', "
        "'destructive', 1, FALSE, 0, '2026-01-01 00:00:00')"
    )
    insert = (
        f"INSERT INTO audit_events ({', '.join(AUDIT_COLUMNS)}) VALUES "
        f"({', '.join(['?'] * len(AUDIT_COLUMNS))})"
    )
    batch: list[tuple[Any, ...]] = []
    if target.backend == "sqlite":
        import sqlite3

        conn: Any = sqlite3.connect(target.spec["path"])
        conn.execute(org.replace("FALSE", "0"))
        for row in audit_rows(count):
            # The time as userctl (SQLAlchemy) stores it on SQLite, not as sqlite3's default
            # adapter would ("... 12:00:00", no fraction): `audit verify` reads that one on the
            # driver; other text it leaves to SQLAlchemy, which the benchmark would then time.
            batch.append(tuple(_stored(v) for v in row))
            if len(batch) == 10_000:
                conn.executemany(insert, batch)
                batch.clear()
        conn.executemany(insert, batch)
        conn.commit()
        conn.close()
    elif target.backend == "postgresql":
        import psycopg

        with psycopg.connect(target.spec["conninfo"]) as conn:
            conn.execute(org)
            with conn.cursor().copy(
                f"COPY audit_events ({', '.join(AUDIT_COLUMNS)}) FROM STDIN"
            ) as copy:
                for row in audit_rows(count):
                    copy.write_row(row)
    else:
        import pymysql

        spec = target.spec
        conn = pymysql.connect(
            host=spec["host"],
            port=spec["port"],
            user=spec["user"],
            database=spec["database"],
            charset="utf8mb4",
        )
        cur = conn.cursor()
        cur.execute(org)
        insert = insert.replace("?", "%s").replace("before, after", "`before`, `after`")
        for row in audit_rows(count):
            batch.append(row)
            if len(batch) == 5_000:
                cur.executemany(insert, batch)
                batch.clear()
        cur.executemany(insert, batch)
        conn.commit()
        conn.close()


def audit_steps(backend: str, count: int, tmp: Path, emit: Callable[[Row], None]) -> None:
    target = make_target(backend, tmp, f"audit{human(count)}")
    try:
        run([USERCTL, "db", "upgrade"], environment(target))
        load_events(target, count)
        env = environment(target, AUDIT_SLUG)
        verify, events_floor = paired(
            [USERCTL, "audit", "verify"],
            floor("events", json.dumps(target.spec), str(AUDIT_ORG_ID)),
            env,
        )
        if f"{count} events" not in verify.out:
            raise SystemExit(f"audit verify did not pass on {backend}: {verify.out}")
        emit(Row("audit verify", backend, human(count), verify, events_floor))
        with tempfile.TemporaryFile() as sink:  # the JSON is not kept in the bench's memory
            emit(
                Row(
                    "audit log --format json",
                    backend,
                    human(count),
                    run_to(sink, [USERCTL, "audit", "log", "--format", "json"], env),
                    events_floor,
                )
            )
    finally:
        target.drop()


def run_to(sink: Any, cmd: list[str], env: dict[str, str]) -> Measured:
    """`run` with standard output to a file: a million events' JSON is gigabytes of pipe."""
    with tempfile.NamedTemporaryFile(suffix=".time") as report:
        start = time.perf_counter()
        proc = subprocess.run(
            [TIME, "-v", "-o", report.name, *cmd],
            env=env,
            stdout=sink,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - start
        rss, cpu = _time_report(report.name)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return Measured(seconds, rss, 0, "", cpu)


# --- many organizations at once -----------------------------------------------------------------


def concurrent_steps(n_orgs: int, changes: int, tmp: Path) -> str:
    """8 organizations apply `changes` creates each, all at once, in one PostgreSQL database,
    against 8 others applied one at a time (the slowest of those is the baseline)."""
    target = make_target("postgresql", tmp, "many")
    try:
        jobs: list[tuple[Path, Codes, dict[str, str]]] = []
        for i in range(2 * n_orgs):
            slug = f"org-{i:02d}"
            path, saved = tmp / f"{slug}.yaml", tmp / f"{slug}-plan.json"
            path.write_text(
                generate(changes, seed=i, organization=slug, inactive=False), encoding="utf-8"
            )
            env = environment(target, slug)
            secret = json.loads(
                run([USERCTL, "init", "-f", str(path), "--admin", ADMIN, "--json"], env).out
            )["totp_secret"]
            run([USERCTL, "accounts", "import", str(accounts_csv(tmp)), "--operator", ADMIN], env)
            run(
                [USERCTL, "plan", "-f", str(path), "--out", str(saved)], env
            )  # saved untimed, see apply_saved
            jobs.append((saved, Codes(secret), env))

        def apply_cmd(
            saved: Path, codes: Codes
        ) -> list[str]:  # the code taken just before the apply starts
            return [
                USERCTL,
                "apply",
                str(saved),
                "--operator",
                ADMIN,
                "--yes",
                "--otp-code",
                codes.next(),
            ]

        alone = [run(apply_cmd(saved, codes), env) for saved, codes, env in jobs[:n_orgs]]
        cpu_before = os.times()
        start = time.perf_counter()
        procs = [
            subprocess.Popen(
                apply_cmd(saved, codes),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for saved, codes, env in jobs[n_orgs:]
        ]
        errors = [p.communicate()[1] for p in procs]
        wall = time.perf_counter() - start
        cpu_after = os.times()
        failed = [e for p, e in zip(procs, errors) if p.returncode != 0]
        if failed:
            raise SystemExit(f"{len(failed)} concurrent applies failed: {failed[0][-2000:]}")
        cpu = (cpu_after.children_user - cpu_before.children_user) + (
            cpu_after.children_system - cpu_before.children_system
        )
        slowest = max(m.seconds for m in alone)
        cores = os.cpu_count() or 1
        bound = max(slowest, cpu / cores)
        return (
            f"| {n_orgs} organizations × {changes:,} creates, PostgreSQL | {wall:.1f} s | slowest "
            f"alone {slowest:.1f} s | {wall / slowest:.2f}× | client CPU {cpu:.1f} s / {cores} "
            f"cores = {cpu / cores:.1f} s | {wall / bound:.2f}× |"
        )
    finally:
        target.drop()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="10k users and 10k events only, no concurrency run"
    )
    parser.add_argument("--sizes", help="comma-separated user counts (default 10000,100000)")
    parser.add_argument(
        "--events", help="comma-separated audit event counts (default 10000,1000000)"
    )
    parser.add_argument("--backends", default="sqlite,postgresql,mariadb")
    parser.add_argument(
        "--big-events-backends",
        default="sqlite,postgresql",
        help="backends that get the event counts above 10k (MariaDB's load alone is minutes)",
    )
    parser.add_argument("--no-concurrency", action="store_true")
    parser.add_argument(
        "--steps",
        default=",".join(STEPS),
        help=f"comma-separated steps of each organization, of {','.join(STEPS)} (default all); "
        "the creates are applied as setup whichever are picked",
    )
    args = parser.parse_args(argv)
    steps = [s for s in args.steps.split(",") if s]
    if unknown := sorted(set(steps) - set(STEPS)):
        parser.error(f"--steps: unknown {', '.join(unknown)}; pick from {', '.join(STEPS)}")
    # Stopped with kill: unwind, so that every database this run created is dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = [
        int(s)
        for s in (
            args.sizes if args.sizes is not None else "10000" if args.quick else "10000,100000"
        ).split(",")
        if s
    ]
    events = [
        int(s)
        for s in (
            args.events if args.events is not None else "10000" if args.quick else "10000,1000000"
        ).split(",")
        if s
    ]
    backends = [b for b in args.backends.split(",") if b == "sqlite" or reachable(b)]
    started = time.perf_counter()
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
        f"{RUNS} runs of each read-only step alternated with its floor's, more for a short one "
        f"(up to {MAX_PAIRS} pairs or {MIN_PAIRED_SECONDS:g} s; medians, then the pairs' range "
        "and count)",
        flush=True,
    )
    print(HEADER, flush=True)
    emit: Callable[[Row], None] = lambda row: print(row.line(), flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            for backend in backends:
                organization_steps(backend, n, Path(tmp), emit, steps)
        for count in events:
            for backend in backends:
                if count <= 10_000 or backend in args.big_events_backends.split(","):
                    audit_steps(backend, count, Path(tmp), emit)
        if not (args.quick or args.no_concurrency) and "postgresql" in backends:
            print()
            print(
                "| run | wall | baseline | ratio | CPU-bound floor | ratio "
                "to max(slowest, CPU/cores) |"
            )
            print("|---|---:|---:|---:|---:|---:|")
            print(concurrent_steps(8, 5000, Path(tmp)), flush=True)
    print(f"\n# whole run: {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
