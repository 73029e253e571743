"""payouts: payout accounts, payout files and their settlements (issue 21)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 13:00:00

Reserved in the chain so that the work on these tables can proceed side by side; filled in by
the change that builds them.
"""

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
