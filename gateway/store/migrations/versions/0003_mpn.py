"""mpn guard and day closes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 17:05:24.662580
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('mpn_day_closes',
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('payments_count', sa.BigInteger(), nullable=False),
    sa.Column('payments_sum', sa.BigInteger(), nullable=False),
    sa.Column('cancels_count', sa.BigInteger(), nullable=False),
    sa.Column('cancels_sum', sa.BigInteger(), nullable=False),
    sa.Column('center_payments_count', sa.BigInteger(), nullable=True),
    sa.Column('center_payments_sum', sa.BigInteger(), nullable=True),
    sa.Column('center_cancels_count', sa.BigInteger(), nullable=True),
    sa.Column('center_cancels_sum', sa.BigInteger(), nullable=True),
    sa.Column('matched', sa.Boolean(), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('business_date', name=op.f('pk_mpn_day_closes'))
    )
    op.create_table('mpn_guard',
    sa.Column('institution_code', sa.String(length=5), nullable=False),
    sa.Column('customer_number', sa.String(length=20), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('institution_code', 'customer_number', 'business_date', name=op.f('pk_mpn_guard'))
    )



def downgrade() -> None:

    op.drop_table('mpn_guard')
    op.drop_table('mpn_day_closes')

