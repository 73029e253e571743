"""cvs agencies: billers under an agency with its code, payments carry their agency

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 10:00:00

- ``billers.cvs_agency``: the [[cvs.agencies]] id of the biller's agency; NULL for the billers
  created before, which belong to ``[cvs] default_agency``.
- ``billers.cvs_code``: the 5-digit code the agency assigned to the biller, when the agency
  gives each biller its own; unique within the agency.
- ``payments.agency``: the CVS agency whose link, inbox or pull brought the payment. NULL for
  the other channels and for the CVS payments received before (all of the one agency then).
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('billers') as batch:
        batch.add_column(sa.Column('cvs_agency', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('cvs_code', sa.String(length=5), nullable=True))
        batch.create_unique_constraint('uq_billers_cvs_agency_cvs_code', ['cvs_agency', 'cvs_code'])
    with op.batch_alter_table('payments') as batch:
        batch.add_column(sa.Column('agency', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('payments') as batch:
        batch.drop_column('agency')
    with op.batch_alter_table('billers') as batch:
        batch.drop_constraint('uq_billers_cvs_agency_cvs_code', type_='unique')
        batch.drop_column('cvs_code')
        batch.drop_column('cvs_agency')
