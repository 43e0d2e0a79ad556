"""The examples ending each command's --help (options.epilog adds them)."""

from __future__ import annotations

# Examples ending each command's --help, by command path. Each names its own command path
# (tests/cli/test_env_options.py holds every command to it).
EXAMPLES: dict[str, tuple[str, ...]] = {
    "": (
        "userctl validate -f users.yaml",
        "USERCTL_DATABASE_URL=postgresql://u@db/app userctl plan -f users.yaml",
    ),
    "init": ("userctl init -f users.yaml --admin ana@acme.co",),
    "db": ("userctl db upgrade --database-url postgresql://u@db/app",),
    "db upgrade": ("userctl db upgrade", "userctl db upgrade --database-url mysql://root@db/app"),
    "db seal-secrets": ("USERCTL_SECRET_KEY=$(cat /run/secrets/userctl) userctl db seal-secrets",),
    "validate": ("userctl validate -f users.yaml", "userctl validate -f users/"),
    "schema": ("userctl schema > userctl.schema.json",),
    "plan": (
        "userctl plan -f users.yaml",
        "userctl plan -f users.yaml --format markdown --out plan.json --detailed-exitcode",
    ),
    "apply": (
        "userctl apply -f users.yaml --operator ana@acme.co",
        "USERCTL_OPERATOR=bot@acme.co userctl apply plan.json -f users.yaml --yes",
    ),
    "approve": ("userctl approve plan.json --operator ana@acme.co",),
    "show": ("userctl show plan.json", "userctl show plan.json --format html > plan.html"),
    "audit": ("userctl audit verify --head HASH",),
    "audit log": (
        "userctl audit log --since 2026-03-01 --user ana@acme.co",
        "userctl audit log --format json",
    ),
    "audit verify": (
        "userctl audit verify",
        "userctl audit verify --public-key audit-key.pub --checkpoint kept.json",
    ),
    "audit checkpoints": ("userctl audit checkpoints --last --format json > kept.json",),
    "audit keygen": ("userctl audit keygen -o audit-key",),
    "mfa": ("userctl mfa enroll bob@acme.co --operator ana@acme.co",),
    "mfa enroll": ("userctl mfa enroll bob@acme.co --operator ana@acme.co",),
    "notifications": ("userctl notifications list --status queued",),
    "notifications list": (
        "userctl notifications list --status queued",
        "userctl notifications list --format json",
    ),
    "notifications send": (
        "USERCTL_SMTP_URL=smtp://mail:25 userctl notifications send "
        "--invite-base-url https://app.acme.co/join",
    ),
    "export": ("userctl export -o users.yaml",),
    "users": ("userctl users list --status active",),
    "users list": (
        "userctl users list --status active --role Admin",
        "userctl users list --search perez --format csv",
    ),
    "users show": ("userctl users show ana@acme.co",),
    "roles": ("userctl roles list",),
    "roles list": ("userctl roles list --format json",),
    "accounts": ("userctl accounts list",),
    "accounts list": ("userctl accounts list --format csv",),
    "accounts import": ("userctl accounts import accounts.csv --operator ana@acme.co",),
    "policy": ("userctl policy check",),
    "policy check": ("userctl policy check --format json",),
    "activity": ("userctl activity import logins.csv --operator ana@acme.co",),
    "activity import": ("userctl activity import logins.csv --operator ana@acme.co",),
    "hygiene": ("userctl hygiene", "userctl hygiene --format json"),
    "notifications resend": (
        "USERCTL_INVITE_BASE_URL=https://app.acme.co/register "
        "userctl notifications resend nuevo@acme.co --operator ana@acme.co",
    ),
    "review": (
        "userctl review --format html > review.html",
        "userctl review --format json > review.json",
    ),
    "review attest": (
        "userctl review attest review.json --reviewer cfo@acme.co --note 'Q4 review'",
    ),
    "review status": ("userctl review status --format json",),
    "evidence": ("userctl evidence --since 2026-01-01 --until 2026-12-31 -o evidence/",),
}
