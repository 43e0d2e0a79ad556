"""`userctl init`: migrate, then create one organization with its first administrator, in one
transaction (DESIGN §5). Everything else the file declares arrives later through plan/apply,
so the first apply is reviewed like any other."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from userctl import state
from userctl.apply import demo, otp
from userctl.apply.audit import AuditRecord, append_events
from userctl.apply.enrolment import enrolment_record
from userctl.apply.four_eyes import ENROL_ACTION
from userctl.clock import utcnow
from userctl.db import rows
from userctl.db.engine import begin_write
from userctl.db.migrate import upgrade
from userctl.db.snapshot import organization_slugs
from userctl.errors import UsageError
from userctl.plan import organization_address, role_address, user_address
from userctl.verification import AT_INIT

ADMIN_PERMISSION = "users.manage"


@dataclass(frozen=True, slots=True)
class InitResult:
    organization: str
    admin: str
    # Shown once, never stored in plain text when USERCTL_SECRET_KEY is set; never in a repr.
    totp_secret: str = field(repr=False)
    otpauth_uri: str = field(repr=False)  # holds the secret too
    audit_head: str  # the chain head after init's events, which the write signed
    demo_users: int = 0
    demo_bank_accounts: int = 0

    def to_data(self) -> dict[str, str]:
        """`init --json` (schemas/init.schema.json), and what --secret-file holds, but for the
        signed checkpoint, read back after the commit (entries.init_command)."""
        return {
            "organization": self.organization,
            "admin": self.admin,
            "totp_secret": self.totp_secret,
            "otpauth_uri": self.otpauth_uri,
            "audit_head": self.audit_head,
        }


def admin_from_file(
    desired: state.DesiredState, email: str, source: str
) -> tuple[state.User, state.Role]:
    """The administrator `init` creates, as the file declares them; refused unless the file
    makes them an active user whose role can manage users."""
    admin = desired.users.get(email.lower())
    if admin is None:
        raise UsageError(
            f"--admin {email} is not declared in {source}: add them under `users:` with a "
            f"role holding {ADMIN_PERMISSION}"
        )
    role = desired.roles[admin.role] if admin.role in desired.roles else None
    if role is None or ADMIN_PERMISSION not in role.permissions:
        raise UsageError(
            f"--admin {admin.email} has role {admin.role!r}, which does not hold "
            f"{ADMIN_PERMISSION} in {source}: the first administrator must be able to manage users"
        )
    if admin.status != "active":
        raise UsageError(
            f"--admin {admin.email} is declared {admin.status} in {source}: the "
            "first administrator must be active"
        )
    if admin.two_factor == "disabled":
        raise UsageError(
            f"--admin {admin.email} is declared with two_factor: disabled in {source}, "
            "but the first administrator is enrolled in two-factor authentication: "
            "declare it required or optional"
        )
    return admin, role


def initialise(
    engine: Engine,
    desired: state.DesiredState,
    admin_email: str,
    *,
    source: str,
    with_demo: bool = False,
    exist_ok: bool = False,
    kept_secret_file: str | None = None,
) -> InitResult | None:
    """The new organization and its admin's secret; None when `exist_ok` and the organization
    already exists with `admin_email` as an active, enrolled user (nothing is written then).
    `kept_secret_file` names an existing secret file init must not replace: then it may only find
    the organization already there, never create one whose secret would have nowhere to go."""
    admin, role = admin_from_file(desired, admin_email, source)
    upgrade(engine)
    slug = desired.organization
    try:
        with begin_write(engine, organization=slug) as conn:
            if slug in organization_slugs(conn):
                if exist_ok and _is_enrolled_admin(conn, slug, admin.email):
                    return None
                raise _exists(slug)
            if kept_secret_file is not None:
                raise UsageError(
                    f"--secret-file {kept_secret_file} already exists but organization {slug} "
                    "does not: init never overwrites a secret; move the file away first"
                )
            org = state.Organization(slug=slug, name=slug)
            # The gate's settings the file declares are in force from the start; the others are
            # stored by the first apply.
            for (rule, _), value in desired.policies.items():
                if rule in state.GATE_RULES:
                    org = state.with_gate(org, rule, value)
            org_id = rows.insert_organization(conn, org)
            role_id = rows.insert_role(conn, org_id, role)
            admin_id = rows.insert_user(conn, org_id, admin, role_id)
            secret = otp.enroll(conn, admin_id)
            head = append_events(
                conn,
                org_id,
                [
                    AuditRecord(
                        admin.email,
                        AT_INIT.to_text(),
                        "create",
                        organization_address(slug),
                        after={"slug": slug, **state.organization_settings(org)},
                    ),
                    AuditRecord(
                        admin.email,
                        AT_INIT.to_text(),
                        "create",
                        role_address(role.name),
                        after=state.role_record(role),
                    ),
                    AuditRecord(
                        admin.email,
                        AT_INIT.to_text(),
                        "create",
                        user_address(admin.email),
                        after=state.user_record(
                            replace(admin, bank_accounts=frozenset(), totp_enrolled=True)
                        ),
                    ),
                    # The first admin is shown their own secret: enrolled by nobody else.
                    AuditRecord(
                        admin.email,
                        AT_INIT.to_text(),
                        ENROL_ACTION,
                        user_address(admin.email),
                        before={"totp_enrolled": False},
                        after=enrolment_record(admin.email),
                    ),
                ],
                utcnow(),
            )
            users = accounts = 0
            if with_demo:
                users, accounts = _create_demo(conn, org_id, admin, role.name, role_id, admin_id)
    except IntegrityError:
        # Another init of the same organization may have committed between check and insert.
        with engine.connect() as conn:
            if slug in organization_slugs(conn):
                raise _exists(slug) from None
        raise
    return InitResult(
        organization=slug,
        admin=admin.email,
        totp_secret=secret,
        otpauth_uri=otp.provisioning_uri(secret, admin.email, slug),
        audit_head=head,
        demo_users=users,
        demo_bank_accounts=accounts,
    )


def _is_enrolled_admin(conn: Connection, slug: str, email: str) -> bool:
    """Whether a second `init --exist-ok` finds what the first one made: the same admin, still
    able to act. Any other state of the organization is not "already initialised" but someone
    else's organization, which init must not pass over silently."""
    from userctl.db.snapshot import read_live_state

    user = read_live_state(conn, slug).users.get(email.lower())
    return user is not None and user.status == "active" and user.totp_enrolled


