"""The benchmark's audit log (bench/bench.py) is generated straight into the table with the raw
driver and chained by userctl's own hashing: `audit verify` must accept it, or the 1M-event part
of the benchmark cannot run (its rows once lacked `reason` and `refers_to`)."""

from __future__ import annotations

from pathlib import Path

from userctl.apply import audit
from userctl.db import migrate, thin
from userctl.db.engine import create_engine_for


def test_the_benchmarks_generated_events_verify(tmp_path: Path) -> None:
    from bench import bench

    target = bench.sqlite_target(tmp_path, "events")
    engine = create_engine_for(target.url)
    try:
        migrate.upgrade(engine)
        bench.load_events(target, 120)
        with engine.connect() as conn:
            result = audit.verify_chain(conn, bench.AUDIT_ORG_ID, batch_size=50)
            events = audit.list_events(conn, bench.AUDIT_ORG_ID)
    finally:
        engine.dispose()
    assert result.ok and result.events == 120, result.problem
    # On the raw driver too, as `audit verify` reads a chain userctl wrote: the times stored as
    # SQLAlchemy stores them (other text would send the benchmark's verify through SQLAlchemy).
    found = thin.scan_chain(target.url, bench.AUDIT_SLUG, None, None)
    assert found is not None and found[1].bad is None and found[1].events == 120
    # Every field the hash covers is exercised: a reason on some events, a reference on others.
    assert sum(e["reason"] is not None for e in events) == 12
    assert [e["refers_to"] for e in events if e["refers_to"] is not None] == [49, 99]
