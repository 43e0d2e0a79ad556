"""Generate a valid desired-state file for one organization of N users (benchmarks, tests).

Deterministic for a given (n_users, seed): the plan benchmark generates the same organization
twice with different seeds' drift on top, and a rerun measures the same input.

    python bench/gen_org.py 100000 --seed 1 -o /tmp/org.yaml
"""

from __future__ import annotations

import argparse
import random
import sys

ORGANIZATION = "bench-org"
# Keys of the bank accounts the generated users are assigned to; whoever loads the file into a
# database must register these first (the plan benchmark does).
BANK_ACCOUNT_KEYS: tuple[str, ...] = tuple(f"acct-{i:03d}" for i in range(1, 41))

ROLES: dict[str, tuple[str, list[str]]] = {
    "SuperAdmin": (
        "Full access",
        [
            "users.view",
            "users.add",
            "users.manage",
            "roles.manage",
            "audit.view",
            "bank_accounts.manage",
            "company_settings.manage",
        ],
    ),
    "Payouts Operator": (
        "Creates payouts",
        ["payouts.view", "payouts.create", "bank_accounts.view"],
    ),
    "Payouts Approver": (
        "Approves payouts",
        ["payouts.view", "payouts.approve", "bank_accounts.view"],
    ),
    "KYC Analyst": ("Reviews customers", ["customers.view", "calls.access", "travel_rule.view"]),
    "Auditor": ("Read-only audit access", ["users.view", "audit.view", "payouts.view"]),
    "Viewer": ("Read-only", ["users.view", "payouts.view"]),
}
# Admins first so that every generated organization has someone able to manage users.
_ROLE_WEIGHTS = {
    "SuperAdmin": 1,
    "Payouts Operator": 40,
    "Payouts Approver": 10,
    "KYC Analyst": 25,
    "Auditor": 4,
    "Viewer": 20,
}

FIRST_NAMES = (
    "Ana",
    "Luis",
    "María",
    "José",
    "Camila",
    "Andrés",
    "Valentina",
    "Julián",
    "Sofía",
    "Mateo",
    "Isabella",
    "Santiago",
    "Daniela",
    "Sebastián",
    "Laura",
    "Nicolás",
    "Paula",
    "Felipe",
)
LAST_NAMES = (
    "Pérez",
    "Gómez",
    "Rodríguez",
    "Martínez",
    "López",
    "García",
    "Hernández",
    "Díaz",
    "Moreno",
    "Álvarez",
    "Romero",
    "Torres",
    "Ramírez",
    "Castro",
    "Vargas",
    "Muñoz",
    "Rojas",
    "Ortiz",
)
ID_TYPES = ("CC", "CC", "CC", "CE", "PP", "NIT", "TI", "DNI")


def user_email(i: int) -> str:
    return f"user{i:06d}@bench.example.com"


def generate(
    n_users: int,
    seed: int,
    organization: str = ORGANIZATION,
    *,
    rename_every: int = 0,
    drop_every: int = 0,
    extra: int = 0,
    inactive: bool = True,
) -> str:
    """The YAML text of an organization with `n_users` users (user 0 is an enrolled-able admin).

    Drift against that organization, for plan and apply benchmarks: every `rename_every`-th
    active user renamed (i % rename_every == 1), every `drop_every`-th active user left out
    (i % drop_every == 2), and `extra` new users appended. The random draws are the same with or
    without drift, so every other user is exactly as in the undrifted file. `inactive=False`
    makes every user active (apply creates users active only: they are invited)."""
    rng = random.Random(seed)
    out: list[str] = [
        "# yaml-language-server: $schema=../schemas/userctl.schema.json",
        "version: 1",
        f"organization: {organization}",
        "roles:",
    ]
    for name, (description, permissions) in ROLES.items():
        out.append(f"  {name}:")
        out.append(f"    description: {description}")
        out.append(f"    permissions: [{', '.join(permissions)}]")
    out.append("users:")
    role_names = list(_ROLE_WEIGHTS)
    weights = list(_ROLE_WEIGHTS.values())
    for i in range(n_users + extra):
        role = "SuperAdmin" if i == 0 else rng.choices(role_names, weights)[0]
        status = "active" if i == 0 or rng.random() > 0.05 or not inactive else "inactive"
        two_factor = (
            "required" if role == "SuperAdmin" else rng.choice(("optional", "optional", "required"))
        )
        # Inactive users cannot be edited: drift touches active ones only.
        drifts = status == "active" and 0 < i < n_users
        lines: list[str] = []
        lines.append(f"  {user_email(i)}:")
        renamed = drifts and rename_every and i % rename_every == 1
        lines.append(f"    first_name: {rng.choice(FIRST_NAMES)}{'x' if renamed else ''}")
        lines.append(f"    last_name: {rng.choice(LAST_NAMES)} {rng.choice(LAST_NAMES)}")
        lines.append(f"    id_type: {rng.choice(ID_TYPES)}")
        # Index-derived so that id_type+id_number stays unique whatever the random draws.
        lines.append(f'    id_number: "{1_020_000_000 + i * 37}"')
        lines.append(f'    phone: "+5730{rng.randrange(10_000_000, 99_999_999)}"')
        lines.append(f"    role: {role}")
        lines.append(f"    status: {status}")
        lines.append(f"    two_factor: {two_factor}")
        lines.append(f"    force_password_reset: {'true' if rng.random() < 0.1 else 'false'}")
        if (
            status == "active"
            and role in ("Payouts Operator", "Payouts Approver")
            and rng.random() < 0.5
        ):
            keys = sorted(rng.sample(BANK_ACCOUNT_KEYS, rng.randint(1, 3)))
            lines.append(f"    bank_accounts: [{', '.join(keys)}]")
        if not (drifts and drop_every and i % drop_every == 2):
            out.extend(lines)
    out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("n_users", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("-o", "--output", help="file to write (default: stdout)")
    args = parser.parse_args(argv)
    text = generate(args.n_users, args.seed)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
