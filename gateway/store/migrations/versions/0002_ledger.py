"""ledger: collection messages, payments, refund cases, anomalies

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 16:25:58.139407
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('collection_messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('event_key', sa.String(length=96), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('line', sa.Integer(), nullable=True),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.String(length=24), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_collection_messages')),
    sa.UniqueConstraint('channel', 'event_key', 'kind', name=op.f('uq_collection_messages_channel_event_key_kind'))
    )
    op.create_table('anomalies',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('event_key', sa.String(length=96), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('detail', sa.String(length=500), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['collection_messages.id'], name=op.f('fk_anomalies_message_id_collection_messages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_anomalies'))
    )
    op.create_table('payments',
    sa.Column('payment_id', sa.String(length=40), nullable=False),
    sa.Column('biller_id', sa.String(length=32), nullable=True),
    sa.Column('bill_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('event_key', sa.String(length=96), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.Column('store', sa.String(length=40), nullable=True),
    sa.Column('transfer_date', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('voided_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['bill_id'], ['bills.id'], name=op.f('fk_payments_bill_id_bills')),
    sa.ForeignKeyConstraint(['biller_id'], ['billers.biller_id'], name=op.f('fk_payments_biller_id_billers')),
    sa.PrimaryKeyConstraint('payment_id', name=op.f('pk_payments')),
    sa.UniqueConstraint('channel', 'event_key', name=op.f('uq_payments_channel_event_key'))
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_bill_id'), ['bill_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_biller_id_created_at'), ['biller_id', 'created_at'], unique=False)

    op.create_table('refund_cases',
    sa.Column('case_id', sa.String(length=40), nullable=False),
    sa.Column('biller_id', sa.String(length=32), nullable=True),
    sa.Column('bill_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('payment_id', sa.String(length=40), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolution', sa.String(length=32), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['bill_id'], ['bills.id'], name=op.f('fk_refund_cases_bill_id_bills')),
    sa.ForeignKeyConstraint(['biller_id'], ['billers.biller_id'], name=op.f('fk_refund_cases_biller_id_billers')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.payment_id'], name=op.f('fk_refund_cases_payment_id_payments')),
    sa.PrimaryKeyConstraint('case_id', name=op.f('pk_refund_cases')),
    sa.UniqueConstraint('payment_id', 'reason', name=op.f('uq_refund_cases_payment_id_reason'))
    )
    with op.batch_alter_table('refund_cases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refund_cases_biller_id_status'), ['biller_id', 'status'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('refund_cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refund_cases_biller_id_status'))

    op.drop_table('refund_cases')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payments_biller_id_created_at'))
        batch_op.drop_index(batch_op.f('ix_payments_bill_id'))

    op.drop_table('payments')
    op.drop_table('anomalies')
    op.drop_table('collection_messages')

