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


# Columns are added and dropped, and the uniqueness kept by an index, without batch mode: on
# SQLite a batch would rebuild ``billers``, which the other tables' foreign keys refer to.


def upgrade() -> None:
    op.add_column('billers', sa.Column('cvs_agency', sa.String(length=32), nullable=True))
    op.add_column('billers', sa.Column('cvs_code', sa.String(length=5), nullable=True))
    op.create_index(
        'uq_billers_cvs_agency_cvs_code', 'billers', ['cvs_agency', 'cvs_code'], unique=True
    )
    op.add_column('payments', sa.Column('agency', sa.String(length=32), nullable=True))


def downgrade() -> None:
    op.drop_column('payments', 'agency')
    op.drop_index('uq_billers_cvs_agency_cvs_code', table_name='billers')
    op.drop_column('billers', 'cvs_code')
    op.drop_column('billers', 'cvs_agency')
