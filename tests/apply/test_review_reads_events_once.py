"""`review attest` re-derives the saved report under the organization lock
(`reviews.rederived_problem`, DESIGN §8 invariant 5). It read the whole audit log once to find the
events after the report's head, and again to re-derive the report: twice the rows, under the lock,
on an organization whose log only grows. Now once, and the verdict is the same."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.apply.apply_helpers import ORG, build_org
from tests.conftest import Factory
from userctl.apply import audit
from userctl.apply.reviews import read_report, rederived_problem
from userctl.clock import utcnow
from userctl.db.engine import begin_read
from userctl.db.snapshot import read_organization


def test_rederiving_a_report_reads_the_audit_log_once(factory: Factory, engine: Engine) -> None:
    build_org(factory)
    with begin_read(engine) as conn:
        org_id, organization = read_organization(conn, ORG)
        report = read_report(conn, org_id, organization, utcnow())
    whole_log = str(audit._events_query(org_id, None, None).compile(dialect=engine.dialect))
    reads: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement == whole_log:
            reads.append(statement)

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        with begin_read(engine) as conn:
            assert rederived_problem(conn, org_id, report, utcnow()) is None
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    assert len(reads) == 1
