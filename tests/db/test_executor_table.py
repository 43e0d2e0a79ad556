"""The database side of the one table of actions and the one list of user fields."""

from __future__ import annotations

from userctl.db.executor import HANDLERS, USER_INSERT
from userctl.db.snapshot import user_query
from userctl.plan import ACTION_TABLE
from userctl.state import USER_COLUMNS, USER_FIELDS


def test_every_action_of_the_table_has_one_executor_handler() -> None:
    assert set(HANDLERS) == set(ACTION_TABLE)


def test_the_snapshot_reads_users_in_the_field_order_it_builds_them_in() -> None:
    # user_from_row builds User positionally: the query must select exactly the fields, in order.
    # By key: users.expires_at is the field `expires`.
    selected = [c.key for c in user_query().selected_columns]
    assert selected == ["id"] + [
        "name" if f == "role" else f for f in USER_FIELDS if f != "bank_accounts"
    ]


def test_creating_a_user_writes_every_column_of_its_record() -> None:
    # create_users builds its rows field by field from the typed record: none may be left out.
    assert set(USER_COLUMNS) <= set(USER_INSERT)
    assert len(set(USER_INSERT)) == len(USER_INSERT)
