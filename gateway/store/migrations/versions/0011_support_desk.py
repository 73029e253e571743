"""support desk: billers can be suspended; the audit log of operator actions

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-13 10:00:00

- ``billers.suspended_at``: when the operator suspended the biller (NULL: active). Its API keys
  are refused (403) and no bill of it is created; payments of its bills still arrive and are
  recorded.
- ``audit_log``: one row per operator action (who, what, when, target, before/after JSON),
  written in the transaction of the action (gateway.store.schema_ops).
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


# As 0010: the column is added and dropped without batch mode, so that SQLite does not rebuild
# ``billers`` under the other tables' foreign keys.


def upgrade() -> None:
    op.add_column('billers', sa.Column('suspended_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        'audit_log',
        sa.Column(
            'id',
            sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(length=64), nullable=False),
        sa.Column('action', sa.String(length=40), nullable=False),
        sa.Column('target', sa.String(length=120), nullable=False),
        sa.Column('biller_id', sa.String(length=32), nullable=True),
        sa.Column('before', sa.Text(), nullable=True),
        sa.Column('after', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log')),
    )
    op.create_index(op.f('ix_audit_log_target_id'), 'audit_log', ['target', 'id'], unique=False)
    op.create_index(
        op.f('ix_audit_log_biller_id_id'), 'audit_log', ['biller_id', 'id'], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f('ix_audit_log_biller_id_id'), table_name='audit_log')
    op.drop_index(op.f('ix_audit_log_target_id'), table_name='audit_log')
    op.drop_table('audit_log')
    op.drop_column('billers', 'suspended_at')
