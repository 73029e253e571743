"""The database schema (SQLAlchemy Core). Alembic migrations are written from it.

Uniqueness that the business depends on lives here, not only in Python: one bill_no per biller,
one お客様番号 per 収納機関番号, one bill key per barcode, one ``seq`` per biller in the outbox.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from gateway.store.schema_base import BigId, UTCDateTime, metadata
from gateway.store.schema_console import (  # noqa: F401 - the console's users (0018)
    console_sessions,
    console_users,
)
from gateway.store.schema_notices import (  # noqa: F401 - notices and fallbacks (0015)
    bill_fallbacks,
    notice_cursors,
    notice_optouts,
)
from gateway.store.schema_ops import audit_log  # noqa: F401 - the operator's tables (0011)
from gateway.store.schema_payer import payer_numbers  # noqa: F401 - payer numbers (0016)
from gateway.store.schema_payouts import (  # noqa: F401 - payout accounts and files (0013)
    payout_accounts,
    payout_files,
    payout_items,
)

billers = Table(
    "billers",
    metadata,
    Column("biller_id", String(32), primary_key=True),
    # The 5-digit code inside barcodes and お客様番号, assigned at onboarding, never reused.
    Column("code", String(5), nullable=False, unique=True),
    Column("name", String(100), nullable=False),
    Column("kana", String(40), nullable=False),
    Column("channels", String(40), nullable=False),
    Column("payeasy_institution_code", String(5)),
    # Its CVS agency (NULL: [cvs] default_agency) and the code that agency gave it (0010).
    Column("cvs_agency", String(32)),
    Column("cvs_code", String(5)),
    Column("suspended_at", UTCDateTime),  # (0011) set: its keys refused, no new bill
    # Its convenience-store chain rules as JSON (gateway.chain_rules; NULL: every chain) (0017).
    Column("chain_rules", Text),
    # Its fallback after a failed debit and its notice settings as JSON (gateway.notice_rules;
    # NULL: the defaults) (0015).
    Column("notice_rules", Text),
    # Last outbox seq handed out for this biller: the row lock on it makes seq gap-free and in
    # commit order per biller.
    Column("last_event_seq", BigInteger, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Index("uq_billers_cvs_agency_cvs_code", "cvs_agency", "cvs_code", unique=True),  # (0010)
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("biller_id", String(32), ForeignKey("billers.biller_id")),
    Column("is_admin", Boolean, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    # (0019) What the biller calls the key, the key's first characters (gw_ and 4 more: never
    # more), and when a request last came with it (to within KEY_TOUCH_EVERY).
    Column("name", String(64)),
    Column("prefix", String(16)),
    Column("last_used_at", UTCDateTime),
)

bills = Table(
    "bills",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("biller_id", String(32), ForeignKey("billers.biller_id"), nullable=False),
    Column("bill_no", String(64), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("due_date", Date),
    Column("channels", String(40), nullable=False),
    Column("customer_no", String(64)),
    Column("customer_name", String(100)),
    Column("customer_kana", String(100)),
    Column("customer_email", String(254)),
    Column("customer_phone", String(20)),
    Column("taxable", Boolean, nullable=False),
    Column("tax_amount", BigInteger, nullable=False),
    Column("description", String(200)),
    Column("status", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("reissue", Integer, nullable=False),
    Column("double_paid", Boolean, nullable=False),
    Column("late", Boolean, nullable=False),
    Column("barcode", String(44)),
    # company code + free field (barcode digits 3-29): what a store payment names its bill by.
    Column("cvs_bill_key", String(27), unique=True),
    Column("stamp", Boolean, nullable=False),
    Column("payeasy_institution_code", String(5)),
    Column("payeasy_customer_number", String(20)),
    Column("payeasy_confirmation_number", String(6)),
    # SHA-256 (hex) of the page token, an HMAC of biller and bill number (gateway.infra.secretbox);
    # "legacy:<id>" until the daemon fills it in for a bill made before migration 0009.
    Column("page_token", String(64), nullable=False, unique=True),
    # SHA-256 of the random token a bill made before migration 0009 was issued: it still opens.
    Column("legacy_page_token", String(64)),
    # SHA-256 of the fields the biller sent: "same bill_no, identical fields" is a replay.
    Column("fingerprint", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # The retention run that removed the customer's personal data (migration 0008).
    Column("purge_id", BigId, ForeignKey("data_purges.id")),
    # (0016) An amount the payer chooses: any from min_amount to max_amount pays the bill, whose
    # ``amount`` is then 0 (NULL both: the bill asks for ``amount``).
    Column("min_amount", BigInteger),
    Column("max_amount", BigInteger),
    UniqueConstraint("biller_id", "bill_no"),
    UniqueConstraint("payeasy_institution_code", "payeasy_customer_number"),
    Index(None, "biller_id", "updated_at", "id"),
    Index(None, "biller_id", "status", "id"),
    Index(None, "purge_id", "updated_at"),  # the retention job: bills not purged, oldest first
    Index(None, "biller_id", "due_date"),  # settlements: a period's uncollected bills
    Index(None, "legacy_page_token", unique=True),  # migration 0009
    Index(None, "biller_id", "customer_no", "due_date"),  # a customer's bills (0016)
)

bill_slips = Table(
    "bill_slips",
    metadata,
    Column("bill_id", BigId, ForeignKey("bills.id"), primary_key=True),
    Column("reissue", Integer, primary_key=True),
    Column("barcode", String(44), nullable=False, unique=True),
    Column("amount", BigInteger, nullable=False),
    Column("due_date", Date),
    Column("stamp", Boolean, nullable=False),
    Column("issued_at", UTCDateTime, nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    # "biller:<id>" or "admin:<key_id>": keys are scoped to whoever sent them.
    Column("scope", String(64), primary_key=True),
    Column("idempotency_key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response_body", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "created_at"),
)

events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),  # global order
    Column("event_id", String(40), nullable=False, unique=True),
    Column("biller_id", String(32), ForeignKey("billers.biller_id"), nullable=False),
    Column("seq", BigInteger, nullable=False),  # gap-free per biller
    Column("type", String(40), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("data", Text, nullable=False),
    UniqueConstraint("biller_id", "seq"),
)

# Every collection message as first received. (channel, event_key, kind) is the identity of a
# message: a resend, an overlapping file or a re-polled window hits this unique key and changes
# nothing. This table is the dedup gate of the whole ledger.
collection_messages = Table(
    "collection_messages",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("channel", String(16), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("event_key", String(96), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("paid_at", UTCDateTime, nullable=False),
    Column("source", String(200), nullable=False),  # "link:cvs-agency", "file:NAME", "poll:…"
    Column("line", Integer),  # record or line number inside a file
    Column("raw", LargeBinary, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("outcome", String(24), nullable=False),  # applied, anomaly, unknown_bill, …
    UniqueConstraint("channel", "event_key", "kind"),
)

# One real payment: (channel, event_key) is unique, so two daemons cannot count it twice.
payments = Table(
    "payments",
    metadata,
    Column("payment_id", String(40), primary_key=True),
    Column("biller_id", String(32), ForeignKey("billers.biller_id")),
    Column("bill_id", BigId, ForeignKey("bills.id")),
    Column("channel", String(16), nullable=False),
    Column("event_key", String(96), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("paid_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("late", Boolean, nullable=False),
    Column("store", String(40)),
    Column("transfer_date", Date),
    Column("agency", String(32)),  # the CVS agency that brought it (0010); NULL elsewhere
    # (0017) A CVS payment as its biller's chain rules judged it on arrival: the chain accepted,
    # the receipt stamped. NULL: not judged (the stamp then follows the barcode's 印紙フラグ).
    Column("chain_accepted", Boolean),
    Column("stamped", Boolean),
    Column("created_at", UTCDateTime, nullable=False),
    Column("confirmed_at", UTCDateTime),
    Column("voided_at", UTCDateTime),
    # The settlement that paid it out (migration 0008): set once, by the run that claims it.
    Column("settlement_id", String(40), ForeignKey("settlements.settlement_id")),
    UniqueConstraint("channel", "event_key"),
    Index(None, "bill_id"),
    Index(None, "biller_id", "created_at"),
    Index(None, "biller_id", "settlement_id", "status"),
    Index(None, "settlement_id"),
    Index(None, "status", "channel", "paid_at"),  # the watch: pending payments (0012)
    Index(None, "channel", "transfer_date"),  # reconciliation: remittances by date (0014)
)

refund_cases = Table(
    "refund_cases",
    metadata,
    Column("case_id", String(40), primary_key=True),
    Column("biller_id", String(32), ForeignKey("billers.biller_id")),
    Column("bill_id", BigId, ForeignKey("bills.id")),
    Column("payment_id", String(40), ForeignKey("payments.payment_id"), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("resolution", String(32)),
    Column("note", String(500)),
    Column("resolved_at", UTCDateTime),
    # The settlement that deducted a refunded case from the biller's payout (migration 0008).
    Column("settlement_id", String(40), ForeignKey("settlements.settlement_id")),
    UniqueConstraint("payment_id", "reason"),
    Index(None, "biller_id", "status"),
)

# Messages that contradict the ledger (a void after a confirmation...): kept, never applied.
anomalies = Table(
    "anomalies",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("message_id", BigId, ForeignKey("collection_messages.id"), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("event_key", String(96), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("detail", String(500), nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
)

# Wrong 確認番号 per お客様番号 and business date: the brute-force guard of the MPN inquiry.
mpn_guard = Table(
    "mpn_guard",
    metadata,
    Column("institution_code", String(5), primary_key=True),
    Column("customer_number", String(20), primary_key=True),
    Column("business_date", Date, primary_key=True),
    Column("failures", Integer, nullable=False),
)

# 閉局: each business day's counters, ours and the center's, and whether they matched.
mpn_day_closes = Table(
    "mpn_day_closes",
    metadata,
    Column("business_date", Date, primary_key=True),
    Column("payments_count", BigInteger, nullable=False),
    Column("payments_sum", BigInteger, nullable=False),
    Column("cancels_count", BigInteger, nullable=False),
    Column("cancels_sum", BigInteger, nullable=False),
    Column("center_payments_count", BigInteger),
    Column("center_payments_sum", BigInteger),
    Column("center_cancels_count", BigInteger),
    Column("center_cancels_sum", BigInteger),
    Column("matched", Boolean),
    Column("closed_at", UTCDateTime, nullable=False),
)

# 委託者: a biller's account-transfer contract with its bank; the header of its request files.
zengin_consignors = Table(
    "zengin_consignors",
    metadata,
    Column("biller_id", String(32), ForeignKey("billers.biller_id"), primary_key=True),
    Column("consignor_code", String(10), nullable=False, unique=True),  # 委託者コード
    Column("consignor_name", String(40), nullable=False),  # 委託者名 (Zengin kana)
    Column("bank_code", String(4), nullable=False),  # 取引銀行
    Column("bank_name", String(15), nullable=False),
    Column("branch_code", String(3), nullable=False),
    Column("branch_name", String(15), nullable=False),
    Column("account_type", String(1), nullable=False),
    Column("account_number", String(7), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# 口座振替依頼: a customer's account a biller may debit. One per (biller, customer_no); a
# change keeps the row (and its id) and raises its version; a revocation keeps it revoked.
mandates = Table(
    "mandates",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("biller_id", String(32), ForeignKey("billers.biller_id"), nullable=False),
    Column("customer_no", String(64), nullable=False),
    Column("bank_code", String(4), nullable=False),
    Column("bank_name", String(15), nullable=False),
    Column("branch_code", String(3), nullable=False),
    Column("branch_name", String(15), nullable=False),
    Column("account_type", String(1), nullable=False),
    Column("account_number", String(7), nullable=False),
    Column("holder_kana", String(30), nullable=False),
    Column("status", String(16), nullable=False),  # active, suspended, invalid, revoked
    Column("status_reason", String(100)),  # the result code that suspended or invalidated it
    Column("new_code", String(1), nullable=False),  # 新規コード of its next debit
    Column("requested", Boolean, nullable=False),  # has been in a request file
    Column("version", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("purge_id", BigId, ForeignKey("data_purges.id")),  # migration 0008
    UniqueConstraint("biller_id", "customer_no"),
)

# A request file: recorded (pending) in the transaction that chooses its bills, then written
# to the outbox (temp file + rename) and marked written. A pending one is written again from
# its items after a crash: the file is a pure function of them.
zengin_requests = Table(
    "zengin_requests",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("biller_id", String(32), ForeignKey("billers.biller_id"), nullable=False),
    Column("consignor_code", String(10), nullable=False),
    Column("debit_date", Date, nullable=False),
    Column("file_name", String(100), unique=True),
    Column("records", Integer, nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),  # pending, written
    Column("created_at", UTCDateTime, nullable=False),
    Column("written_at", UTCDateTime),
    Index(None, "status"),
    Index(None, "biller_id", "debit_date"),
)

# One debit asked of the bank: a bill is in at most one request per debit date, and
# (委託者コード, 引落日, 顧客番号) finds it again when the result comes back. The account is
# kept as written, so the file can be rebuilt and a result compared with the mandate now.
zengin_request_items = Table(
    "zengin_request_items",
    metadata,
    Column("request_id", BigId, ForeignKey("zengin_requests.id"), primary_key=True),
    Column("record_no", Integer, primary_key=True),  # data record i is record i + 1 of the file
    Column("bill_id", BigId, ForeignKey("bills.id"), nullable=False),
    Column("mandate_id", BigId, ForeignKey("mandates.id"), nullable=False),
    Column("consignor_code", String(10), nullable=False),
    Column("debit_date", Date, nullable=False),
    Column("customer_number", String(20), nullable=False),  # 顧客番号
    Column("bank_code", String(4), nullable=False),
    Column("bank_name", String(15), nullable=False),
    Column("branch_code", String(3), nullable=False),
    Column("branch_name", String(15), nullable=False),
    Column("account_type", String(1), nullable=False),
    Column("account_number", String(7), nullable=False),
    Column("holder_kana", String(30), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("new_code", String(1), nullable=False),
    Column("result_code", String(1)),
    Column("result_at", UTCDateTime),
    UniqueConstraint("bill_id", "debit_date"),
    Index(None, "result_code", "debit_date"),  # the watch: debits with no result yet (0012)
    # (the default name would pass PostgreSQL's 63-character limit)
    UniqueConstraint(
        "consignor_code", "debit_date", "customer_number", name="uq_zengin_request_items_result_key"
    ),
)

# --- webhooks (migration 0005) ----------------------------------------------------------------

# A biller's webhook endpoint. The secret cannot be hashed (the gateway needs it to sign): it is
# kept encrypted with [secrets] key ("v1:…", gateway.infra.secretbox; plain text only before the
# daemon's first start after migration 0009); the API shows it once, no log carries it. Deleting
# an endpoint disables it (the delivery log stays). ``after_seq``: the biller's dispatch cursor
# when it was created; only events after it are sent to it (redeliver excepted).
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("endpoint_id", String(40), nullable=False, unique=True),
    Column("biller_id", String(32), ForeignKey("billers.biller_id"), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("events", String(500), nullable=False),  # "*" or event types joined by ","
    Column("secret", String(100), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("after_seq", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime),
    Index(None, "biller_id", "enabled"),
)

# The dispatcher's place in each biller's events: every event up to ``last_seq`` has its
# deliveries. Per biller because a biller's seq is gap-free and in commit order (the biller
# row lock), which a global serial is not on PostgreSQL. The row is locked (SKIP LOCKED) while
# a dispatcher works on it, and by an endpoint's creation.
webhook_cursors = Table(
    "webhook_cursors",
    metadata,
    Column("biller_id", String(32), ForeignKey("billers.biller_id"), primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
)

# One event to get to one endpoint (round 0 from the dispatcher, 1, 2… for each redeliver),
# retried until success or ``max_age``. ``due_at``: when a worker may claim it (the next
# attempt; while in flight, the lease's end, so a crashed daemon's claim is taken again);
# NULL once it is final (succeeded, failed, cancelled).
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("endpoint_pk", BigId, ForeignKey("webhook_endpoints.id"), nullable=False),
    Column("event_pk", BigId, ForeignKey("events.id"), nullable=False),
    Column("round", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # pending, in_flight, succeeded, failed, …
    Column("attempts", Integer, nullable=False),
    Column("due_at", UTCDateTime),
    Column("lease_owner", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime),
    UniqueConstraint("endpoint_pk", "event_pk", "round"),
    Index(None, "due_at"),
    Index(None, "completed_at"),
)

# The delivery log: one row per attempt, written when it is claimed and completed with its
# outcome. ``delivery_id`` is the Gateway-Delivery-Id header of that attempt.
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("delivery_id", String(40), nullable=False, unique=True),
    Column("delivery_pk", BigId, ForeignKey("webhook_deliveries.id"), nullable=False),
    Column("endpoint_pk", BigId, nullable=False),
    Column("event_id", String(40), nullable=False),
    Column("event_type", String(40), nullable=False),
    Column("redelivery", Boolean, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("attempted_at", UTCDateTime, nullable=False),
    Column("result", String(16), nullable=False),  # in_flight, success, retry, failed, …
    Column("status_code", Integer),
    Column("error", String(200)),
    Column("duration_ms", Integer),
    Column("next_attempt_at", UTCDateTime),
    UniqueConstraint("delivery_pk", "attempt"),
    Index(None, "endpoint_pk", "id"),
)

# --- bulk registration (migration 0006) -------------------------------------------------------

# One CSV file of bills registered whole (POST /v1/bills/batch or the biller's watched folder).
# Written in the transaction that stores its bills; what the file asked is in its items.
bill_batches = Table(
    "bill_batches",
    metadata,
    Column("batch_id", String(40), primary_key=True),  # "bat_" + 24 hex digits
    Column("biller_id", String(32), ForeignKey("billers.biller_id"), nullable=False),
    Column("source", String(300), nullable=False),  # "api", or "inbox:NAME"
    Column("encoding", String(16), nullable=False),  # as read: "utf-8" or "shift_jis"
    Column("row_count", Integer, nullable=False),
    Column("created_count", Integer, nullable=False),
    Column("existing_count", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "biller_id", "created_at"),
)

# Each bill row of a batch: the spreadsheet row it came from (the header is row 1) and the bill
# it created, or the identical bill that existed already. The result CSV is read from here.
bill_batch_items = Table(
    "bill_batch_items",
    metadata,
    Column("batch_id", String(40), ForeignKey("bill_batches.batch_id"), primary_key=True),
    Column("row_no", Integer, primary_key=True),
    Column("bill_id", BigId, ForeignKey("bills.id"), nullable=False),
    Column("created", Boolean, nullable=False),
)

# --- notifications (migration 0007) -----------------------------------------------------------

# E-mails to customers (the page URL of a new bill): queued in the transaction that creates
# the bill (so none is lost and none is sent for a bill that was rolled back), sent through the
# configured SMTP relay with retries. Claimed with a lease, so a crashed daemon's sends are taken
# up again.
notifications = Table(
    "notifications",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("biller_id", String(32), ForeignKey("billers.biller_id"), nullable=False),
    Column("bill_id", BigId, ForeignKey("bills.id"), nullable=False),
    Column("status", String(16), nullable=False),  # pending, sending, sent, skipped, failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime),
    Column("last_error", String(300)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    # (0015) What it says (page, fallback, reminder, received: gateway.notice_rules.Notice), by
    # which medium (email, sms), and what makes it one of a kind for its bill: the reissue
    # number of a page or fallback notice, the due date of a reminder, the payment id of a
    # receipt. The provider's id of a sent SMS.
    Column("kind", String(16), nullable=False, server_default="page"),
    Column("medium", String(8), nullable=False, server_default="email"),
    Column("ref", String(64), nullable=False, server_default="0"),
    Column("provider_id", String(64)),
    UniqueConstraint("bill_id", "kind", "medium", "ref"),
    Index(None, "status", "next_attempt_at"),
    Index(None, "biller_id", "sent_at"),  # notices sent per biller and period (the fees)
)

# --- settlement and retention (migration 0008) ------------------------------------------------

# A biller's contract, versioned: each row applies from ``effective_from`` (a JST date) until the
# next row's. ``rates`` is the JSON of the per-channel fees ({"cvs": {"per_payment": 60,
# "per_uncollected": 10, "stamp_charge": 200}, …}), validated by gateway.money.fees.parse_plan.
fee_plans = Table(
    "fee_plans",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("biller_id", String(32), ForeignKey("billers.biller_id"), nullable=False),
    Column("effective_from", Date, nullable=False),
    Column("cycle", String(24), nullable=False),
    Column("payout_days", Integer, nullable=False),
    Column("settlement_fee", BigInteger, nullable=False),
    Column("tax_rate", Integer, nullable=False),  # percent
    Column("tax_rounding", String(8), nullable=False),  # floor, half_up, ceil
    Column("rates", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # The fees of migration 0014 (gateway.fee_model): initial, monthly (waived for a month
    # without a collection when waive_idle_months), per bill registered, per notice (JSON
    # {"email": 5, "sms": 15, "sheet": 30}).
    Column("initial_fee", BigInteger, nullable=False, server_default="0"),
    Column("monthly_fee", BigInteger, nullable=False, server_default="0"),
    Column("waive_idle_months", Boolean, nullable=False, server_default="0"),
    Column("per_bill", BigInteger, nullable=False, server_default="0"),
    Column("notice_rates", Text, nullable=False, server_default="{}"),
    UniqueConstraint("biller_id", "effective_from"),
)

# One settlement per biller and period. Periods of a biller are contiguous: each starts the day
# after the previous one ended, so (biller_id, period_start) is the run's identity: a second run
# (or a second daemon) hits this key and settles nothing twice.
settlements = Table(
    "settlements",
    metadata,
    Column("settlement_id", String(40), primary_key=True),  # "stl_" + 24 hex digits
    Column("biller_id", String(32), ForeignKey("billers.biller_id"), nullable=False),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
    Column("cycle", String(24), nullable=False),
    Column("payout_date", Date, nullable=False),
    Column("plan_id", BigId, ForeignKey("fee_plans.id"), nullable=False),
    Column("payments_count", BigInteger, nullable=False),
    Column("collected", BigInteger, nullable=False),
    Column("fees", BigInteger, nullable=False),  # before tax
    Column("tax", BigInteger, nullable=False),
    Column("stamp_count", BigInteger, nullable=False),
    Column("stamp_duty", BigInteger, nullable=False),
    Column("refunds", BigInteger, nullable=False),
    Column("carried_in", BigInteger, nullable=False),  # a previous shortfall, deducted here
    Column("carried_out", BigInteger, nullable=False),  # this one's shortfall, for the next
    Column("payout", BigInteger, nullable=False),  # = the sum of its lines, never negative
    Column("created_at", UTCDateTime, nullable=False),
    # (0013) Payouts: earlier payouts the bank returned, paid again here; where this one's
    # payout stands (settled, payout_requested, paid_out, payout_returned) and since when; the
    # settlement that took it again once returned (set once, by that settlement's run).
    Column("returned_in", BigInteger, nullable=False, server_default="0"),
    Column("payout_state", String(20), nullable=False, server_default="settled"),
    Column("payout_state_at", UTCDateTime),
    Column("carried_into", String(40), ForeignKey("settlements.settlement_id")),
    UniqueConstraint("biller_id", "period_start"),
    Index(None, "biller_id", "period_end"),
    Index(None, "payout_state", "payout_date"),  # (0013) what a payout file takes
)

# The statement's lines: ``amount`` is signed (+ owed to the biller, − deducted), and the lines
# of a settlement add up to its payout, to the yen.
settlement_lines = Table(
    "settlement_lines",
    metadata,
    Column("settlement_id", String(40), ForeignKey("settlements.settlement_id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("kind", String(24), nullable=False),
    Column("channel", String(16)),
    Column("description", String(200), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("unit_amount", BigInteger),
    Column("amount", BigInteger, nullable=False),
)

# Notices a biller pays a per-notice fee for (migration 0014): one row per e-mail sent, SMS
# sent or sheet printed, fed through gateway.store.notice_charges.record_notice by whatever sends
# them. ``notice_key`` ("email:<notification id>", "sms:<id>"…) makes a notice counted once;
# ``settlement_id`` is set once, by the settlement that charges it.
notice_charges = Table(
    "notice_charges",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("notice_key", String(80), nullable=False, unique=True),
    Column("biller_id", String(32), ForeignKey("billers.biller_id"), nullable=False),
    Column("kind", String(8), nullable=False),  # email, sms, sheet
    Column("quantity", Integer, nullable=False),
    Column("bill_id", BigId, ForeignKey("bills.id")),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("settlement_id", String(40), ForeignKey("settlements.settlement_id")),
    Index(None, "biller_id", "settlement_id"),
)

# --- reconciliation (migration 0014) -----------------------------------------------------------

# A bank statement of the center's account, imported whole (gateway.money.reconciliation): the
# same file again (its SHA-256) adds nothing.
bank_statements = Table(
    "bank_statements",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("file_name", String(200), nullable=False),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("format", String(16), nullable=False),  # zengin-03, zengin-01, csv
    Column("account", String(24)),  # BANK-BRANCH-TYPE-NUMBER; NULL for a CSV export
    Column("first_day", Date, nullable=False),
    Column("last_day", Date, nullable=False),
    Column("deposits", Integer, nullable=False),
    Column("new_deposits", Integer, nullable=False),  # not already in an earlier statement
    Column("withdrawals", Integer, nullable=False),
    Column("imported_at", UTCDateTime, nullable=False),
    Index(None, "first_day", "last_day"),
)

# One 入金 of the center's account. ``deposit_key`` (day, amount, remitter, rank among the same
# that day: gateway.recon_model.Deposit.key) is its identity: an overlapping statement adds it once.
bank_deposits = Table(
    "bank_deposits",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("deposit_key", String(120), nullable=False, unique=True),
    Column("statement_id", BigId, ForeignKey("bank_statements.id"), nullable=False),
    Column("line", Integer, nullable=False),
    Column("value_date", Date, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("remitter_name", String(48), nullable=False),
    Column("remitter_code", String(10), nullable=False),
    Column("reference", String(20), nullable=False),
    Index(None, "value_date"),
)

# What finance must look at: a remittance that arrived short or long or not at all, a deposit
# nobody expected. ``item_key`` ("remittance:cvs:default:2026-12-03", "deposit:17") is its
# identity across runs; a run closes an open item whose money has since matched.
reconciliation_items = Table(
    "reconciliation_items",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("item_id", String(40), nullable=False, unique=True),  # "rci_" + 24 hex digits
    Column("item_key", String(120), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # difference, missing, unexpected
    Column("network", String(16)),
    Column("agency", String(32)),
    Column("transfer_date", Date, nullable=False),
    Column("expected", BigInteger, nullable=False),
    Column("received", BigInteger, nullable=False),
    Column("deposit_id", BigId, ForeignKey("bank_deposits.id")),
    Column("status", String(16), nullable=False),  # open, resolved
    Column("opened_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
    Column("resolution", String(300)),  # "matched", or the operator's note
    Index(None, "status", "opened_at"),
    Index(None, "transfer_date"),
)

# The retention job's audit record: one row per run that purged anything, with what it purged
# (counts per kind and biller, the fields removed). The rows it purged point back here.
data_purges = Table(
    "data_purges",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("ran_at", UTCDateTime, nullable=False),
    Column("cutoff", UTCDateTime, nullable=False),
    Column("bills", Integer, nullable=False),
    Column("mandates", Integer, nullable=False),
    Column("request_items", Integer, nullable=False),
    Column("messages", Integer, nullable=False),
    Column("events", Integer, nullable=False),
    Column("last_event_id", BigInteger, nullable=False),  # events up to it are scrubbed
    Column("detail", Text, nullable=False),  # JSON
)
