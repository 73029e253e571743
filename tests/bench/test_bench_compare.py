"""bench/compare.py as .ci/run runs it: the ratios of the smoke runs against bench/baseline.json.
A ratio worse than its baseline by more than the margin fails, a better one (or one within the
margin) passes, a missing run or field fails naming it; and each benchmark appends its JSON
line to the file GATEWAY_BENCH_JSON names (bench/_daemon.py)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

BASELINE = {
    "margin": 2.0,
    "runs": {
        "bills_api/sqlite": {"ratio_api_raw": 0.12},  # higher is better
        "settlement/postgresql": {"ratio_settle_baseline": 100.0},  # lower is better
        "bulk/sqlite": {"ratio_api_raw_500": 6.0},  # lower is better
    },
}


def results(**over: dict[str, Any]) -> list[dict[str, Any]]:
    runs = {
        "bills_api": {"bench": "bills_api", "backend": "sqlite", "ratio_api_raw": 0.12},
        "settlement": {
            "bench": "settlement",
            "backend": "postgresql",
            "ratio_settle_baseline": 100.0,
        },
        "bulk": {"bench": "bulk", "backend": "sqlite", "ratio_api_raw_500": 6.0},
    }
    for name, fields in over.items():
        runs[name] = {**runs[name], **fields}
    return list(runs.values())


def compare(tmp_path: Path, lines: list[dict[str, Any]], *extra: str) -> tuple[int, str, str]:
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(BASELINE), encoding="utf-8")
    found = tmp_path / "results.jsonl"
    found.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(BENCH / "compare.py"), str(baseline), str(found), *extra],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


def row(stdout: str, run: str, field: str) -> list[str]:
    for line in stdout.splitlines():
        cells = line.split()
        if cells[:2] == [run, field]:
            return cells
    raise AssertionError(f"no row for {run} {field} in:\n{stdout}")


def test_the_same_ratios_pass_and_the_table_shows_each(tmp_path: Path) -> None:
    code, out, err = compare(tmp_path, results())
    assert code == 0, out + err
    assert row(out, "bills_api/sqlite", "ratio_api_raw") == [
        "bills_api/sqlite",
        "ratio_api_raw",
        "higher",
        "0.12",
        "0.12",
        "1.00x",
        "ok",
    ]
    assert row(out, "settlement/postgresql", "ratio_settle_baseline")[2] == "lower"


@pytest.mark.parametrize(
    ("run", "field", "value"),
    [
        ("bills_api", "ratio_api_raw", 0.05),  # higher is better: 2.4x worse
        ("settlement", "ratio_settle_baseline", 250.0),  # lower is better: 2.5x worse
        ("bulk", "ratio_api_raw_500", 13.0),
    ],
)
def test_a_ratio_worse_by_more_than_the_margin_fails(
    tmp_path: Path, run: str, field: str, value: float
) -> None:
    code, out, err = compare(tmp_path, results(**{run: {field: value}}))
    assert code == 1
    cells = row(out, next(k for k in BASELINE["runs"] if k.startswith(run)), field)
    assert cells[-1] == "WORSE"
    assert field in err and "worse by" in err


@pytest.mark.parametrize(
    ("run", "field", "value"),
    [
        ("bills_api", "ratio_api_raw", 0.5),  # much better
        ("bills_api", "ratio_api_raw", 0.07),  # 1.7x worse: within the margin
        ("settlement", "ratio_settle_baseline", 3.0),  # much better
        ("settlement", "ratio_settle_baseline", 190.0),  # within the margin
    ],
)
def test_a_better_ratio_or_one_within_the_margin_passes(
    tmp_path: Path, run: str, field: str, value: float
) -> None:
    code, out, err = compare(tmp_path, results(**{run: {field: value}}))
    assert code == 0, out + err


def test_the_margin_can_be_set_on_the_command_line(tmp_path: Path) -> None:
    lines = results(bills_api={"ratio_api_raw": 0.07})  # 1.7x worse
    assert compare(tmp_path, lines, "--margin", "1.5")[0] == 1
    assert compare(tmp_path, lines, "--margin", "3")[0] == 0


def test_a_missing_field_fails_naming_it(tmp_path: Path) -> None:
    lines = results()
    del lines[0]["ratio_api_raw"]
    code, out, err = compare(tmp_path, lines)
    assert code == 1
    assert row(out, "bills_api/sqlite", "ratio_api_raw")[-1] == "MISSING"
    assert "bills_api/sqlite ratio_api_raw: MISSING (no such field)" in err


def test_a_missing_run_fails_naming_it(tmp_path: Path) -> None:
    code, out, err = compare(tmp_path, results()[1:])
    assert code == 1 and row(out, "bills_api/sqlite", "ratio_api_raw")[-1] == "MISSING"
    assert "bills_api/sqlite ratio_api_raw: MISSING (no such run in the results)" in err


def test_a_new_ratio_is_shown_and_one_without_a_direction_is_refused(tmp_path: Path) -> None:
    lines = results()
    lines.append({"bench": "webhooks", "backend": "sqlite", "ratio_webhook_feed": 0.1})
    code, out, _ = compare(tmp_path, lines)
    assert code == 0 and row(out, "webhooks/sqlite", "ratio_webhook_feed")[-1] == "new"
    lines.append({"bench": "webhooks", "backend": "postgresql", "ratio_unheard_of": 1.0})
    code, _, err = compare(tmp_path, lines)
    assert code == 2 and "no direction for ratio_unheard_of" in err


def test_a_results_line_that_is_not_json_is_refused_with_its_line(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(BASELINE), encoding="utf-8")
    found = tmp_path / "results.jsonl"
    found.write_text(json.dumps(results()[0]) + "\nwebhooks: FAILED\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(BENCH / "compare.py"), str(baseline), str(found)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "line 2: not JSON" in done.stderr


def test_write_baseline_keeps_the_ratios_that_compare_reads(tmp_path: Path) -> None:
    found = tmp_path / "results.jsonl"
    found.write_text(
        "".join(json.dumps({**line, "other_ms": 1.0}) + "\n" for line in results()),
        encoding="utf-8",
    )
    baseline = tmp_path / "new-baseline.json"
    compare_py = str(BENCH / "compare.py")
    subprocess.run(
        [sys.executable, compare_py, "--write-baseline", str(baseline), str(found)], check=True
    )
    doc = json.loads(baseline.read_text(encoding="utf-8"))
    assert doc["margin"] == 2.0 and doc["runs"] == BASELINE["runs"]
    done = subprocess.run([sys.executable, compare_py, str(baseline), str(found)], check=False)
    assert done.returncode == 0


def test_the_committed_baseline_names_a_direction_for_every_ratio() -> None:
    compare_module = _load("compare")
    margin, runs = compare_module.read_baseline(BENCH / "baseline.json")
    assert margin >= 2
    for key, ratios in runs.items():
        for field in ratios:
            assert compare_module.direction(key.split("/")[0], field) in ("higher", "lower")


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while defined
    spec.loader.exec_module(module)
    return module


def test_a_benchmark_appends_its_json_line_to_the_file_named(tmp_path: Path) -> None:
    daemon = _load("_daemon")
    out = tmp_path / "results.jsonl"
    daemon.append_json_line('table\n\n{"bench": "zengin", "backend": "sqlite"}\n', out)
    daemon.append_json_line('{"bench": "bulk", "backend": "sqlite"}', out)
    assert [json.loads(line)["bench"] for line in out.read_text().splitlines()] == [
        "zengin",
        "bulk",
    ]
    with pytest.raises(daemon.BenchFailure, match="not JSON"):
        daemon.append_json_line("a table without its JSON line", out)
