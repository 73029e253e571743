"""What ``gateway-demo`` runs with: the daemon's configuration (two CVS agencies, MPN,
Zengin, the simulated SMS provider, payouts and reconciliation), the billers and the agencies
they are under, the water utility's customers and settings, the fee plan every biller gets, the
billers' payout accounts and how the networks' remittances show on the center's bank statement
(gateway.app.demo does the running)."""

from __future__ import annotations

CONFIG = """\
# Written by gateway-demo. See conf/gateway.example.toml and docs/config.md.
[database]
url = "sqlite:///gateway.sqlite3"

[api]
listen = "tcp:{api}:interface=127.0.0.1"
public_url = "http://127.0.0.1:{api}"

[metrics]
listen = "tcp:{metrics}:interface=127.0.0.1"

[secrets]
key = "{secret_key}"                   # page tokens and webhook secrets at rest

[tls]
ca = "tls/ca.pem"
certificate = "tls/gateway.pem"
key = "tls/gateway.key"

[cvs]
default_agency = "gs"                 # the agency of a biller created without --cvs-agency

# Two collection agencies (docs/networks/cvs.md §1.1), each with its own link and inbox.
# gs gave the center one 5-digit code for all its billers; kessai gives each biller its own.
[[cvs.agencies]]
id = "gs"
company_code = "929023"
assigned_by = "agency"
center_code = "25207"
no_deadline = true

[cvs.agencies.link]
listen = "tcp:{link_gs}:interface=127.0.0.1"
peers = ["cvs-agency"]                # the simulated agency's certificate; no other may speak

[cvs.agencies.files]
inbox = "inbox/cvs-gs"
poll_interval = 0.5

[[cvs.agencies]]
id = "kessai"
company_code = "987654"
assigned_by = "agency"                # a code per biller: gateway-admin biller create --cvs-code

[cvs.agencies.link]
listen = "tcp:{link_kessai}:interface=127.0.0.1"
peers = ["cvs-agency"]

[cvs.agencies.files]
inbox = "inbox/cvs-kessai"
poll_interval = 0.5

[mpn]
institution_code = "58191"
connect = "tcp:127.0.0.1:{mpn}"
center_code = "0001"
hostname = "mpn-center"               # the name the simulated center's certificate carries
number_key = "{number_key}"

[webhooks]
allowed_networks = ["127.0.0.0/8"]    # the demo's receivers run on this machine

[zengin]
outbox = "outbox/zengin"
inbox = "inbox/zengin"
poll_interval = 0.5

[sms]                                 # customer notices by SMS (docs/notices.md)
endpoint = "http://127.0.0.1:{sms}/v1/messages"   # the simulated provider (simulators.sms)
api_key = "{sms_key}"
allowed_networks = ["127.0.0.0/8"]    # the demo's provider runs on this machine
poll_interval = 0.5

[notices]
poll_interval = 0.5

[payouts]                             # the center pays its billers out (docs/settlement.md)
consignor_code = "1234567890"
consignor_name = "ｷﾖｳﾄﾞｳｼﾕｳﾉｳｾﾝﾀ-"
account = "0005-135-1-7654321"        # the center's account, where the networks remit too
outbox = "outbox/payouts"
inbox = "inbox/payouts"
poll_interval = 0.5

[reconciliation]                      # the networks' money matched to the bank statement
account = "0005-135-1-7654321"
payeasy_days = 1
transfer_days = 0
late_days = 3
"""

