"""bench/table.py: issue 18's table from the benchmarks' JSON lines — one row per path and
backend, the last run of each, a missing figure shown as a dash rather than failing."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_table", BENCH / "table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_last_run_of_each_path_and_backend_is_shown() -> None:
    table = load().table
    lines = [
        json.dumps({"bench": "bills_api", "backend": "sqlite", "api_bills_per_s": 100.0}),
        json.dumps(
            {
                "bench": "bills_api",
                "backend": "sqlite",
                "api_bills_per_s": 1612.4,
                "api_p50_ms": 9.51,
                "api_p99_ms": 31.0,
                "ratio_api_raw": 0.61,
            }
        ),
        json.dumps(
            {
                "bench": "bulk",
                "backend": "postgresql",
                "api_s_4000": 0.41,
                "ratio_api_raw_4000": 2.9,
                "api_s_100000": 9.9,
                "ratio_api_raw_100000": 2.5,
                "daemon_peak_rss_mib": 180.2,
            }
        ),
        json.dumps({"bench": "scale", "link_per_s_1": 2427.9}),  # no backend: not in this table
        "",
    ]
    out = table(lines).splitlines()
    assert out[0] == "| path (bench) | backend | figures |"
    (bills,) = [row for row in out if "bills_api" in row]
    assert "| sqlite |" in bills
    assert "1,612 bills/s, p50 9.5 ms, p99 31.0 ms = 0.61 of raw" in bills
    (bulk,) = [row for row in out if "bulk.py" in row]
    assert "| postgresql |" in bulk
    assert "4,000 rows 0.41 s = 2.9× raw; 100,000 rows 9.90 s = 2.5× raw; peak 180 MiB" in bulk


def test_a_missing_figure_is_a_dash() -> None:
    out = load().table([json.dumps({"bench": "settlement", "backend": "sqlite", "billers": 20})])
    (row,) = [r for r in out.splitlines() if "settlement" in r]
    assert "— payments / 20 billers: — s" in row
