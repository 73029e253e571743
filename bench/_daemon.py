"""Run the real gateway for a benchmark: a scratch database, a config, a biller, a key, twistd.

Everything goes through the product's own entry points, as an operator would use them:
``gateway-admin migrate``, ``biller create``, ``key create``, then ``twistd -n gateway`` as a
subprocess, ready when the metrics listener's ``/readyz`` answers 200.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = ROOT / "conf" / "gateway.example.toml"
BILLER_ID = "bench"


class BenchFailure(Exception):
    """A reason for the benchmark to exit 1."""


def say(message: str) -> None:
    """Progress, on stderr: stdout is for the report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def venv_command(name: str) -> str:
    """A console script of the virtualenv that runs this benchmark (twistd, gateway-admin)."""
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise BenchFailure(f"{name} not found beside {sys.executable} nor on PATH")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- the scratch database --------------------------------------------------------------------


@dataclass(frozen=True)
class ScratchDatabase:
    url: str  # what the gateway's config and the benchmark's own engines use
    backend: str  # "sqlite" or "postgresql"


@contextmanager
def scratch_database(server_url: str | None, tmp: Path) -> Iterator[ScratchDatabase]:
    """SQLite in ``tmp``, or a fresh ``gateway_bench_<pid>`` on ``server_url``'s server.

    The PostgreSQL database is dropped on the way out, whatever happened (``WITH (FORCE)``
    closes connections a dead daemon may have left behind).
    """
    if server_url is None:
        yield ScratchDatabase(f"sqlite:///{tmp / 'gateway.sqlite3'}", "sqlite")
        return
    server = make_url(server_url)
    if server.get_backend_name() != "postgresql":
        raise BenchFailure(
            f"--database-url must be a postgresql+psycopg:// URL, not {server_url!r}"
            " (SQLite is the default: a file in a temporary directory)"
        )
    name = f"gateway_bench_{os.getpid()}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        say(f"created database {name}")
        try:
            url = server.set(database=name).render_as_string(hide_password=False)
            yield ScratchDatabase(url, "postgresql")
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            say(f"dropped database {name}")
    finally:
        admin.dispose()


def durability_settings(url: str) -> str:
    """One line naming the settings that decide what a commit costs, for the report."""
    if make_url(url).get_backend_name() == "sqlite":
        # What gateway.store.create_db_engine sets on every connection (daemon and benchmark).
        return "sqlite: journal_mode=WAL, synchronous=FULL, BEGIN IMMEDIATE"
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            names = ("server_version", "fsync", "synchronous_commit", "wal_sync_method")
            values = [f"{n}={conn.execute(text(f'SHOW {n}')).scalar_one()}" for n in names]
    finally:
        engine.dispose()
    return "postgresql: " + ", ".join(values)


# --- the config ------------------------------------------------------------------------------


def toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_SECTION = re.compile(r"^\s*\[([A-Za-z0-9_.]+)\]\s*(#.*)?$")
_KEY = re.compile(r"^(\s*)([A-Za-z0-9_]+)(\s*=\s*)(.*)$")


def set_toml_values(source: str, values: Mapping[tuple[str, str], str]) -> str:
    """``source`` with ``key = ...`` of ``[section]`` replaced by a TOML value, for each entry.

    Line-based, for the example config's flat ``key = value  # comment`` lines; every entry must
    be found, and the result is parsed back to check it.
    """
    section = ""
    found: set[tuple[str, str]] = set()
    lines = []
    for line in source.splitlines():
        if m := _SECTION.match(line):
            section = m.group(1)
        elif (k := _KEY.match(line)) and (section, k.group(2)) in values:
            where = (section, k.group(2))
            line = f"{k.group(1)}{k.group(2)}{k.group(3)}{values[where]}"
            found.add(where)
        lines.append(line)
    missing = sorted(set(values) - found)
    if missing:
        raise BenchFailure(f"{EXAMPLE_CONFIG} has no {missing}: update bench/_daemon.py")
    result = "\n".join(lines) + "\n"
    tomllib.loads(result)
    return result


@dataclass(frozen=True)
class Gateway:
    """A configured gateway (schema migrated, one biller, one key), not yet running."""

    workdir: Path
    config_path: Path
    api_port: int
    metrics_port: int
    api_key: str
    pool_size: int
    cvs_link: CvsLink | None = None  # with prepare(..., cvs_link=True)
    mpn_link: MpnCenter | None = None  # with prepare(..., mpn_link=True)

    def daemon(self) -> Daemon:
        return Daemon(self)


@dataclass(frozen=True)
class CvsLink:
    """Where the daemon listens for the CVS agency, and the agency's side of the mutual TLS."""

    port: int
    ca: Path  # the CA that signed the gateway's certificate (from ``certs make``)
    certificate: Path  # the agency's client certificate (cvs-agency.pem)
    key: Path  # and its key (cvs-agency.key)

    @property
    def connect(self) -> str:
        """The agency's client endpoint string."""
        return f"tcp:127.0.0.1:{self.port}"


