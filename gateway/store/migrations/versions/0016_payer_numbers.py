"""payer_numbers: reusable payer numbers and payer-chosen amounts (issue 22)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 13:00:00

Reusable Pay-easy numbers and bills whose amount the payer chooses (docs/networks/mpn.md,
"Reusable payer numbers" and "Amounts the payer chooses"):

- ``payer_numbers``: one lasting お客様番号 (18 digits) and 確認番号 per (biller, customer_no),
  unique per 収納機関番号 as a bill's number is; ``asked_bill_id`` and ``asked_on`` keep the bill
  the number's last 照会 answered and its business date, which that day's 消込 pays;
- ``bills`` gains ``min_amount`` and ``max_amount`` (NULL for every existing bill: they ask for
  their ``amount``), and an index on ``(biller_id, customer_no, due_date)``: the 照会 of a payer
  number looks for the customer's oldest open bill.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Columns are added without batch mode (as 0010, 0011), so that SQLite does not rebuild
    # ``bills`` under the foreign keys of payments, slips and refund cases.
    op.add_column("bills", sa.Column("min_amount", sa.BigInteger(), nullable=True))
    op.add_column("bills", sa.Column("max_amount", sa.BigInteger(), nullable=True))
    op.create_index(
        op.f("ix_bills_biller_id_customer_no_due_date"),
        "bills",
        ["biller_id", "customer_no", "due_date"],
        unique=False,
    )
    op.create_table(
        "payer_numbers",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("biller_id", sa.String(length=32), nullable=False),
        sa.Column("customer_no", sa.String(length=64), nullable=False),
        sa.Column("institution_code", sa.String(length=5), nullable=False),
        sa.Column("customer_number", sa.String(length=20), nullable=True),
        sa.Column("confirmation_number", sa.String(length=6), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("asked_bill_id", BIG_ID, nullable=True),
        sa.Column("asked_on", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["biller_id"], ["billers.biller_id"], name=op.f("fk_payer_numbers_biller_id_billers")
        ),
        sa.ForeignKeyConstraint(
            ["asked_bill_id"], ["bills.id"], name=op.f("fk_payer_numbers_asked_bill_id_bills")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payer_numbers")),
        sa.UniqueConstraint(
            "biller_id", "customer_no", name=op.f("uq_payer_numbers_biller_id_customer_no")
        ),
        sa.UniqueConstraint(
            "institution_code",
            "customer_number",
            name=op.f("uq_payer_numbers_institution_code_customer_number"),
        ),
    )


def downgrade() -> None:
    op.drop_table("payer_numbers")
    op.drop_index(op.f("ix_bills_biller_id_customer_no_due_date"), table_name="bills")
    op.drop_column("bills", "max_amount")
    op.drop_column("bills", "min_amount")
