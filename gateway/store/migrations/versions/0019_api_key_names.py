"""api key names: what the console shows of an API key (issue 20)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-08 10:00:00

- ``api_keys.name``: what the biller calls the key (its system, its environment); NULL for keys
  made before, or without one.
- ``api_keys.prefix``: the key's first characters (``gw_`` and 4 more), so that a person can
  tell which key a system holds without the key; NULL for keys made before.
- ``api_keys.last_used_at``: when a request last came with the key, to within a minute
  (gateway.store.billers.principal_for_hash); NULL: not since this version.
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


# As 0010, 0011 and 0017: columns are added and dropped without batch mode, so that SQLite does
# not rebuild ``api_keys`` under the other tables' foreign keys.


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("name", sa.String(length=64), nullable=True))
    op.add_column("api_keys", sa.Column("prefix", sa.String(length=16), nullable=True))
    op.add_column("api_keys", sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("api_keys", "last_used_at")
    op.drop_column("api_keys", "prefix")
    op.drop_column("api_keys", "name")