@dataclass(frozen=True)
class MpnCenter:
    """Where the benchmark's MPN center must listen (the daemon dials it), and the center's side
    of the mutual TLS."""

    port: int
    ca: Path  # the CA that signed every certificate (from ``certs make``)
    certificate: Path  # the center's server certificate (mpn-center.pem)
    key: Path  # and its key (mpn-center.key)

    @property
    def listen(self) -> str:
        """The center's server endpoint string."""
        return f"tcp:{self.port}:interface=127.0.0.1"


MPN_INSTITUTION_CODE = "58191"  # the example config's [mpn] institution_code
MPN_CENTER_CODE = "0001"  # [mpn] center_code: the gateway's 仕向センタコード


def add_to_section(source: str, section: str, lines: Sequence[str]) -> str:
    """``source`` with ``lines`` inserted right after the ``[section]`` header (which must be
    there); the result is parsed back to check it."""
    out: list[str] = []
    found = False
    for line in source.splitlines():
        out.append(line)
        if (m := _SECTION.match(line)) and m.group(1) == section and not found:
            out += [f"{entry}  # added by bench/_daemon.py" for entry in lines]
            found = True
    if not found:
        raise BenchFailure(f"{EXAMPLE_CONFIG} has no [{section}]: update bench/_daemon.py")
    result = "\n".join(out) + "\n"
    tomllib.loads(result)
    return result


