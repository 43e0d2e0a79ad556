"""Time `userctl plan` as a whole process (DESIGN §6): SQLite, 1% drift, 10k and 100k users.

For each size: generate the organization (bench/gen_org.py), load it into a fresh SQLite database
with 1% drift (0.5% renamed, 0.25% missing → creates, 0.25% extra → deletes), then run
`userctl plan -f ORG.yaml --detailed-exitcode` under /usr/bin/time and report wall seconds and
peak RSS, as an installed userctl runs: with its bytecode cached (see installed_env). Prints a
markdown table for the README.

    python bench/bench_plan.py            # 10k and 100k
    python bench/bench_plan.py 10000      # one size
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml_rs
from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).parent))
from gen_org import BANK_ACCOUNT_KEYS, generate  # noqa: E402

from userctl.clock import utcnow  # noqa: E402
from userctl.db import models  # noqa: E402
from userctl.db.engine import create_engine_for  # noqa: E402
from userctl.db.migrate import upgrade  # noqa: E402

# The machine is shared and noisy: BENCH_RUNS=9 gives steadier best-of figures.
RUNS = int(os.environ.get("BENCH_RUNS", "3"))


def seed(db_url: str, doc: dict, n: int) -> None:  # type: ignore[type-arg]
    engine = create_engine_for(db_url)
    upgrade(engine)
    users = doc["users"]
    emails = sorted(users)
    active = [e for e in emails[1:] if users[e].get("status", "active") == "active"]  # inactive users cannot be edited
    renamed = set(active[0::200])  # 0.5%
    missing = set(active[1::400])  # 0.25%: in the file, not in the database -> create
    now = utcnow()
    with engine.begin() as conn:
        org_id = conn.execute(insert(models.Organization).values(slug=doc["organization"], name="Bench", two_factor_policy="destructive",
                                                                  min_admins=1, four_eyes=False, serial=0, created_at=now)).inserted_primary_key[0]
        role_ids = {}
        for name, role in doc["roles"].items():
            rid = conn.execute(insert(models.Role).values(organization_id=org_id, name=name, description=role.get("description", ""))).inserted_primary_key[0]
            role_ids[name] = rid
            conn.execute(insert(models.RolePermission), [{"role_id": rid, "permission": p} for p in role["permissions"]])
        conn.execute(insert(models.BankAccount), [
            {"organization_id": org_id, "key": k, "bank": "Bench Bank", "account_type": "savings", "masked_number": f"****{i:04d}", "currency": "COP"}
            for i, k in enumerate(BANK_ACCOUNT_KEYS)
        ])
        bank_ids = dict(conn.execute(select(models.BankAccount.key, models.BankAccount.id)).all())
        rows = []
        for i, email in enumerate(emails):
            if email in missing:
                continue
            u = users[email]
            rows.append({
                "organization_id": org_id, "email": email, "id_type": u["id_type"], "id_number": u["id_number"], "phone": u["phone"],
                "first_name": u["first_name"] + ("x" if email in renamed else ""), "last_name": u["last_name"],
                "role_id": role_ids[u["role"]], "status": u.get("status", "active"), "two_factor": u.get("two_factor", "optional"),
                "totp_enrolled": u["role"] == "SuperAdmin", "force_password_reset": u.get("force_password_reset", False),
                "created_at": now, "updated_at": now,
            })
        extra = max(1, n // 400)  # 0.25%: in the database, not in the file -> delete
        for j in range(extra):
            rows.append({**rows[-1], "email": f"extra{j}@bench.example.com", "id_number": f"{900000 + j}"})
        conn.execute(insert(models.User), rows)
        ids = dict(conn.execute(select(models.User.email, models.User.id)).all())
        pairs = [{"user_id": ids[e], "bank_account_id": bank_ids[k]} for e in emails if e not in missing for k in users[e].get("bank_accounts", [])]
        if pairs:
            conn.execute(insert(models.UserBankAccount), pairs)
    engine.dispose()


def installed_env(env: dict[str, str]) -> dict[str, str]:
    """The environment minus PYTHONDONTWRITEBYTECODE (set on this machine): an installed userctl
    has its modules' bytecode compiled at install time, so the timed process must not compile
    them from source on every run (about 0.05-0.1 s on this machine)."""
    return {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}


def measure(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(best wall seconds, peak RSS MB, exit code) over RUNS runs of the whole process, after
    one untimed run that writes the bytecode cache (as installing does) and warms the page cache."""
    env = installed_env(env)
    subprocess.run(cmd, env=env, capture_output=True, check=False)
    best, peak, code = float("inf"), 0.0, 0
    for _ in range(RUNS):
        start = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-v", *cmd], env=env, capture_output=True, text=True)
        best = min(best, time.perf_counter() - start)
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
        peak = max(peak, int(rss.group(1)) / 1024 if rss else 0.0)
        code = proc.returncode
    return best, peak, code


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [10_000, 100_000]
    userctl = str(Path(sys.executable).with_name("userctl"))
    print(f"| users | file MB | plan s (best of {RUNS}) | peak MB | exit |")
    print("|---:|---:|---:|---:|---:|")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "org.yaml"
            text = generate(n, seed=1)
            path.write_text(text, encoding="utf-8")
            db_url = f"sqlite:///{tmp}/bench.db"
            seed(db_url, yaml_rs.loads(text), n)
            env = {**os.environ, "USERCTL_DATABASE_URL": db_url, "NO_COLOR": "1"}
            seconds, peak, code = measure([userctl, "plan", "-f", str(path), "--detailed-exitcode"], env)
            print(f"| {n:,} | {path.stat().st_size / 1e6:.1f} | {seconds:.2f} | {peak:.0f} | {code} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
