"""payouts: payout accounts, payout files and their settlements (issue 21)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 13:00:00

How the center pays its billers out (gateway.money.payouts, docs/settlement.md "Payouts"):

- ``payout_accounts``: each biller's payout account, versioned by ``effective_from``; the
  account number and holder name sealed with ``[secrets] key`` (the daemon and gateway-admin
  seal them: nothing to convert, the table is new);
- ``payout_files`` and ``payout_items``: the 総合振込 files (種別コード 21) and their data
  records, one per settlement (``settlement_id`` unique: a settlement is in one file at most);
- ``settlements`` gains ``returned_in`` (earlier payouts returned by the bank, paid again),
  ``payout_state`` (existing settlements are ``settled``: in no payout file),
  ``payout_state_at`` and ``carried_into`` (the settlement that took a returned payout).
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
CARRIED_FK = "fk_settlements_carried_into_settlements"


def upgrade() -> None:
    # Columns are added without batch mode (as 0010, 0011), so that SQLite does not rebuild
    # ``settlements`` under the foreign keys of payments and refund cases.
    op.add_column(
        "settlements",
        sa.Column("returned_in", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.add_column(
        "settlements",
        sa.Column("payout_state", sa.String(length=20), server_default="settled", nullable=False),
    )
    op.add_column(
        "settlements", sa.Column("payout_state_at", sa.DateTime(timezone=True), nullable=True)
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE settlements ADD COLUMN carried_into VARCHAR(40) "
            f"CONSTRAINT {CARRIED_FK} REFERENCES settlements (settlement_id)"
        )
    else:
        op.add_column("settlements", sa.Column("carried_into", sa.String(length=40)))
        op.create_foreign_key(
            op.f(CARRIED_FK), "settlements", "settlements", ["carried_into"], ["settlement_id"]
        )
    op.create_index(
        op.f("ix_settlements_payout_state_payout_date"),
        "settlements",
        ["payout_state", "payout_date"],
        unique=False,
    )

    op.create_table(
        "payout_accounts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("biller_id", sa.String(length=32), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("bank_code", sa.String(length=4), nullable=False),
        sa.Column("bank_name", sa.String(length=15), nullable=False),
        sa.Column("branch_code", sa.String(length=3), nullable=False),
        sa.Column("branch_name", sa.String(length=15), nullable=False),
        sa.Column("account_type", sa.String(length=1), nullable=False),
        sa.Column("account_number", sa.String(length=100), nullable=False),
        sa.Column("number_hint", sa.String(length=3), nullable=False),
        sa.Column("holder_kana", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purge_id", BIG_ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["biller_id"], ["billers.biller_id"], name=op.f("fk_payout_accounts_biller_id_billers")
        ),
        sa.ForeignKeyConstraint(
            ["purge_id"], ["data_purges.id"], name=op.f("fk_payout_accounts_purge_id_data_purges")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_accounts")),
        sa.UniqueConstraint(
            "biller_id", "effective_from", name=op.f("uq_payout_accounts_biller_id_effective_from")
        ),
    )
    op.create_table(
        "payout_files",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("transfer_date", sa.Date(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.String(length=100), nullable=False),
        sa.Column("requester_code", sa.String(length=10), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_files")),
        sa.UniqueConstraint("file_name", name=op.f("uq_payout_files_file_name")),
        sa.UniqueConstraint(
            "transfer_date", "sequence", name=op.f("uq_payout_files_transfer_date_sequence")
        ),
    )
    op.create_index(op.f("ix_payout_files_status"), "payout_files", ["status"], unique=False)
    op.create_table(
        "payout_items",
        sa.Column("file_id", BIG_ID, nullable=False),
        sa.Column("record_no", sa.Integer(), nullable=False),
        sa.Column("settlement_id", sa.String(length=40), nullable=False),
        sa.Column("biller_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", BIG_ID, nullable=False),
        sa.Column("customer_code", sa.String(length=20), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("return_code", sa.String(length=1), nullable=True),
        sa.Column("returned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("return_file", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["payout_accounts.id"],
            name=op.f("fk_payout_items_account_id_payout_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["biller_id"], ["billers.biller_id"], name=op.f("fk_payout_items_biller_id_billers")
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], ["payout_files.id"], name=op.f("fk_payout_items_file_id_payout_files")
        ),
        sa.ForeignKeyConstraint(
            ["settlement_id"],
            ["settlements.settlement_id"],
            name=op.f("fk_payout_items_settlement_id_settlements"),
        ),
        sa.PrimaryKeyConstraint("file_id", "record_no", name=op.f("pk_payout_items")),
        sa.UniqueConstraint("customer_code", name=op.f("uq_payout_items_customer_code")),
        sa.UniqueConstraint("settlement_id", name=op.f("uq_payout_items_settlement_id")),
    )
    op.create_index(
        op.f("ix_payout_items_account_id_return_code"),
        "payout_items",
        ["account_id", "return_code"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_payout_items_account_id_return_code"), table_name="payout_items")
    op.drop_table("payout_items")
    op.drop_index(op.f("ix_payout_files_status"), table_name="payout_files")
    op.drop_table("payout_files")
    op.drop_table("payout_accounts")
    op.drop_index(op.f("ix_settlements_payout_state_payout_date"), table_name="settlements")
    if op.get_bind().dialect.name == "sqlite":
        # SQLite drops a column that a constraint names only with the table rebuilt: the
        # columns go with plain ALTER TABLE … DROP COLUMN after the constraint is gone.
        with op.batch_alter_table("settlements", recreate="always") as batch_op:
            batch_op.drop_column("carried_into")
    else:
        op.drop_constraint(op.f(CARRIED_FK), "settlements", type_="foreignkey")
        op.drop_column("settlements", "carried_into")
    for name in ("payout_state_at", "payout_state", "returned_in"):
        op.drop_column("settlements", name)
