"""payer_numbers: reusable payer numbers and payer-chosen amounts (issue 22)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 13:00:00

Reserved in the chain so that the work on these tables can proceed side by side; filled in by
the change that builds them.
"""

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
