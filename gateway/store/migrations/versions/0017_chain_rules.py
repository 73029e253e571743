"""chain_rules: per-biller chain rules (issue 22)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 13:00:00

- ``billers.chain_rules``: the biller's convenience-store chain rules as JSON (gateway.chain_rules:
  the chains it accepts, each chain's longest due window, the chains that stamp every receipt of
  the threshold or more whatever the tax); NULL: every chain, no rule.
- ``payments.chain_accepted`` and ``payments.stamped``: a CVS payment as those rules judged it
  when it arrived (is the chain that took it one the biller accepts; did that chain stamp the
  receipt, which the settlement charges). NULL for payments made before (and for other
  channels): their stamp follows the barcode's 印紙フラグ, as it did.
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


# As 0010 and 0011: columns are added and dropped without batch mode, so that SQLite does not
# rebuild ``billers`` or ``payments`` under the other tables' foreign keys.


def upgrade() -> None:
    op.add_column("billers", sa.Column("chain_rules", sa.Text(), nullable=True))
    op.add_column("payments", sa.Column("chain_accepted", sa.Boolean(), nullable=True))
    op.add_column("payments", sa.Column("stamped", sa.Boolean(), nullable=True))


def downgrade() -> None:
    op.drop_column("payments", "stamped")
    op.drop_column("payments", "chain_accepted")
    op.drop_column("billers", "chain_rules")
