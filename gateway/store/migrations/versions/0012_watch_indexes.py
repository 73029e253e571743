"""watch indexes: the operator's watch finds pending payments and unanswered debits by index

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-14 10:00:00

The watch (gateway.billing.watch, every minute) asks for the payments still ``pending`` (a 速報
or 消込 not yet confirmed) and the account-transfer debits with no result yet. Both are a small
part of tables that only grow; without these indexes each question read the whole table (2 s
for a million payments on SQLite, on the one store thread).

- ``payments (status, channel, paid_at)``: the pending ones per channel, the oldest first.
- ``zengin_request_items (result_code, debit_date)``: the debits still waiting (NULL result).
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_payments_status_channel_paid_at"),
        "payments",
        ["status", "channel", "paid_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_zengin_request_items_result_code_debit_date"),
        "zengin_request_items",
        ["result_code", "debit_date"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_zengin_request_items_result_code_debit_date"), table_name="zengin_request_items"
    )
    op.drop_index(op.f("ix_payments_status_channel_paid_at"), table_name="payments")
