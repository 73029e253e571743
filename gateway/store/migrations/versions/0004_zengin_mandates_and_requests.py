"""zengin mandates and requests

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 17:55:44.244886
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mandates',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('biller_id', sa.String(length=32), nullable=False),
    sa.Column('customer_no', sa.String(length=64), nullable=False),
    sa.Column('bank_code', sa.String(length=4), nullable=False),
    sa.Column('bank_name', sa.String(length=15), nullable=False),
    sa.Column('branch_code', sa.String(length=3), nullable=False),
    sa.Column('branch_name', sa.String(length=15), nullable=False),
    sa.Column('account_type', sa.String(length=1), nullable=False),
    sa.Column('account_number', sa.String(length=7), nullable=False),
    sa.Column('holder_kana', sa.String(length=30), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_reason', sa.String(length=100), nullable=True),
    sa.Column('new_code', sa.String(length=1), nullable=False),
    sa.Column('requested', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['biller_id'], ['billers.biller_id'], name=op.f('fk_mandates_biller_id_billers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mandates')),
    sa.UniqueConstraint('biller_id', 'customer_no', name=op.f('uq_mandates_biller_id_customer_no'))
    )
    op.create_table('zengin_consignors',
    sa.Column('biller_id', sa.String(length=32), nullable=False),
    sa.Column('consignor_code', sa.String(length=10), nullable=False),
    sa.Column('consignor_name', sa.String(length=40), nullable=False),
    sa.Column('bank_code', sa.String(length=4), nullable=False),
    sa.Column('bank_name', sa.String(length=15), nullable=False),
    sa.Column('branch_code', sa.String(length=3), nullable=False),
    sa.Column('branch_name', sa.String(length=15), nullable=False),
    sa.Column('account_type', sa.String(length=1), nullable=False),
    sa.Column('account_number', sa.String(length=7), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['biller_id'], ['billers.biller_id'], name=op.f('fk_zengin_consignors_biller_id_billers')),
    sa.PrimaryKeyConstraint('biller_id', name=op.f('pk_zengin_consignors')),
    sa.UniqueConstraint('consignor_code', name=op.f('uq_zengin_consignors_consignor_code'))
    )
    op.create_table('zengin_requests',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('biller_id', sa.String(length=32), nullable=False),
    sa.Column('consignor_code', sa.String(length=10), nullable=False),
    sa.Column('debit_date', sa.Date(), nullable=False),
    sa.Column('file_name', sa.String(length=100), nullable=True),
    sa.Column('records', sa.Integer(), nullable=False),
    sa.Column('total', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('written_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['biller_id'], ['billers.biller_id'], name=op.f('fk_zengin_requests_biller_id_billers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_zengin_requests')),
    sa.UniqueConstraint('file_name', name=op.f('uq_zengin_requests_file_name'))
    )
    with op.batch_alter_table('zengin_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_zengin_requests_biller_id_debit_date'), ['biller_id', 'debit_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_zengin_requests_status'), ['status'], unique=False)

    op.create_table('zengin_request_items',
    sa.Column('request_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('record_no', sa.Integer(), nullable=False),
    sa.Column('bill_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('mandate_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('consignor_code', sa.String(length=10), nullable=False),
    sa.Column('debit_date', sa.Date(), nullable=False),
    sa.Column('customer_number', sa.String(length=20), nullable=False),
    sa.Column('bank_code', sa.String(length=4), nullable=False),
    sa.Column('bank_name', sa.String(length=15), nullable=False),
    sa.Column('branch_code', sa.String(length=3), nullable=False),
    sa.Column('branch_name', sa.String(length=15), nullable=False),
    sa.Column('account_type', sa.String(length=1), nullable=False),
    sa.Column('account_number', sa.String(length=7), nullable=False),
    sa.Column('holder_kana', sa.String(length=30), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('new_code', sa.String(length=1), nullable=False),
    sa.Column('result_code', sa.String(length=1), nullable=True),
    sa.Column('result_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['bill_id'], ['bills.id'], name=op.f('fk_zengin_request_items_bill_id_bills')),
    sa.ForeignKeyConstraint(['mandate_id'], ['mandates.id'], name=op.f('fk_zengin_request_items_mandate_id_mandates')),
    sa.ForeignKeyConstraint(['request_id'], ['zengin_requests.id'], name=op.f('fk_zengin_request_items_request_id_zengin_requests')),
    sa.PrimaryKeyConstraint('request_id', 'record_no', name=op.f('pk_zengin_request_items')),
    sa.UniqueConstraint('bill_id', 'debit_date', name=op.f('uq_zengin_request_items_bill_id_debit_date')),
    sa.UniqueConstraint('consignor_code', 'debit_date', 'customer_number', name='uq_zengin_request_items_result_key')
    )


def downgrade() -> None:
    op.drop_table('zengin_request_items')
    with op.batch_alter_table('zengin_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_zengin_requests_status'))
        batch_op.drop_index(batch_op.f('ix_zengin_requests_biller_id_debit_date'))

    op.drop_table('zengin_requests')
    op.drop_table('zengin_consignors')
    op.drop_table('mandates')