def _exists(slug: str) -> UsageError:
    return UsageError(
        f"organization {slug} already exists in this database: init creates a new organization; "
        "change an existing one with `userctl plan` and `userctl apply`"
    )


def _create_demo(
    conn: Connection,
    org_id: int,
    admin: state.User,
    admin_role: str,
    admin_role_id: int,
    admin_id: int,
) -> tuple[int, int]:
    """Pre-existing rows as the platform would hold them; the admin and their role stay as
    the file declares them."""
    account_ids = {a.key: rows.insert_bank_account(conn, org_id, a) for a in demo.BANK_ACCOUNTS}
    role_ids = {admin_role: admin_role_id}
    for role in demo.ROLES:
        if role.name not in role_ids:
            role_ids[role.name] = rows.insert_role(conn, org_id, role)
    pairs = [(admin_id, account_ids[k]) for k in sorted(admin.bank_accounts) if k in account_ids]
    # A demo user holding the admin's email or identity document would be the admin twice (and
    # break a unique key): the file's admin wins, as everywhere else in the demo.
    users = [
        u
        for u in demo.USERS
        if u.email != admin.email and (u.id_type, u.id_number) != (admin.id_type, admin.id_number)
    ]
    for user in users:
        user_id = rows.insert_user(conn, org_id, user, role_ids[user.role])
        pairs.extend((user_id, account_ids[k]) for k in sorted(user.bank_accounts))
    rows.insert_assignments(conn, pairs)
    return len(users), len(account_ids)
