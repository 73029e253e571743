"""reconciliation: expected remittances, bank statements and reconciliation items; the fee plan's new fees (issue 21)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 13:00:00

Reserved in the chain so that the work on these tables can proceed side by side; filled in by
the change that builds them.
"""

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
