#!/bin/sh
# Every row of issue 18's table at its full size, on SQLite and on PostgreSQL, one run each,
# one after the other: each benchmark appends its JSON line to OUT, and bench/table.py prints
# the table from it (bench/scale.py's 1, 2 and 4 daemons included). About 40 minutes on the project's 2-core machine; run it on a quiet one.
#
#   sh bench/issue18.sh [OUT]            # default OUT: bench-issue18.jsonl in the current dir
#   .venv/bin/python bench/table.py OUT
set -eu
OUT=${1:-bench-issue18.jsonl}
PG=${GATEWAY_BENCH_PG:-postgresql+psycopg://postgres@127.0.0.1:5432/test}
PY=.venv/bin/python
GATEWAY_BENCH_JSON=$OUT
export GATEWAY_BENCH_JSON
for url in sqlite "$PG"; do
    if [ "$url" = sqlite ]; then db=""; else db="--database-url $url"; fi
    $PY bench/bills_api.py --bills 3000 $db
    $PY bench/cvs_ingest.py $db
    $PY bench/webhooks.py $db
    $PY bench/bulk.py --rows 4000 100000 $db
    $PY bench/zengin.py --records 100000 $db
done
$PY bench/mpn_inquiry.py --database-url "$PG" --bills 1000000 --rate 500 --seconds 20
$PY bench/settlement.py --database-url "$PG" --billers 1000 --payments 1000000
$PY bench/scale.py --database-url "$PG"
$PY bench/settlement.py --database-url sqlite:// --billers 1000 --payments 1000000
$PY bench/table.py "$OUT"