# The payout account each biller gives (gateway-admin biller payout-account): bank, branch,
# type and number as BANK-BRANCH-TYPE-NUMBER, and the holder (受取人名) in Zengin kana.
PAYOUT_ACCOUNTS = {
    "demo-gas": ("0005-135-1-1111111", "ﾄｳｷﾖｳﾃﾞﾓｶﾞｽ(ｶ"),
    "demo-school": ("0009-227-1-2222222", "ｶﾞﾂｺｳﾎｳｼﾞﾝﾃﾞﾓｶﾞｸｴﾝ"),
    "demo-water": ("0005-135-1-3333333", "ﾃﾞﾓｼｽｲﾄﾞｳｷﾖｸ"),
}
# How each network's remittance appears on the center's bank statement (振込依頼人名) and the
# fees the agency keeps of it ([[reconciliation.remitters]]): per payment, per remittance.
CVS_REMITTERS = {"gs": ("ｼﾞ-ｴｽｼﾕｳﾉｳﾀﾞｲｺｳ", 30, 200), "kessai": ("ｹﾂｻｲｼﾕｳﾉｳ", 25, 0)}
MPN_REMITTER = ("58191", "ﾏﾙﾁﾍﾟｲﾒﾝﾄ")
TRANSFER_REMITTER = ("4400012345", "ｺｳｻﾞﾌﾘｶｴ ﾃﾞﾓｼｽｲﾄﾞｳ")


def remitters_toml() -> str:
    """The ``[[reconciliation.remitters]]`` of the demo's configuration (appended to CONFIG)."""
    out = []
    for agency, (name, per_item, per_remittance) in CVS_REMITTERS.items():
        out.append(
            f'[[reconciliation.remitters]]\nnetwork = "cvs"\nagency = "{agency}"\n'
            f'name = "{name}"\nfee_per_item = {per_item}\nfee_per_remittance = {per_remittance}\n'
        )
    for network, (agency, name) in (("payeasy", MPN_REMITTER), ("transfer", TRANSFER_REMITTER)):
        out.append(
            f'[[reconciliation.remitters]]\nnetwork = "{network}"\nagency = "{agency}"\n'
            f'name = "{name}"\n'
        )
    return "\n" + "\n".join(out)


# chosen so that each biller's store payments show a void and a double payment
SEEDS = {"demo-gas": 9, "demo-school": 8}
BILLERS = [
    ("demo-gas", "東京デモガス株式会社", "ﾄｳｷﾖｳﾃﾞﾓｶﾞｽ"),
    ("demo-school", "学校法人デモ学園", "ｶﾞﾂｺｳﾎｳｼﾞﾝﾃﾞﾓｶﾞｸｴﾝ"),
]
# Each biller's convenience-store agency, and the code the agency assigned to it (kessai's).
AGENCY_OF = {"demo-gas": ("gs", None), "demo-school": ("kessai", "31415")}
AGENCIES = ("gs", "kessai")
WATER = ("demo-water", "デモ市水道局", "ﾃﾞﾓｼｽｲﾄﾞｳｷﾖｸ")
BANK_CODES = {1: "1", 2: "3"}  # by debit position: 資金不足, and a transfer stopped by its payer
# (customer_no, holder as the customer wrote it, account number, amount, mobile number)
WATER_CUSTOMERS = [
    ("W0001", "ヤマダ　タロウ", "1234567", 3_520, "09012340001"),
    ("W0002", "ｻﾄｳ ﾊﾅｺ", "2345678", 4_180, "08012340002"),
    ("W0003", "きょうこ　しょうじ", "3456789", 2_970, "07012340003"),
    ("W0004", "ｽｽﾞｷ ｲﾁﾛｳ", "4567890", 5_060, "09012340004"),
    ("W0005", "タナカ　ミサキ", "5678901", 3_850, "08012340005"),
    ("W0006", "ｲﾄｳ ｹﾝ", "6789012", 4_400, "09012340006"),
]
# What the water utility does after a failed debit, and which notices go by SMS.
WATER_SETTINGS = [
    "--fallback",
    "cvs,payeasy",
    "--fallback-notice",
    "sms",
    "--received-notice",
    "sms",
]


DEMO_PLAN = {
    "cycle": "monthly",
    "payout_days": 3,
    "settlement_fee": 500,
    "tax_rate": 10,
    "tax_rounding": "floor",
    "channels": {
        "cvs": {"per_payment": 60, "per_uncollected": 10, "stamp_charge": 200},
        "payeasy": {"per_payment": 80},
        "transfer": {"per_payment": 100},
    },
}
