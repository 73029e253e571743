"""Issue 18's table from the benchmarks' JSON lines (``GATEWAY_BENCH_JSON``): one row per path
and backend, the figures the issue names, the last run of each when a file holds several.

    .venv/bin/python bench/table.py bench-issue18.jsonl
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Run = dict[str, Any]


def _f(run: Run, key: str, fmt: str = "{:,.0f}") -> str:
    value = run.get(key)
    return "—" if value is None else fmt.format(value)


def _bills(r: Run) -> str:
    return (
        f"{_f(r, 'api_bills_per_s')} bills/s, p50 {_f(r, 'api_p50_ms', '{:.1f}')} ms, "
        f"p99 {_f(r, 'api_p99_ms', '{:.1f}')} ms = {_f(r, 'ratio_api_raw', '{:.2f}')} of raw"
    )


def _cvs(r: Run) -> str:
    return (
        f"{_f(r, 'link_records_per_s')} rec/s = {_f(r, 'ratio_link_raw', '{:.2f}')} of raw; "
        f"ack p99 {_f(r, 'latency_p99_ms', '{:.1f}')} ms at {_f(r, 'offered_rate')}/s; "
        f"{_f(r, 'daemon_cpu_us_per_record')} µs daemon CPU/record"
    )


def _mpn(r: Run) -> str:
    return (
        f"{_f(r, 'answered_per_s')}/s answered of {_f(r, 'offered_rate')}, "
        f"p99 {_f(r, 'p99_ms', '{:.1f}')} ms; saturation {_f(r, 'saturation_per_s')}/s = "
        f"{_f(r, 'ratio_link_direct', '{:.2f}')} of direct; "
        f"{_f(r, 'daemon_cpu_us_per_inquiry')} µs daemon CPU/照会"
    )


def _webhooks(r: Run) -> str:
    return (
        f"p50 {_f(r, 'webhook_p50_ms')} ms, p99 {_f(r, 'webhook_p99_ms')} ms at "
        f"{_f(r, 'rate')}/s (poll {_f(r, 'poll_interval', '{}')} s)"
    )


def _bulk(r: Run) -> str:
    sizes = sorted(int(k.rsplit("_", 1)[1]) for k in r if k.startswith("ratio_api_raw_"))
    parts = [
        f"{n:,} rows {_f(r, f'api_s_{n}', '{:.2f}')} s = {_f(r, f'ratio_api_raw_{n}', '{}')}× raw"
        for n in sizes
    ]
    return "; ".join(parts) + f"; peak {_f(r, 'daemon_peak_rss_mib')} MiB"


def _settlement(r: Run) -> str:
    return (
        f"{_f(r, 'payments')} payments / {_f(r, 'billers')} billers: "
        f"{_f(r, 'settle_s', '{:.1f}')} s = {_f(r, 'ratio_settle_baseline', '{:.0f}')}× "
        f"the aggregate ({_f(r, 'baseline_s', '{:.3f}')} s)"
    )


def _zengin(r: Run) -> str:
    return (
        f"{_f(r, 'records')} records: request {_f(r, 'ratio_request_raw', '{:.2f}')}, "
        f"result {_f(r, 'ratio_result_raw', '{:.2f}')} of raw"
    )


ROWS: dict[str, tuple[str, Callable[[Run], str]]] = {
    "cvs_ingest": ("速報 through the TLS link (`cvs_ingest.py`)", _cvs),
    "bills_api": ("bills API, 20 keep-alive clients (`bills_api.py`)", _bills),
    "mpn_inquiry": ("Pay-easy 照会 at 500/s (`mpn_inquiry.py`)", _mpn),
    "webhooks": ("速報 → webhook delivered (`webhooks.py`)", _webhooks),
    "bulk": ("bulk upload (`bulk.py`)", _bulk),
    "settlement": ("settlement (`settlement.py`)", _settlement),
    "zengin": ("Zengin files (`zengin.py`)", _zengin),
}


def table(lines: list[str]) -> str:
    last: dict[tuple[str, str], Run] = {}
    for line in lines:
        if line.strip():
            run = json.loads(line)
            if run.get("bench") in ROWS:  # others (scale.py, grown.py) have tables of their own
                last[(run["bench"], run.get("backend", ""))] = run
    out = ["| path (bench) | backend | figures |", "|---|---|---|"]
    for bench, (label, show) in ROWS.items():
        for backend in ("sqlite", "postgresql"):
            if (bench, backend) in last:
                out.append(f"| {label} | {backend} | {show(last[(bench, backend)])} |")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    print(table(Path(argv[1]).read_text(encoding="utf-8").splitlines()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
