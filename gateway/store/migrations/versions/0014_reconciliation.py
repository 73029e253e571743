"""reconciliation: bank statements and reconciliation items; the fee plan's new fees (issue 21)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 13:00:00

The whole fee model (gateway.fee_model, docs/settlement.md):

- ``fee_plans`` gains ``initial_fee``, ``monthly_fee``, ``waive_idle_months``, ``per_bill`` and
  ``notice_rates`` (JSON); existing plans get 0, false and ``{}``: they charge what they did.
- ``notice_charges``: one row per notice a biller pays a fee for (an e-mail sent, an SMS sent, a
  sheet printed), unique by its key, claimed once by the settlement that charges it.

The networks' money reconciled (gateway.recon_model, gateway.money.reconciliation):

- ``bank_statements``: each imported statement of the center's account (unique by SHA-256);
- ``bank_deposits``: each 入金, unique by day, amount, remitter and rank, so an overlapping
  statement adds nothing twice;
- ``reconciliation_items``: differences, missing remittances and unexpected deposits, open until
  the money matches or finance resolves them;
- ``payments (channel, transfer_date)``: the expected remittances by transfer date, by index.
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# As 0010 and 0011: columns are added and dropped without batch mode, so that SQLite does not
# rebuild ``fee_plans`` under the settlements' foreign keys.
PLAN_COLUMNS = (
    ("initial_fee", sa.BigInteger(), "0"),
    ("monthly_fee", sa.BigInteger(), "0"),
    ("waive_idle_months", sa.Boolean(), "0"),
    ("per_bill", sa.BigInteger(), "0"),
    ("notice_rates", sa.Text(), "{}"),
)


def upgrade() -> None:
    for name, kind, default in PLAN_COLUMNS:
        op.add_column("fee_plans", sa.Column(name, kind, server_default=default, nullable=False))
    op.create_table(
        "notice_charges",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("notice_key", sa.String(length=80), nullable=False),
        sa.Column("biller_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("bill_id", BIG_ID, nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settlement_id", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["biller_id"],
            ["billers.biller_id"],
            name=op.f("fk_notice_charges_biller_id_billers"),
        ),
        sa.ForeignKeyConstraint(
            ["bill_id"], ["bills.id"], name=op.f("fk_notice_charges_bill_id_bills")
        ),
        sa.ForeignKeyConstraint(
            ["settlement_id"],
            ["settlements.settlement_id"],
            name=op.f("fk_notice_charges_settlement_id_settlements"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notice_charges")),
        sa.UniqueConstraint("notice_key", name=op.f("uq_notice_charges_notice_key")),
    )
    op.create_index(
        op.f("ix_notice_charges_biller_id_settlement_id"),
        "notice_charges",
        ["biller_id", "settlement_id"],
        unique=False,
    )

    op.create_table(
        "bank_statements",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("file_name", sa.String(length=200), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("account", sa.String(length=24), nullable=True),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("deposits", sa.Integer(), nullable=False),
        sa.Column("new_deposits", sa.Integer(), nullable=False),
        sa.Column("withdrawals", sa.Integer(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_statements")),
        sa.UniqueConstraint("sha256", name=op.f("uq_bank_statements_sha256")),
    )
    op.create_index(
        op.f("ix_bank_statements_first_day_last_day"),
        "bank_statements",
        ["first_day", "last_day"],
        unique=False,
    )
    op.create_table(
        "bank_deposits",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("deposit_key", sa.String(length=120), nullable=False),
        sa.Column("statement_id", BIG_ID, nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("value_date", sa.Date(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("remitter_name", sa.String(length=48), nullable=False),
        sa.Column("remitter_code", sa.String(length=10), nullable=False),
        sa.Column("reference", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["statement_id"],
            ["bank_statements.id"],
            name=op.f("fk_bank_deposits_statement_id_bank_statements"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_deposits")),
        sa.UniqueConstraint("deposit_key", name=op.f("uq_bank_deposits_deposit_key")),
    )
    op.create_index(
        op.f("ix_bank_deposits_value_date"), "bank_deposits", ["value_date"], unique=False
    )
    op.create_table(
        "reconciliation_items",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("item_id", sa.String(length=40), nullable=False),
        sa.Column("item_key", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("network", sa.String(length=16), nullable=True),
        sa.Column("agency", sa.String(length=32), nullable=True),
        sa.Column("transfer_date", sa.Date(), nullable=False),
        sa.Column("expected", sa.BigInteger(), nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("deposit_id", BIG_ID, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["deposit_id"],
            ["bank_deposits.id"],
            name=op.f("fk_reconciliation_items_deposit_id_bank_deposits"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_items")),
        sa.UniqueConstraint("item_id", name=op.f("uq_reconciliation_items_item_id")),
        sa.UniqueConstraint("item_key", name=op.f("uq_reconciliation_items_item_key")),
    )
    op.create_index(
        op.f("ix_reconciliation_items_status_opened_at"),
        "reconciliation_items",
        ["status", "opened_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_reconciliation_items_transfer_date"),
        "reconciliation_items",
        ["transfer_date"],
        unique=False,
    )
    op.create_index(
        op.f("ix_payments_channel_transfer_date"),
        "payments",
        ["channel", "transfer_date"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_payments_channel_transfer_date"), table_name="payments")
    op.drop_index(op.f("ix_reconciliation_items_transfer_date"), table_name="reconciliation_items")
    op.drop_index(
        op.f("ix_reconciliation_items_status_opened_at"), table_name="reconciliation_items"
    )
    op.drop_table("reconciliation_items")
    op.drop_index(op.f("ix_bank_deposits_value_date"), table_name="bank_deposits")
    op.drop_table("bank_deposits")
    op.drop_index(op.f("ix_bank_statements_first_day_last_day"), table_name="bank_statements")
    op.drop_table("bank_statements")
    op.drop_index(op.f("ix_notice_charges_biller_id_settlement_id"), table_name="notice_charges")
    op.drop_table("notice_charges")
    for name, _, _ in reversed(PLAN_COLUMNS):
        op.drop_column("fee_plans", name)