def admin(config_path: Path, *args: str) -> dict[str, Any]:
    """Run ``gateway-admin -c CONFIG ARGS...`` and return the JSON it prints."""
    done = subprocess.run(
        [venv_command("gateway-admin"), "-c", str(config_path), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchFailure(
            f"gateway-admin {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}"
        )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports on 127.0.0.1."""
    ports: list[int] = []
    while len(ports) < count:
        if (port := free_port()) not in ports:
            ports.append(port)
    return ports


def prepare(
    workdir: Path,
    database_url: str,
    *,
    cvs_link: bool = False,
    mpn_link: bool = False,
    link_options: Mapping[str, str] | None = None,
) -> Gateway:
    """Write the config (the example's, with a database and two free ports), migrate, onboard.

    With ``cvs_link``, also the CVS agency's real-time link: development certificates made by
    ``gateway-admin certs make WORKDIR/tls``, ``[tls]`` pointing at them, and ``[cvs.link]
    listen`` on a third free port with ``peers = ["cvs-agency"]`` (the example has the section
    commented out: it is added), plus ``link_options`` (key -> TOML value, e.g. a benchmark's
    ``max_unacked``); every other ``[cvs.link]`` option keeps its default.

    With ``mpn_link``, the link to the MPN center (the same certificates and ``[tls]``): ``[mpn]
    connect`` to a fourth free port where the benchmark's center must listen, ``center_code``
    :data:`MPN_CENTER_CODE` and ``hostname = "mpn-center"`` (commented out in the example: added
    at the top of ``[mpn]``).
    """
    api_port, metrics_port, link_port, center_port = free_ports(4)
    values = {
        ("database", "url"): toml_string(database_url),
        ("api", "listen"): toml_string(f"tcp:{api_port}:interface=127.0.0.1"),
        ("api", "public_url"): toml_string(f"http://127.0.0.1:{api_port}"),
        ("metrics", "listen"): toml_string(f"tcp:{metrics_port}:interface=127.0.0.1"),
        # One key and many clients measure throughput, not the per-key and per-address limits.
        ("api", "requests_per_second"): "1000000",
        ("api", "request_burst"): "100000",
        ("api", "max_connections_per_address"): "0",
    }
    example = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    config_path = workdir / "gateway.toml"
    link: CvsLink | None = None
    center: MpnCenter | None = None
    made: dict[str, Any] = {}
    if cvs_link or mpn_link:
        tls_dir = workdir / "tls"
        made = admin(config_path, "certs", "make", str(tls_dir))  # reads no config
        values[("tls", "ca")] = toml_string(made["ca"])
        values[("tls", "certificate")] = toml_string(made["gateway"])
        values[("tls", "key")] = toml_string(made["gateway_key"])
    if mpn_link:
        if tomllib.loads(example).get("mpn", {}).get("institution_code") != MPN_INSTITUTION_CODE:
            raise BenchFailure(f"{EXAMPLE_CONFIG}: [mpn] institution_code is not 58191")
        example = add_to_section(
            example,
            "mpn",
            [
                f"connect = {toml_string(f'tcp:127.0.0.1:{center_port}')}",
                f"center_code = {toml_string(MPN_CENTER_CODE)}",
                f"hostname = {toml_string('mpn-center')}",
            ],
        )
        center = MpnCenter(
            center_port, Path(made["ca"]), Path(made["mpn-center"]), Path(made["mpn-center_key"])
        )
    if link_options and not cvs_link:
        raise BenchFailure("link_options without cvs_link")
    if cvs_link:
        options = {
            "listen": toml_string(f"tcp:{link_port}:interface=127.0.0.1"),
            "peers": '["cvs-agency"]',
            **(link_options or {}),
        }
        present = tomllib.loads(example).get("cvs", {}).get("link")
        if present is not None:
            for k, v in options.items():
                if k in present:
                    values[("cvs.link", k)] = v
                else:
                    example = add_to_section(example, "cvs.link", [f"{k} = {v}"])
        else:
            example += "\n[cvs.link]  # added by bench/_daemon.py\n" + "".join(
                f"{k} = {v}\n" for k, v in options.items()
            )
        link = CvsLink(
            link_port, Path(made["ca"]), Path(made["cvs-agency"]), Path(made["cvs-agency_key"])
        )
    config = set_toml_values(example, values)
    config_path.write_text(config, encoding="utf-8")
    pool_size = int(tomllib.loads(config)["database"]["pool_size"])
    admin(config_path, "migrate")
    admin(
        config_path,
        "biller",
        "create",
        "--id",
        BILLER_ID,
        "--name",
        "Bench",
        "--kana",
        "ﾍﾞﾝﾁ",
        "--channels",
        "cvs,payeasy",
    )
    key = admin(config_path, "key", "create", "--biller", BILLER_ID)["key"]
    return Gateway(workdir, config_path, api_port, metrics_port, str(key), pool_size, link, center)


# --- the daemon ------------------------------------------------------------------------------


class Daemon:
    """``twistd -n gateway`` as a subprocess; a context manager that always stops it."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.log_path = gateway.workdir / "daemon.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Daemon:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    venv_command("twistd"),
                    "-n",
                    "--pidfile=",
                    "gateway",
                    "-c",
                    str(self.gateway.config_path),
                ],
                cwd=self.gateway.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        url = f"http://127.0.0.1:{self.gateway.metrics_port}/readyz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchFailure(
                    f"the daemon exited {self.process.returncode} before it was ready:\n"
                    + self.log_tail()
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise BenchFailure(f"{url} did not answer 200 within {timeout:.0f}s:\n" + self.log_tail())

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then wait (SIGKILL after ``timeout``). Safe to call twice."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                say(f"the daemon ignored SIGTERM for {timeout:.0f}s: SIGKILL")
                process.kill()
                process.wait()
        return process.returncode

    @property
    def pid(self) -> int:
        if self.process is None:
            raise BenchFailure("the daemon is not running")
        return self.process.pid

    def cpu_seconds(self) -> float | None:
        """CPU seconds (user + system) the daemon has used so far; None without /proc."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stopped_cleanly(self) -> bool:
        """twistd logs this after a clean shutdown (then re-raises SIGTERM on itself: exit -15)."""
        return "Server Shut Down." in self.log_tail(5)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text_ = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no daemon log)"
        # Access-log lines (one per request) would hide the lines that say what went wrong.
        kept = [line for line in text_.splitlines() if '#info] "127.0.0.1" - - [' not in line]
        return "\n".join(kept[-lines:])


JSON_OUT = "GATEWAY_BENCH_JSON"  # a file each benchmark appends its JSON line to (.ci/run)


def append_json_line(report: str, path: Path) -> None:
    """Append the report's last line, which must be one JSON object, to ``path`` (JSON lines:
    several benchmarks, or runs, share one file; bench/compare.py reads it)."""
    last = report.rstrip().splitlines()[-1] if report.strip() else ""
    try:
        figures = json.loads(last)
    except ValueError as e:
        raise BenchFailure(f"the report's last line is not JSON ({e}): {last[:80]!r}") from e
    if not isinstance(figures, dict) or "bench" not in figures:
        raise BenchFailure(f"the report's last line is not a benchmark's figures: {last[:80]!r}")
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(figures, ensure_ascii=False) + "\n")


def terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally: daemon, database, temp dir


def bench_main(
    name: str,
    args: Any,
    run: Callable[[Any, ScratchDatabase, Path], Any],
    report: Callable[[Any], str],
) -> int:
    """A benchmark's whole life: a temp dir and scratch database that are always removed (also
    on SIGTERM), the run, its report; 1 with the reason when a check failed. With the
    environment variable ``GATEWAY_BENCH_JSON`` set to a file name, the report's JSON line is
    also appended to that file."""
    signal.signal(signal.SIGTERM, terminated)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp,
            scratch_database(args.database_url, Path(tmp)) as db,
        ):
            result = run(args, db, Path(tmp))
    except BenchFailure as e:
        print(f"{name}: FAILED: {e}", file=sys.stderr)
        return 1
    text_ = report(result)
    print(text_)
    if out := os.environ.get(JSON_OUT):
        try:
            append_json_line(text_, Path(out))
        except (BenchFailure, OSError) as e:
            print(f"{name}: FAILED: cannot write {JSON_OUT}={out}: {e}", file=sys.stderr)
            return 1
    return 0


def add_database_url(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--database-url``: where :func:`scratch_database` makes its own database."""
    where = "SQLite in a temporary directory" if default is None else "%(default)s"
    parser.add_argument(
        "--database-url",
        default=default,
        help="a postgresql+psycopg:// URL: the benchmark creates and drops its own database"
        f" gateway_bench_<pid> on that server (default: {where})",
    )
