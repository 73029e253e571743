"""``python -m simulators.world``: run seeds of the deterministic simulation.

    python -m simulators.world --seeds 0-999 --jobs 2
    python -m simulators.world --seeds 0-199 --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    python -m simulators.world --seed 1234 --trace seed-1234.txt
    python -m simulators.world --seeds 0-299 --mutant ack-before-commit

Prints the progress, then seeds per second, the faults injected by kind and the invariant
breaks. A seed that breaks is run again with its trace kept (the replay must break the same
way: the run is deterministic), its trace is written to ``--traces``, and the one command that
replays it is printed. Exits 1 when a seed broke.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HASH_SEED = "0"


def parse_seeds(text: str) -> list[int]:
    """``0-999``, ``5``, ``1,4,10-20``."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        if high:
            seeds += range(int(low), int(high) + 1)
        else:
            seeds.append(int(low))
    if not seeds:
        raise argparse.ArgumentTypeError(f"{text!r} names no seed")
    return seeds


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simulators.world",
        description="Run the deterministic simulation of the gateway over seeds.",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--seeds", type=parse_seeds, help="a range or list: 0-999, 1,5,9-12")
    which.add_argument("--seed", type=int, help="one seed (with --trace: its readable trace)")
    p.add_argument("--jobs", type=int, default=1, help="processes running seeds (default 1)")
    p.add_argument(
        "--database-url",
        help="a PostgreSQL server URL (each seed gets a database made from a migrated "
        "template, dropped afterwards); default: SQLite files",
    )
    p.add_argument("--trace", type=Path, help="write the seed's trace here (with --seed)")
    p.add_argument(
        "--traces",
        type=Path,
        default=Path(tempfile.gettempdir()) / "sim-traces",
        help="where the traces of failing seeds go (default: sim-traces in the system's "
        "temporary folder)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        help="scratch folder for the seeds' files (default: /dev/shm if present, else the "
        "system's temporary folder)",
    )
    p.add_argument(
        "--mutant",
        help="run against a deliberately broken copy of the gateway "
        "(ack-before-commit, settle-twice, dedup-without-constraint)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


@dataclass
class Outcome:
    seed: int
    breaks: list[str]
    injected: dict[str, int]
    stats: dict[str, int]
    seconds: float
    plan: str
    replay: str = ""  # for a broken seed: "same" or what the replay gave
    trace_file: str = ""


_state: dict[str, Any] = {}


def _init(
    database_url: str | None,
    workdir: str,
    traces: str,
    mutant: str | None,
    stop: Any = None,
) -> None:
    from twisted.logger import globalLogBeginner

    from simulators.world.world import Databases

    globalLogBeginner.beginLoggingTo([], redirectStandardIO=False)
    base = Path(tempfile.mkdtemp(prefix=f"world-{os.getpid()}-", dir=workdir))
    _state.update(
        databases=Databases(base, database_url),
        base=base,
        traces=Path(traces),
        mutant=mutant,
        stop=stop,
    )
    if stop is not None:  # a worker: its files and databases go when the pool ends it
        from multiprocessing import util

        util.Finalize(None, _close, exitpriority=10)
    if mutant:
        from simulators.world.mutations import MUTANTS

        stack = MUTANTS[mutant]()
        stack.__enter__()  # for the life of this worker process
        _state["mutant_stack"] = stack


def _run(seed: int) -> Outcome | None:
    from simulators.world.world import run_seed

    stop = _state.get("stop")
    if stop is not None and stop.is_set():  # the caller has seen enough
        return None
    databases, base = _state["databases"], _state["base"]
    result = run_seed(seed, databases, base, keep_trace=False, mutant=_state["mutant"])
    outcome = Outcome(
        seed,
        result.breaks,
        dict(result.injected),
        dict(result.stats),
        result.seconds,
        result.plan,
    )
    if result.breaks:
        again = run_seed(seed, databases, base, keep_trace=True, mutant=_state["mutant"])
        outcome.replay = "same" if again.breaks == result.breaks else f"differs: {again.breaks}"
        traces: Path = _state["traces"]
        traces.mkdir(parents=True, exist_ok=True)
        path = traces / f"seed-{seed}{'-' + _state['mutant'] if _state['mutant'] else ''}.txt"
        header = f"# seed {seed} ({databases.backend}): {result.plan}\n"
        path.write_text(header + again.trace.text(), encoding="utf-8")
        outcome.trace_file = str(path)
    return outcome


def _close() -> None:
    import shutil

    databases = _state.pop("databases", None)
    if databases is not None:
        databases.close()
    base = _state.pop("base", None)
    if base is not None:
        shutil.rmtree(base, ignore_errors=True)


def run_many(seeds: Sequence[int], args: argparse.Namespace, workdir: str) -> Iterator[Outcome]:
    """Each seed's outcome, as they finish; closing the iterator early stops the rest."""
    init = (args.database_url, workdir, str(args.traces), args.mutant)
    if args.jobs <= 1:
        _init(*init)
        try:
            for seed in seeds:
                outcome = _run(seed)
                assert outcome is not None
                yield outcome
        finally:
            _close()
        return
    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()
    pool = ctx.Pool(args.jobs, initializer=_init, initargs=(*init, stop))
    try:
        for outcome in pool.imap_unordered(_run, seeds, chunksize=2):
            if outcome is not None:
                yield outcome
    finally:
        stop.set()  # seeds not started yet are skipped
        pool.close()
        pool.join()


def replay_command(seed: int, args: argparse.Namespace) -> str:
    parts = [f"PYTHONHASHSEED={HASH_SEED}", "python -m simulators.world", f"--seed {seed}"]
    if args.database_url:
        parts.append(f"--database-url {args.database_url}")
    if args.mutant:
        parts.append(f"--mutant {args.mutant}")
    parts.append(f"--trace seed-{seed}.txt")
    return " ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.mutant:
        from simulators.world.mutations import MUTANTS

        if args.mutant not in MUTANTS:
            print(f"--mutant: one of {', '.join(MUTANTS)}", file=sys.stderr)
            return 2
    workdir = str(
        args.workdir or ("/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir())
    )
    if args.seed is not None:
        return _one(args, workdir)
    seeds: list[int] = args.seeds
    started = time.perf_counter()
    injected: Counter[str] = Counter()
    stats: Counter[str] = Counter()
    broken: list[Outcome] = []
    backend = "postgresql" if args.database_url else "sqlite"
    for done, outcome in enumerate(run_many(seeds, args, workdir), 1):
        injected.update(outcome.injected)
        stats.update(outcome.stats)
        if outcome.breaks:
            broken.append(outcome)
            print(f"seed {outcome.seed}: {len(outcome.breaks)} break(s): {outcome.breaks[0]}")
            print(f"  replay: {replay_command(outcome.seed, args)}")
            print(f"  trace:  {outcome.trace_file} (replayed: {outcome.replay})")
        if not args.quiet and (done % 50 == 0 or done == len(seeds)):
            elapsed = time.perf_counter() - started
            print(
                f"{done}/{len(seeds)} seeds, {elapsed:.0f}s, {done / elapsed:.2f} seeds/s, "
                f"{len(broken)} broken",
                flush=True,
            )
    elapsed = time.perf_counter() - started
    print(
        f"\n{len(seeds)} seeds on {backend}{' (mutant ' + args.mutant + ')' if args.mutant else ''}"
        f" in {elapsed:.0f}s: {len(seeds) / elapsed:.2f} seeds/s with {args.jobs} job(s)"
    )
    print("faults injected:")
    for kind, n in sorted(injected.items()):
        print(f"  {kind:<28} {n}")
    print("world:")
    for kind, n in sorted(stats.items()):
        print(f"  {kind:<28} {n}")
    print(f"invariant breaks: {sum(len(o.breaks) for o in broken)} in {len(broken)} seed(s)")
    for o in sorted(broken, key=lambda o: o.seed):
        print(f"  seed {o.seed}: {replay_command(o.seed, args)}")
    return 1 if broken else 0


def _one(args: argparse.Namespace, workdir: str) -> int:
    from twisted.logger import globalLogBeginner

    from simulators.world.world import Databases, run_seed

    globalLogBeginner.beginLoggingTo([], redirectStandardIO=False)
    base = Path(tempfile.mkdtemp(prefix="world-", dir=workdir))
    databases = Databases(base, args.database_url)
    stack = None
    if args.mutant:
        from simulators.world.mutations import MUTANTS

        stack = MUTANTS[args.mutant]()
        stack.__enter__()
    try:
        result = run_seed(args.seed, databases, base, keep_trace=True, mutant=args.mutant)
    finally:
        if stack is not None:
            stack.__exit__(None, None, None)
        databases.close()
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    if args.trace:
        args.trace.write_text(
            f"# seed {args.seed} ({databases.backend}): {result.plan}\n" + result.trace.text(),
            encoding="utf-8",
        )
        print(f"trace: {args.trace} ({len(result.trace.lines)} lines)")
    print(f"seed {args.seed} ({databases.backend}) in {result.seconds:.2f}s: {result.plan}")
    print("faults: " + ", ".join(f"{k} {v}" for k, v in sorted(result.injected.items())))
    print("world:  " + ", ".join(f"{k} {v}" for k, v in sorted(result.stats.items())))
    if result.breaks:
        print(f"{len(result.breaks)} invariant break(s):")
        for b in result.breaks:
            print(f"  {b}")
        return 1
    print("no invariant broke")
    return 0


if __name__ == "__main__":
    if os.environ.get("PYTHONHASHSEED") != HASH_SEED:
        # one hash seed for every run, so that a replay iterates sets as the run did
        os.environ["PYTHONHASHSEED"] = HASH_SEED
        os.execv(sys.executable, [sys.executable, "-m", "simulators.world", *sys.argv[1:]])
    raise SystemExit(main())
