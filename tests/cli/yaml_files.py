"""Write desired-state YAML files for CLI tests from plain values (JSON scalars are valid YAML,
and always quoted strings sidestep every YAML 1.1 trap)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from userctl.state import DesiredState


def yaml_text(desired: DesiredState) -> str:
    q = lambda v: json.dumps(v, ensure_ascii=False)  # noqa: E731
    lines = ["version: 1", f"organization: {q(desired.organization)}", "roles:"]
    for name in sorted(desired.roles):
        role = desired.roles[name]
        lines += [
            f"  {q(name)}:",
            f"    description: {q(role.description)}",
            f"    permissions: [{', '.join(q(p) for p in sorted(role.permissions))}]",
        ]
    lines.append("users:")
    for email in sorted(desired.users):
        u = desired.users[email]
        fields: dict[str, Any] = {
            "first_name": u.first_name,
            "last_name": u.last_name,
            "id_type": u.id_type,
            "id_number": u.id_number,
            "phone": u.phone,
            "role": u.role,
            "status": u.status,
            "two_factor": u.two_factor,
        }
        lines.append(f"  {q(email)}:")
        lines += [f"    {k}: {q(v)}" for k, v in fields.items()]
        lines.append(f"    force_password_reset: {'true' if u.force_password_reset else 'false'}")
        lines.append(f"    bank_accounts: [{', '.join(q(k) for k in sorted(u.bank_accounts))}]")
    return "\n".join(lines) + "\n"


def write_desired(path: Path, desired: DesiredState) -> Path:
    path.write_text(yaml_text(desired), encoding="utf-8")
    return path
