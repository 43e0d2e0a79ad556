"""Demo data for `userctl init --demo`: bank accounts and pre-existing users chosen so that
planning `examples/users.yaml` afterwards shows every kind of change. Plain data only; the
comments say which change each row is there to provoke. The admin (and their role) come from
the file, as in a real `init`."""

from __future__ import annotations

from typing import Final

from userctl.state import BankAccount, Role, User

BANK_ACCOUNTS: Final[tuple[BankAccount, ...]] = (
    BankAccount("ops-main", "Bancolombia", "checking", "****4821", "COP"),
    BankAccount("ops-usd", "Citibank", "checking", "****9930", "USD"),
    BankAccount("payroll", "Davivienda", "savings", "****1177", "COP"),
    # Not referenced by examples/users.yaml: registered on the platform, assigned to nobody.
    BankAccount("refunds", "BBVA Colombia", "savings", "****6402", "COP"),
    BankAccount("petty-cash", "Banco de Bogotá", "savings", "****0385", "COP"),
)

ROLES: Final[tuple[Role, ...]] = (
    # The file adds bank_accounts.view: a role update.
    Role(
        "Payouts Operator",
        "Creates payouts from the company's bank accounts",
        frozenset({"payouts.view", "payouts.create"}),
    ),
    Role(
        "Payouts Approver",
        "Approves payouts created by operators",
        frozenset({"payouts.view", "payouts.approve", "bank_accounts.view"}),
    ),
    # The file drops payouts.view: a role update that removes a permission (destructive, 2FA).
    Role(
        "Developer",
        "Integrations: webhooks, API settings and BioPay diagnostics",
        frozenset(
            {
                "company_settings.manage",
                "biopay.attempts.view",
                "biopay.settings.view",
                "payouts.view",
            }
        ),
    ),
    # Absent from the file and held only by a user who is deleted too: a role delete.
    # ("Compliance Analyst" is absent here and declared in the file: a role create.)
    Role(
        "Legacy Viewer",
        "Read-only access from the old dashboard",
        frozenset({"users.view", "payouts.view"}),
    ),
)

USERS: Final[tuple[User, ...]] = (
    # Field updates: first and last name.
    User(
        "carlos.gomez@acme.co",
        "Carlos",
        "Gomez",
        "CC",
        "79845120",
        "+573104455667",
        "Payouts Operator",
        "active",
        "required",
        False,
        frozenset({"ops-main"}),
        True,
    ),
    # Field updates: two_factor optional -> required, force_password_reset; assignment of ops-usd.
    User(
        "maria.rodriguez@acme.co",
        "María",
        "Rodríguez",
        "CC",
        "52987341",
        "+573157788990",
        "Payouts Approver",
        "active",
        "optional",
        False,
        frozenset({"ops-main"}),
        False,
    ),
    # Role change Payouts Operator -> Payouts Approver; unassignment of refunds.
    User(
        "jorge.ramirez@acme.co",
        "Jorge",
        "Ramírez",
        "CC",
        "80123987",
        "+573201234567",
        "Payouts Operator",
        "active",
        "required",
        False,
        frozenset({"payroll", "refunds"}),
        True,
    ),
    # Still invited, declared active with bank accounts: a deferred assignment.
    User(
        "lucia.fernandez@acme.co",
        "Lucía",
        "Fernández",
        "CE",
        "E4471902",
        "+573014567890",
        "Payouts Operator",
        "invited",
        "required",
        False,
        frozenset(),
        False,
    ),
    # Active, declared inactive: a deactivation.
    User(
        "pedro.castillo@acme.co",
        "Pedro",
        "Castillo",
        "CC",
        "1032456789",
        "+573176543210",
        "Payouts Approver",
        "active",
        "required",
        False,
        frozenset(),
        True,
    ),
    # Inactive, declared active: a reactivation.
    User(
        "sofia.martinez@acme.co",
        "Sofía",
        "Martínez",
        "CC",
        "1098765432",
        "+573005551234",
        "Payouts Operator",
        "inactive",
        "optional",
        False,
        frozenset(),
        False,
    ),
    # Enrolled, declared two_factor: disabled: a 2FA disable.
    User(
        "diego.torres@acme.co",
        "Diego",
        "Torres",
        "CC",
        "1015432876",
        "+573112223344",
        "Developer",
        "active",
        "required",
        False,
        frozenset(),
        True,
    ),
    # Unchanged: the file declares exactly this.
    User(
        "camila.herrera@acme.co",
        "Camila",
        "Herrera",
        "PP",
        "AB1234567",
        "+14155550123",
        "Developer",
        "active",
        "optional",
        False,
        frozenset(),
        True,
    ),
    User(
        "mateo.silva@acme.co",
        "Mateo",
        "Silva",
        "DNI",
        "45871236",
        "+51987654321",
        "Payouts Approver",
        "active",
        "required",
        False,
        frozenset({"ops-usd"}),
        True,
    ),
    # Absent from the file: a deletion (which also leaves Legacy Viewer held by nobody).
    User(
        "old.contractor@acme.co",
        "Hernán",
        "Quintero",
        "CC",
        "71234098",
        "+573209998877",
        "Legacy Viewer",
        "active",
        "optional",
        False,
        frozenset({"petty-cash"}),
        False,
    ),
)
