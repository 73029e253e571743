"""bulk registration

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 18:10:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('bill_batches',
    sa.Column('batch_id', sa.String(length=40), nullable=False),
    sa.Column('biller_id', sa.String(length=32), nullable=False),
    sa.Column('source', sa.String(length=300), nullable=False),
    sa.Column('encoding', sa.String(length=16), nullable=False),
    sa.Column('row_count', sa.Integer(), nullable=False),
    sa.Column('created_count', sa.Integer(), nullable=False),
    sa.Column('existing_count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['biller_id'], ['billers.biller_id'], name=op.f('fk_bill_batches_biller_id_billers')),
    sa.PrimaryKeyConstraint('batch_id', name=op.f('pk_bill_batches'))
    )
    with op.batch_alter_table('bill_batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bill_batches_biller_id_created_at'), ['biller_id', 'created_at'], unique=False)

    op.create_table('bill_batch_items',
    sa.Column('batch_id', sa.String(length=40), nullable=False),
    sa.Column('row_no', sa.Integer(), nullable=False),
    sa.Column('bill_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['bill_batches.batch_id'], name=op.f('fk_bill_batch_items_batch_id_bill_batches')),
    sa.ForeignKeyConstraint(['bill_id'], ['bills.id'], name=op.f('fk_bill_batch_items_bill_id_bills')),
    sa.PrimaryKeyConstraint('batch_id', 'row_no', name=op.f('pk_bill_batch_items'))
    )


def downgrade() -> None:
    op.drop_table('bill_batch_items')
    with op.batch_alter_table('bill_batches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bill_batches_biller_id_created_at'))

    op.drop_table('bill_batches')
