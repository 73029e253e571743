"""settlement and retention

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 07:33:18
"""

from typing import Any

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('data_purges',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ran_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cutoff', sa.DateTime(timezone=True), nullable=False),
    sa.Column('bills', sa.Integer(), nullable=False),
    sa.Column('mandates', sa.Integer(), nullable=False),
    sa.Column('request_items', sa.Integer(), nullable=False),
    sa.Column('messages', sa.Integer(), nullable=False),
    sa.Column('events', sa.Integer(), nullable=False),
    sa.Column('last_event_id', sa.BigInteger(), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_purges'))
    )
    op.create_table('fee_plans',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('biller_id', sa.String(length=32), nullable=False),
    sa.Column('effective_from', sa.Date(), nullable=False),
    sa.Column('cycle', sa.String(length=24), nullable=False),
    sa.Column('payout_days', sa.Integer(), nullable=False),
    sa.Column('settlement_fee', sa.BigInteger(), nullable=False),
    sa.Column('tax_rate', sa.Integer(), nullable=False),
    sa.Column('tax_rounding', sa.String(length=8), nullable=False),
    sa.Column('rates', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['biller_id'], ['billers.biller_id'], name=op.f('fk_fee_plans_biller_id_billers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fee_plans')),
    sa.UniqueConstraint('biller_id', 'effective_from', name=op.f('uq_fee_plans_biller_id_effective_from'))
    )
    op.create_table('settlements',
    sa.Column('settlement_id', sa.String(length=40), nullable=False),
    sa.Column('biller_id', sa.String(length=32), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('cycle', sa.String(length=24), nullable=False),
    sa.Column('payout_date', sa.Date(), nullable=False),
    sa.Column('plan_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('payments_count', sa.BigInteger(), nullable=False),
    sa.Column('collected', sa.BigInteger(), nullable=False),
    sa.Column('fees', sa.BigInteger(), nullable=False),
    sa.Column('tax', sa.BigInteger(), nullable=False),
    sa.Column('stamp_count', sa.BigInteger(), nullable=False),
    sa.Column('stamp_duty', sa.BigInteger(), nullable=False),
    sa.Column('refunds', sa.BigInteger(), nullable=False),
    sa.Column('carried_in', sa.BigInteger(), nullable=False),
    sa.Column('carried_out', sa.BigInteger(), nullable=False),
    sa.Column('payout', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['biller_id'], ['billers.biller_id'], name=op.f('fk_settlements_biller_id_billers')),
    sa.ForeignKeyConstraint(['plan_id'], ['fee_plans.id'], name=op.f('fk_settlements_plan_id_fee_plans')),
    sa.PrimaryKeyConstraint('settlement_id', name=op.f('pk_settlements')),
    sa.UniqueConstraint('biller_id', 'period_start', name=op.f('uq_settlements_biller_id_period_start'))
    )
    with op.batch_alter_table('settlements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_settlements_biller_id_period_end'), ['biller_id', 'period_end'], unique=False)

    op.create_table('settlement_lines',
    sa.Column('settlement_id', sa.String(length=40), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=True),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('unit_amount', sa.BigInteger(), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['settlement_id'], ['settlements.settlement_id'], name=op.f('fk_settlement_lines_settlement_id_settlements')),
    sa.PrimaryKeyConstraint('settlement_id', 'line_no', name=op.f('pk_settlement_lines'))
    )
    # New nullable columns with a foreign key. SQLite: ADD COLUMN ... REFERENCES (no copy of
    # the table, which a full ledger would make slow and its foreign keys would refuse).
    bigid = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
    added: list[tuple[str, str, Any, str, str]] = [
        ('bills', 'purge_id', bigid, 'data_purges', 'id'),
        ('mandates', 'purge_id', bigid, 'data_purges', 'id'),
        ('payments', 'settlement_id', sa.String(length=40), 'settlements', 'settlement_id'),
        ('refund_cases', 'settlement_id', sa.String(length=40), 'settlements', 'settlement_id'),
    ]
    sqlite = op.get_bind().dialect.name == 'sqlite'
    for table, column, type_, target, key in added:
        name = op.f(f'fk_{table}_{column}_{target}')
        if sqlite:
            sql_type = 'INTEGER' if type_ is bigid else 'VARCHAR(40)'
            op.execute(f'ALTER TABLE {table} ADD COLUMN {column} {sql_type} CONSTRAINT {name} REFERENCES {target} ({key})')
        else:
            op.add_column(table, sa.Column(column, type_, nullable=True))
            op.create_foreign_key(name, table, target, [column], [key])
    op.create_index(op.f('ix_payments_biller_id_settlement_id_status'), 'payments', ['biller_id', 'settlement_id', 'status'], unique=False)
    op.create_index(op.f('ix_payments_settlement_id'), 'payments', ['settlement_id'], unique=False)
    op.create_index(op.f('ix_bills_purge_id_updated_at'), 'bills', ['purge_id', 'updated_at'], unique=False)
    op.create_index(op.f('ix_bills_biller_id_due_date'), 'bills', ['biller_id', 'due_date'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_bills_biller_id_due_date'), table_name='bills')
    op.drop_index(op.f('ix_bills_purge_id_updated_at'), table_name='bills')
    with op.batch_alter_table('refund_cases', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_refund_cases_settlement_id_settlements'), type_='foreignkey')
        batch_op.drop_column('settlement_id')

    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_payments_settlement_id_settlements'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_payments_settlement_id'))
        batch_op.drop_index(batch_op.f('ix_payments_biller_id_settlement_id_status'))
        batch_op.drop_column('settlement_id')

    with op.batch_alter_table('mandates', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_mandates_purge_id_data_purges'), type_='foreignkey')
        batch_op.drop_column('purge_id')

    with op.batch_alter_table('bills', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_bills_purge_id_data_purges'), type_='foreignkey')
        batch_op.drop_column('purge_id')

    op.drop_table('settlement_lines')
    with op.batch_alter_table('settlements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_settlements_biller_id_period_end'))

    op.drop_table('settlements')
    op.drop_table('fee_plans')
    op.drop_table('data_purges')
