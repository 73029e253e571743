"""notices: SMS and notices, opt-outs, fallback after a failed debit (issue 22)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 13:00:00

Reserved in the chain so that the work on these tables can proceed side by side; filled in by
the change that builds them.
"""

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
