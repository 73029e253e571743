"""notices: SMS and notices, opt-outs, fallback after a failed debit (issue 22)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 13:00:00

- ``billers.notice_rules``: the biller's fallback after a failed debit and its notice settings
  as JSON (gateway.notice_rules); NULL: the defaults (no fallback; the page URL by e-mail).
- ``notifications`` becomes the one outbox of every notice, by e-mail or SMS: ``kind`` (page,
  fallback, reminder, received), ``medium`` (email, sms), ``ref`` (what makes the notice one of
  a kind for its bill: the reissue number, the due date of a reminder, the payment id of a
  receipt) and ``provider_id`` (the SMS provider's id). The rows of before are page e-mails of
  new bills (``page``, ``email``, ``0``). A bill may now have many notices: the unique key is
  (bill_id, kind, medium, ref) instead of bill_id.
- ``notice_optouts``: customers who asked for no e-mail or no SMS notice.
- ``notice_cursors``: how far the notice job has read each biller's events; the billers of
  today start at their newest event, so that nothing old is announced after the upgrade.
- ``bill_fallbacks``: what was done after each failed debit of a bill (redebit, reissue, none).
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    # As 0010 and 0011: a column of ``billers`` is added without batch mode, so that SQLite does
    # not rebuild it under the other tables' foreign keys. ``notifications`` is referenced by no
    # table: SQLite rebuilds it to change its unique key.
    op.add_column("billers", sa.Column("notice_rules", sa.Text(), nullable=True))
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), server_default="page", nullable=False)
        )
        batch_op.add_column(
            sa.Column("medium", sa.String(length=8), server_default="email", nullable=False)
        )
        batch_op.add_column(
            sa.Column("ref", sa.String(length=64), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("provider_id", sa.String(length=64), nullable=True))
        batch_op.drop_constraint("uq_notifications_bill_id", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_notifications_bill_id_kind_medium_ref"),
            ["bill_id", "kind", "medium", "ref"],
        )
        batch_op.create_index(
            batch_op.f("ix_notifications_biller_id_sent_at"), ["biller_id", "sent_at"]
        )
    op.create_table(
        "notice_optouts",
        sa.Column("biller_id", sa.String(length=32), nullable=False),
        sa.Column("customer_no", sa.String(length=64), nullable=False),
        sa.Column("email", sa.Boolean(), nullable=False),
        sa.Column("sms", sa.Boolean(), nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["biller_id"],
            ["billers.biller_id"],
            name=op.f("fk_notice_optouts_biller_id_billers"),
        ),
        sa.PrimaryKeyConstraint("biller_id", "customer_no", name=op.f("pk_notice_optouts")),
    )
    op.create_table(
        "notice_cursors",
        sa.Column("biller_id", sa.String(length=32), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["biller_id"],
            ["billers.biller_id"],
            name=op.f("fk_notice_cursors_biller_id_billers"),
        ),
        sa.PrimaryKeyConstraint("biller_id", name=op.f("pk_notice_cursors")),
    )
    op.execute(
        "INSERT INTO notice_cursors (biller_id, last_seq) "
        "SELECT biller_id, last_event_seq FROM billers"
    )
    op.create_table(
        "bill_fallbacks",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("bill_id", ID, nullable=False),
        sa.Column("biller_id", sa.String(length=32), nullable=False),
        sa.Column("debit_date", sa.Date(), nullable=False),
        sa.Column("result_code", sa.String(length=2), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("redebit_date", sa.Date(), nullable=True),
        sa.Column("channels", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["bill_id"], ["bills.id"], name=op.f("fk_bill_fallbacks_bill_id_bills")
        ),
        sa.ForeignKeyConstraint(
            ["biller_id"],
            ["billers.biller_id"],
            name=op.f("fk_bill_fallbacks_biller_id_billers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bill_fallbacks")),
        sa.UniqueConstraint(
            "bill_id", "debit_date", name=op.f("uq_bill_fallbacks_bill_id_debit_date")
        ),
    )
    op.create_index(
        op.f("ix_bill_fallbacks_biller_id_created_at"),
        "bill_fallbacks",
        ["biller_id", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_bill_fallbacks_biller_id_created_at"), table_name="bill_fallbacks")
    op.drop_table("bill_fallbacks")
    op.drop_table("notice_cursors")
    op.drop_table("notice_optouts")
    # Only the page e-mails of new bills fit the old unique key (one notice per bill).
    op.execute("DELETE FROM notifications WHERE kind <> 'page' OR medium <> 'email' OR ref <> '0'")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notifications_biller_id_sent_at"))
        batch_op.drop_constraint("uq_notifications_bill_id_kind_medium_ref", type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_notifications_bill_id"), ["bill_id"])
        batch_op.drop_column("provider_id")
        batch_op.drop_column("ref")
        batch_op.drop_column("medium")
        batch_op.drop_column("kind")
    op.drop_column("billers", "notice_rules")
