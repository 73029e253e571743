"""Coverage-guided fuzzing of the gateway's parsers with atheris (docs/testing.md, "Fuzzing").

    python -m tests.fuzz list                           the targets
    python -m tests.fuzz run cvs_record --runs 1000000  one target, in this process
    python -m tests.fuzz run cvs_record --seconds 600
    python -m tests.fuzz all --seconds 5                every target briefly, one process each
    python -m tests.fuzz replay cvs_record FILE...      inputs through the check, no atheris
    python -m tests.fuzz merge cvs_record               new coverage from the work dir into
                                                        the committed corpus
    python -m tests.fuzz seed                           (re)write the committed seed inputs
    python -m tests.fuzz libfuzzer cvs_record -- FLAGS  libFuzzer's flags and dirs, as given

A run reads the committed corpus (tests/fuzz/corpus/<target>/) and its regression inputs
(tests/fuzz/regressions/<target>/), and writes what it finds to a work directory (``--work``,
default ``$TMPDIR/gateway-fuzz/<target>``), never to the committed corpus. A finding is written
there as ``crash-<sha1>`` and the run exits non-zero.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.fuzz.registry import TARGETS, Target

ROOT = Path(__file__).resolve().parents[2]

STATS = re.compile(
    rb"stat::(number_of_executed_units|average_exec_per_sec|new_units_added):\s*(\d+)"
)


def default_work(target: Target) -> Path:
    return Path(tempfile.gettempdir()) / "gateway-fuzz" / target.name


def libfuzzer_args(
    target: Target, work: Path, runs: int | None, seconds: float | None, extra: list[str]
) -> list[str]:
    args = [
        f"-max_len={target.max_len}",
        f"-artifact_prefix={work}/",
        "-timeout=10",  # one input for more than 10 s is a finding too
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
    ]
    if runs is not None:
        args.append(f"-runs={runs}")
    if seconds is not None:
        args.append(f"-max_total_time={max(1, round(seconds))}")
    dirs = [work / "corpus", target.corpus]
    if target.regressions.is_dir():
        dirs.append(target.regressions)
    return args + extra + [str(d) for d in dirs]


def libfuzzer(target: Target, args: list[str]) -> None:
    """libFuzzer with ``args`` on ``target``, in this process; atheris exits it when done.

    libFuzzer starts copies of itself for some modes (``-merge=1``) by running its ``argv[0]``
    through the shell: here, the command that comes back to this function.
    """
    import atheris

    atheris.enabled_hooks.add("str")  # not "RegEx": its pattern proxy refuses json's match(s, i)
    with atheris.instrument_imports(include=["gateway"]):
        check = target.load()
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p
    )
    itself = f"{shlex.quote(sys.executable)} -m tests.fuzz libfuzzer {target.name} --"
    atheris.Setup([itself, *args], check)
    atheris.Fuzz()


def run(
    target: Target, work: Path, runs: int | None, seconds: float | None, extra: list[str]
) -> None:
    """Fuzz ``target`` in this process, new inputs and findings into ``work``."""
    (work / "corpus").mkdir(parents=True, exist_ok=True)
    print(f"fuzz {target.name}: {target.what}", flush=True)
    libfuzzer(target, libfuzzer_args(target, work, runs, seconds, extra))


def run_all(names: list[str], runs: int | None, seconds: float | None, work: Path | None) -> int:
    """Each target in a process of its own; a summary line per target. Non-zero on a finding."""
    failed = []
    for name in names:
        command = [sys.executable, "-m", "tests.fuzz", "run", name]
        if runs is not None:
            command += ["--runs", str(runs)]
        if seconds is not None:
            command += ["--seconds", str(seconds)]
        if work is not None:
            command += ["--work", str(work / name)]
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, check=False)
        stats = {k.decode(): int(v) for k, v in STATS.findall(done.stderr)}
        print(
            f"{name:12} {'ok' if done.returncode == 0 else 'FAILED':6} "
            f"{stats.get('number_of_executed_units', 0):>10} inputs "
            f"{stats.get('average_exec_per_sec', 0):>6}/s "
            f"{stats.get('new_units_added', 0):>5} new "
            f"({time.monotonic() - started:.1f} s)",
            flush=True,
        )
        if done.returncode != 0:
            failed.append(name)
            sys.stdout.write(done.stderr.decode("utf-8", "replace")[-6000:])
    if failed:
        print(f"findings in: {', '.join(failed)}")
    return 1 if failed else 0


def replay(target: Target, files: list[Path]) -> int:
    check = target.load()
    for path in files:
        for file in sorted(path.iterdir()) if path.is_dir() else [path]:
            check(file.read_bytes())
            print(f"ok {file}")
    return 0


def merge(target: Target, work: Path) -> None:
    """Add to the committed corpus the inputs of the work dir that reach new coverage."""
    corpus = [str(target.corpus), str(work / "corpus")]
    libfuzzer(target, ["-merge=1", f"-max_len={target.max_len}", *corpus])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fuzz", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the targets")
    one = commands.add_parser("run", help="fuzz one target in this process")
    one.add_argument("target", choices=sorted(TARGETS))
    every = commands.add_parser("all", help="fuzz every target briefly, one process each")
    every.add_argument("targets", nargs="*", help="some of the targets (default: every one)")
    for sub in (one, every):
        sub.add_argument("--runs", type=int, help="stop after this many inputs")
        sub.add_argument("--seconds", type=float, help="stop after this many seconds")
        sub.add_argument("--work", type=Path, help="where new inputs and findings go")
    one.add_argument("libfuzzer", nargs="*", help="more libFuzzer flags, after --")
    again = commands.add_parser("replay", help="inputs through a target's check, no atheris")
    again.add_argument("target", choices=sorted(TARGETS))
    again.add_argument("files", nargs="+", type=Path)
    fold = commands.add_parser("merge", help="work-dir inputs with new coverage into the corpus")
    fold.add_argument("target", choices=sorted(TARGETS))
    fold.add_argument("--work", type=Path)
    commands.add_parser("seed", help="(re)write the committed seed inputs")
    raw = commands.add_parser("libfuzzer", help="libFuzzer's own flags and directories, as given")
    raw.add_argument("target", choices=sorted(TARGETS))
    raw.add_argument("args", nargs="*")
    args = parser.parse_args(argv)

    if args.command == "list":
        for target in TARGETS.values():
            print(f"{target.name:12} {target.what}")
        return 0
    if args.command == "run":
        target = TARGETS[args.target]
        run(target, args.work or default_work(target), args.runs, args.seconds, args.libfuzzer)
        return 0  # not reached: atheris exits
    if args.command == "all":
        unknown = set(args.targets) - set(TARGETS)
        if unknown:
            parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
        if args.runs is None and args.seconds is None:
            args.seconds = 5.0
        return run_all(args.targets or list(TARGETS), args.runs, args.seconds, args.work)
    if args.command == "replay":
        return replay(TARGETS[args.target], args.files)
    if args.command == "merge":
        target = TARGETS[args.target]
        merge(target, args.work or default_work(target))
        return 0  # not reached: atheris exits
    if args.command == "libfuzzer":
        libfuzzer(TARGETS[args.target], args.args)
        return 0  # not reached
    from tests.fuzz.seeds import write_seeds

    write_seeds()
    return 0


if __name__ == "__main__":
    sys.exit(main())
