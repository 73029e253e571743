"""payer number revocation: a biller revokes a customer's payer number (issue 22)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-09 10:00:00

``DELETE /v1/customers/{customer_no}/payer-number`` (docs/networks/mpn.md, "Reusable payer
numbers"): the number stops answering and a later ``PUT`` gives a new one, never the old.

- ``payer_numbers.revoked_at`` / ``revoked_by``: when and by whom (``key:<key id>``) the number
  was revoked; NULL for a live number (every number existing before).
- The one number per customer is now one *live* number per (biller, customer_no): the unique
  constraint becomes a unique index on those columns ``WHERE revoked_at IS NULL``, so a revoked
  row stays (its お客様番号 still taken in ``(institution_code, customer_number)``, never reused)
  beside the customer's new one.

SQLite cannot drop a constraint in place: ``payer_numbers`` is rebuilt (batch mode); no table
has a foreign key to it, so nothing else is touched.
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

LIVE = sa.text("revoked_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("payer_numbers") as batch:
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("revoked_by", sa.String(length=64), nullable=True))
        batch.drop_constraint("uq_payer_numbers_biller_id_customer_no", type_="unique")
    op.create_index(
        "uq_payer_numbers_live",
        "payer_numbers",
        ["biller_id", "customer_no"],
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )


def downgrade() -> None:
    # Only the live numbers can keep one row per customer: the revoked ones go.
    op.execute("DELETE FROM payer_numbers WHERE revoked_at IS NOT NULL")
    op.drop_index("uq_payer_numbers_live", table_name="payer_numbers")
    with op.batch_alter_table("payer_numbers") as batch:
        batch.create_unique_constraint(
            "uq_payer_numbers_biller_id_customer_no", ["biller_id", "customer_no"]
        )
        batch.drop_column("revoked_by")
        batch.drop_column("revoked_at")
