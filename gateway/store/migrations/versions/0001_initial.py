"""billers, api keys, bills, slips, idempotency keys, events outbox

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 15:59:39.867956
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('billers',
    sa.Column('biller_id', sa.String(length=32), nullable=False),
    sa.Column('code', sa.String(length=5), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('kana', sa.String(length=40), nullable=False),
    sa.Column('channels', sa.String(length=40), nullable=False),
    sa.Column('payeasy_institution_code', sa.String(length=5), nullable=True),
    sa.Column('last_event_seq', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('biller_id', name=op.f('pk_billers')),
    sa.UniqueConstraint('code', name=op.f('uq_billers_code'))
    )
    op.create_table('idempotency_keys',
    sa.Column('scope', sa.String(length=64), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('response_body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('scope', 'idempotency_key', name=op.f('pk_idempotency_keys'))
    )
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idempotency_keys_created_at'), ['created_at'], unique=False)

    op.create_table('api_keys',
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('biller_id', sa.String(length=32), nullable=True),
    sa.Column('is_admin', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['biller_id'], ['billers.biller_id'], name=op.f('fk_api_keys_biller_id_billers')),
    sa.PrimaryKeyConstraint('key_id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    op.create_table('bills',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('biller_id', sa.String(length=32), nullable=False),
    sa.Column('bill_no', sa.String(length=64), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=True),
    sa.Column('channels', sa.String(length=40), nullable=False),
    sa.Column('customer_no', sa.String(length=64), nullable=True),
    sa.Column('customer_name', sa.String(length=100), nullable=True),
    sa.Column('customer_kana', sa.String(length=100), nullable=True),
    sa.Column('customer_email', sa.String(length=254), nullable=True),
    sa.Column('customer_phone', sa.String(length=20), nullable=True),
    sa.Column('taxable', sa.Boolean(), nullable=False),
    sa.Column('tax_amount', sa.BigInteger(), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('reissue', sa.Integer(), nullable=False),
    sa.Column('double_paid', sa.Boolean(), nullable=False),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.Column('barcode', sa.String(length=44), nullable=True),
    sa.Column('cvs_bill_key', sa.String(length=27), nullable=True),
    sa.Column('stamp', sa.Boolean(), nullable=False),
    sa.Column('payeasy_institution_code', sa.String(length=5), nullable=True),
    sa.Column('payeasy_customer_number', sa.String(length=20), nullable=True),
    sa.Column('payeasy_confirmation_number', sa.String(length=6), nullable=True),
    sa.Column('page_token', sa.String(length=64), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['biller_id'], ['billers.biller_id'], name=op.f('fk_bills_biller_id_billers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bills')),
    sa.UniqueConstraint('biller_id', 'bill_no', name=op.f('uq_bills_biller_id_bill_no')),
    sa.UniqueConstraint('cvs_bill_key', name=op.f('uq_bills_cvs_bill_key')),
    sa.UniqueConstraint('page_token', name=op.f('uq_bills_page_token')),
    sa.UniqueConstraint('payeasy_institution_code', 'payeasy_customer_number', name=op.f('uq_bills_payeasy_institution_code_payeasy_customer_number'))
    )
    with op.batch_alter_table('bills', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bills_biller_id_status_id'), ['biller_id', 'status', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_bills_biller_id_updated_at_id'), ['biller_id', 'updated_at', 'id'], unique=False)

    op.create_table('events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=40), nullable=False),
    sa.Column('biller_id', sa.String(length=32), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['biller_id'], ['billers.biller_id'], name=op.f('fk_events_biller_id_billers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events')),
    sa.UniqueConstraint('biller_id', 'seq', name=op.f('uq_events_biller_id_seq')),
    sa.UniqueConstraint('event_id', name=op.f('uq_events_event_id'))
    )
    op.create_table('bill_slips',
    sa.Column('bill_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('reissue', sa.Integer(), nullable=False),
    sa.Column('barcode', sa.String(length=44), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=True),
    sa.Column('stamp', sa.Boolean(), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['bill_id'], ['bills.id'], name=op.f('fk_bill_slips_bill_id_bills')),
    sa.PrimaryKeyConstraint('bill_id', 'reissue', name=op.f('pk_bill_slips')),
    sa.UniqueConstraint('barcode', name=op.f('uq_bill_slips_barcode'))
    )



def downgrade() -> None:

    op.drop_table('bill_slips')
    op.drop_table('events')
    with op.batch_alter_table('bills', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bills_biller_id_updated_at_id'))
        batch_op.drop_index(batch_op.f('ix_bills_biller_id_status_id'))

    op.drop_table('bills')
    op.drop_table('api_keys')
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_idempotency_keys_created_at'))

    op.drop_table('idempotency_keys')
    op.drop_table('billers')

