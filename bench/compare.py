"""Compare benchmark ratios with a committed baseline; exit 1 when one got much worse.

    .venv/bin/python bench/compare.py bench/baseline.json RESULTS.jsonl
    .venv/bin/python bench/compare.py --write-baseline bench/baseline.json RESULTS.jsonl

RESULTS.jsonl holds one JSON line per benchmark run, as each benchmark appends it when
``GATEWAY_BENCH_JSON`` names the file (bench/_daemon.py, bench_main). A run is known by its
``bench`` and ``backend`` fields (``settlement/sqlite``). Only the ``ratio_*`` fields are
compared: each is measured against a reference in the same run (raw inserts, one aggregate
query, a polling client), so it moves far less with a noisy machine than an absolute time.

Rules:

- Every ratio of the baseline must be in the results: a missing run or field fails, naming it
  (a benchmark that stopped writing a ratio must not pass unnoticed).
- Each ratio has a direction (:data:`DIRECTIONS`): higher is better for rates against raw
  (``ratio_api_raw`` of bills_api), lower is better for times against a reference
  (``ratio_settle_baseline``). "Worse by" is baseline / now for the first, now / baseline for
  the second; a ratio worse by more than the margin (the baseline's ``margin``, 2 unless
  ``--margin`` says otherwise) fails.
- A ratio in the results that the baseline lacks is shown, not judged (add it with
  ``--write-baseline``).

Prints a table, one row per ratio, and exits 0 (all within the margin), 1 (a ratio worse by
more than the margin, or missing) or 2 (a file that cannot be read).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_MARGIN = 2.0

# (bench, pattern of the ratio field) -> "higher" or "lower": which way is better.
DIRECTIONS: dict[tuple[str, str], str] = {
    ("bills_api", r"ratio_api_raw"): "higher",  # API bills/s over raw one-row transactions
    ("cvs_ingest", r"ratio_link_raw"): "higher",  # link records/s over raw batched inserts
    ("mpn_inquiry", r"ratio_link_direct"): "higher",  # 照会/s over direct lookups
    ("zengin", r"ratio_(request|result|duplicate)_raw"): "higher",  # records/s over raw
    ("bulk", r"ratio_api_raw_\d+"): "lower",  # seconds over raw seconds, per size
    ("settlement", r"ratio_settle_baseline"): "lower",  # seconds over one aggregate query
    ("webhooks", r"ratio_webhook_feed"): "lower",  # webhook p50 over a polling client's
}


class CompareError(Exception):
    """A file that cannot be read as what it should be (exit 2)."""


def direction(bench: str, field: str) -> str:
    for (name, pattern), better in DIRECTIONS.items():
        if name == bench and re.fullmatch(pattern, field):
            return better
    raise CompareError(
        f"{bench}: no direction for {field}: add it to DIRECTIONS in bench/compare.py"
        " (is higher or lower better?)"
    )


def run_key(figures: Mapping[str, Any]) -> str:
    return f"{figures['bench']}/{figures.get('backend', '?')}"


def read_results(path: Path) -> dict[str, dict[str, Any]]:
    """The JSON lines of ``path`` by run key (a later line of the same run wins)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise CompareError(f"cannot read the results {path}: {e}") from e
    runs: dict[str, dict[str, Any]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            figures = json.loads(line)
        except ValueError as e:
            raise CompareError(f"{path} line {n}: not JSON ({e})") from e
        if not isinstance(figures, dict) or "bench" not in figures:
            raise CompareError(f"{path} line {n}: not a benchmark's figures (no 'bench' field)")
        runs[run_key(figures)] = figures
    return runs


def read_baseline(path: Path) -> tuple[float, dict[str, dict[str, float]]]:
    """(margin, {run key: {ratio field: value}})."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CompareError(f"cannot read the baseline {path}: {e}") from e
    runs = doc.get("runs") if isinstance(doc, dict) else None
    if not isinstance(runs, dict):
        raise CompareError(f"{path}: no 'runs' object")
    for key, ratios in runs.items():
        if not isinstance(ratios, dict) or not all(
            isinstance(v, int | float) and v > 0 for v in ratios.values()
        ):
            raise CompareError(f"{path}: runs.{key} must map ratio fields to positive numbers")
    margin = doc.get("margin", DEFAULT_MARGIN)
    if not isinstance(margin, int | float) or margin < 1:
        raise CompareError(f"{path}: margin must be a number of at least 1")
    return float(margin), runs


@dataclass(frozen=True)
class Row:
    run: str
    field: str
    better: str
    baseline: float | None
    now: float | None
    worse_by: float | None  # > 1: worse than the baseline, < 1: better
    verdict: str  # "ok", "WORSE", "MISSING", "new"


def worse_by(better: str, baseline: float, now: float) -> float:
    if better == "higher":
        return math.inf if now <= 0 else baseline / now
    return now / baseline


def compare(
    baseline: Mapping[str, Mapping[str, float]],
    results: Mapping[str, Mapping[str, Any]],
    margin: float,
) -> list[Row]:
    rows: list[Row] = []
    for key, ratios in baseline.items():
        bench = key.split("/", 1)[0]
        figures = results.get(key)
        for field, base in ratios.items():
            better = direction(bench, field)
            now = None if figures is None else figures.get(field)
            if not isinstance(now, int | float):
                rows.append(Row(key, field, better, base, None, None, "MISSING"))
                continue
            factor = worse_by(better, base, float(now))
            verdict = "WORSE" if factor > margin else "ok"
            rows.append(Row(key, field, better, base, float(now), factor, verdict))
    for key, figures in results.items():
        for field, now in figures.items():
            if field.startswith("ratio_") and field not in baseline.get(key, {}):
                better = direction(figures["bench"], field)
                rows.append(Row(key, field, better, None, float(now), None, "new"))
    return rows


def table(rows: Sequence[Row], margin: float) -> str:
    def num(x: float | None) -> str:
        return "—" if x is None else f"{x:g}"

    head = ("run", "ratio", "better", "baseline", "now", "worse by", "verdict")
    cells = [
        (
            r.run,
            r.field,
            r.better,
            num(r.baseline),
            num(r.now),
            "—" if r.worse_by is None else f"{r.worse_by:.2f}x",
            r.verdict,
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells]
    lines.append(f"(fails when a ratio is worse than its baseline by more than {margin:g}x)")
    return "\n".join(lines)


def write_baseline(path: Path, results: Mapping[str, Mapping[str, Any]], margin: float) -> None:
    runs = {
        key: {
            field: value
            for field, value in figures.items()
            if field.startswith("ratio_") and direction(figures["bench"], field)
        }
        for key, figures in sorted(results.items())
    }
    doc = {
        "about": "bench/compare.py's baseline: the ratio_* fields of the smoke runs of .ci/run,"
        " measured on the project's 2-core machine (bench/README.md, 'Regressions')",
        "margin": margin,
        "runs": runs,
    }
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/compare.py", description=__doc__.splitlines()[0])
    p.add_argument("baseline", type=Path, help="bench/baseline.json")
    p.add_argument("results", type=Path, help="the JSON lines the benchmarks wrote")
    p.add_argument(
        "--margin",
        type=float,
        default=None,
        help="worse by more than this factor fails"
        f" (default: the baseline's, or {DEFAULT_MARGIN:g})",
    )
    p.add_argument(
        "--write-baseline",
        action="store_true",
        help="write the results' ratios as the new baseline instead of comparing",
    )
    args = p.parse_args(argv)
    if args.margin is not None and args.margin < 1:
        p.error("--margin must be at least 1")
    try:
        results = read_results(args.results)
        if args.write_baseline:
            write_baseline(args.baseline, results, args.margin or DEFAULT_MARGIN)
            print(f"wrote {args.baseline}: {len(results)} runs")
            return 0
        margin, baseline = read_baseline(args.baseline)
        margin = args.margin or margin
        rows = compare(baseline, results, margin)
    except CompareError as e:
        print(f"compare: {e}", file=sys.stderr)
        return 2
    print(table(rows, margin))
    bad = [r for r in rows if r.verdict in ("WORSE", "MISSING")]
    for r in bad:
        if r.verdict == "MISSING":
            where = "no such run in the results" if r.run not in results else "no such field"
            print(f"compare: {r.run} {r.field}: MISSING ({where})", file=sys.stderr)
        else:
            print(
                f"compare: {r.run} {r.field}: {r.now:g} against {r.baseline:g}, worse by"
                f" {r.worse_by:.2f}x (more than {margin:g}x; {r.better} is better)",
                file=sys.stderr,
            )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
