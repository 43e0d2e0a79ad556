"""What signed checkpoints cost a write: `audit.append_events` of a batch of N events, with and
without USERCTL_AUDIT_SIGNING_KEY, on a migrated SQLite database (and PostgreSQL when
USERCTL_TEST_POSTGRES_URL points at a scratch database). A write signs once, whatever its size:
the difference is one key load, one Ed25519 signature and one INSERT, and does not grow with N.

    python bench/bench_checkpoints.py             # batches of 1, 100 and 10,000 events
    python bench/bench_checkpoints.py --runs 50
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from userctl.apply import signing
from userctl.apply.audit import AuditRecord, append_events
from userctl.db import migrate
from userctl.db.engine import create_engine_for
from userctl.db.tables import audit_checkpoints, organizations

NOW = dt.datetime(2026, 12, 6, 12, 0, 0)


def records(n: int) -> list[AuditRecord]:
    return [
        AuditRecord("ana@acme.co", "totp", "user.update", f'user["u{i}@acme.co"]', after={"i": i})
        for i in range(n)
    ]


def median_write(url: str, n: int, runs: int) -> float:
    """The median seconds of one write transaction appending `n` events."""
    engine = create_engine_for(url)
    with engine.begin() as conn:
        inserted = conn.execute(
            sa.insert(organizations).values(slug=f"bench-{n}-{time.time_ns()}", name="bench")
        ).inserted_primary_key
        assert inserted is not None
        org_id = inserted[0]
    batch = records(n)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        with engine.begin() as conn:
            append_events(conn, org_id, batch, NOW)
        times.append(time.perf_counter() - started)
    engine.dispose()
    return statistics.median(times)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--sizes", default="1,100,10000")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "key"
        private, _, _ = signing.generate()
        key.write_text(private, encoding="utf-8")
        key.chmod(0o600)
        urls = {"sqlite": f"sqlite:///{tmp}/bench.db"}
        if os.environ.get("USERCTL_TEST_POSTGRES_URL"):
            urls["postgresql"] = os.environ["USERCTL_TEST_POSTGRES_URL"]
        print("| backend | events per write | unsigned ms | signed ms | checkpoint ms |")
        print("|---|---:|---:|---:|---:|")
        for backend, url in urls.items():
            migrate.upgrade(create_engine_for(url))
            for n in (int(s) for s in args.sizes.split(",")):
                runs = max(3, args.runs if n <= 100 else args.runs // 5)
                os.environ.pop(signing.ENV_SIGNING_KEY, None)
                plain = median_write(url, n, runs)
                os.environ[signing.ENV_SIGNING_KEY] = str(key)
                signed = median_write(url, n, runs)
                print(
                    f"| {backend} | {n:,} | {plain * 1000:.2f} | {signed * 1000:.2f} | "
                    f"{(signed - plain) * 1000:+.2f} |"
                )
            engine = create_engine_for(url)
            with engine.connect() as conn:
                count = conn.execute(sa.select(sa.func.count()).select_from(audit_checkpoints))
                print(f"\n{backend}: {count.scalar_one()} checkpoints for all signed writes")
            engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1:])
