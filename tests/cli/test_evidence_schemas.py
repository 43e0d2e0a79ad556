"""Every JSON file of an evidence pack has a schema in schemas/ and matches it: the command's own
where the file is that command's output (hygiene, review, the audit events of attestations), the
pack's own otherwise; and every instant in it, the period's bounds included, is RFC 3339 UTC."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import jsonschema
import referencing

from tests.apply.apply_helpers import Org
from tests.cli import test_review
from tests.cli.json_outputs import RFC3339_UTC, SCHEMAS, timestamps
from tests.conftest import Operator, Runner
from userctl.render.review import PACK_SCHEMAS

applied = test_review.applied  # an organization with a plan approved and applied


def registry() -> referencing.Registry[Any]:
    """Every published schema by its $id, so that one may refer to another by file name."""
    resources = []
    for path in SCHEMAS.glob("*.schema.json"):
        doc = json.loads(path.read_text(encoding="utf-8"))
        resources.append((doc["$id"], referencing.Resource.from_contents(doc)))
    return referencing.Registry().with_resources(resources)


def test_every_json_file_of_a_pack_matches_its_schema(
    runner: Runner, applied: tuple[Org, Operator, dict[str, Any]], tmp_path: Path
) -> None:
    from userctl.clock import utcnow

    org = applied[0]
    report = runner("review", "--format", "json")
    (tmp_path / "review.json").write_text(report.stdout, encoding="utf-8")
    attest = runner(
        "review",
        "attest",
        str(tmp_path / "review.json"),
        "--reviewer",
        "root@acme.co",
        "--otp-code",
        org.root.code(),
    )
    assert attest.exit_code == 0, attest.output
    today = utcnow().date()
    out = tmp_path / "pack"
    made = runner(
        "evidence",
        "--since",
        (today - dt.timedelta(days=30)).isoformat(),
        "--until",
        (today + dt.timedelta(days=1)).isoformat(),
        "-o",
        str(out),
    )
    assert made.exit_code == 0, made.output

    files = sorted(p.name for p in out.glob("*.json"))
    assert files == sorted(PACK_SCHEMAS)  # no JSON file without a schema
    schemas = registry()
    for name in files:
        data = json.loads((out / name).read_text(encoding="utf-8"))
        assert data, name  # each file says something: the tests below are not vacuous
        schema = json.loads((SCHEMAS / PACK_SCHEMAS[name]).read_text(encoding="utf-8"))
        validator = jsonschema.Draft202012Validator(schema, registry=schemas)
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
        assert errors == [], (name, errors[:5])
        for where, value in timestamps(data):
            assert value is None or RFC3339_UTC.match(str(value)), (name, where, value)

    period = json.loads((out / "audit-log.json").read_text(encoding="utf-8"))["period"]
    # --until names the last day included: the period ends at the start of the day after it.
    until = (today + dt.timedelta(days=2)).isoformat() + "T00:00:00Z"
    assert period == {
        "since": (today - dt.timedelta(days=30)).isoformat() + "T00:00:00Z",
        "until": until,
        "until_exclusive": True,
    }
    assert f"{until} (exclusive)" in (out / "index.html").read_text(encoding="utf-8")
