"""Payout accounts and payout files (migration 0013), on the one ``MetaData`` of the schema.

``payout_accounts``: where each biller is paid, versioned. A row applies from its
``effective_from`` (a JST date) until the next row's; the bank, branch and 預金種目 are plain,
the account number and the holder's name are sealed with ``[secrets] key``
(:meth:`gateway.infra.secretbox.SecretBox.seal`, bound to the biller and date); ``number_hint``
keeps the last 3 digits for the masked ``****567``. A version that a payout file used is never
changed (a correction is a new version), so a requested payout keeps the account it went to.
``purge_id``: the retention run that removed the number and name after the biller ended.

``payout_files``: one 総合振込 file (種別コード 21) per transfer date and sequence, recorded
``pending`` in the transaction that chooses its settlements, then written to the outbox and
marked ``written``; a pending one is written again, byte for byte, after a crash.

``payout_items``: one data record each. ``settlement_id`` is unique: a settlement is in one
payout file at most. ``customer_code`` (顧客コード1 + 2) is how the bank's 振込不能 names it.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
)

from gateway.store.schema_base import BigId, UTCDateTime, metadata

payout_accounts = Table(
    "payout_accounts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("biller_id", String(32), ForeignKey("billers.biller_id"), nullable=False),
    Column("effective_from", Date, nullable=False),
    Column("bank_code", String(4), nullable=False),
    Column("bank_name", String(15), nullable=False),
    Column("branch_code", String(3), nullable=False),
    Column("branch_name", String(15), nullable=False),
    Column("account_type", String(1), nullable=False),
    Column("account_number", String(100), nullable=False),  # sealed ("v1:…"), 7 digits inside
    Column("number_hint", String(3), nullable=False),  # the last 3 digits: ****567
    Column("holder_kana", String(200), nullable=False),  # sealed, Zengin kana inside
    Column("created_at", UTCDateTime, nullable=False),
    Column("purge_id", BigId, ForeignKey("data_purges.id")),
    UniqueConstraint("biller_id", "effective_from"),
)

payout_files = Table(
    "payout_files",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("transfer_date", Date, nullable=False),  # 取組日
    Column("sequence", Integer, nullable=False),  # 1, 2 … for the files of one date
    Column("file_name", String(100), nullable=False, unique=True),
    Column("requester_code", String(10), nullable=False),  # 振込依頼人コード
    Column("records", Integer, nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),  # pending, written
    Column("created_at", UTCDateTime, nullable=False),
    Column("written_at", UTCDateTime),
    UniqueConstraint("transfer_date", "sequence"),
    Index(None, "status"),
)

payout_items = Table(
    "payout_items",
    metadata,
    Column("file_id", BigId, ForeignKey("payout_files.id"), primary_key=True),
    Column("record_no", Integer, primary_key=True),  # data record i is record i + 1
    Column(
        "settlement_id",
        String(40),
        ForeignKey("settlements.settlement_id"),
        nullable=False,
        unique=True,
    ),
    Column("biller_id", String(32), ForeignKey("billers.biller_id"), nullable=False),
    Column("account_id", BigId, ForeignKey("payout_accounts.id"), nullable=False),
    Column("customer_code", String(20), nullable=False, unique=True),  # 顧客コード1 + 2
    Column("amount", BigInteger, nullable=False),
    Column("return_code", String(1)),  # 振込不能事由, once the bank returned it
    Column("returned_at", UTCDateTime),
    Column("return_file", String(200)),
    Index(None, "account_id", "return_code"),
)
