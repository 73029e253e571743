"""A private PostgreSQL cluster for one test, that the test may restart.

Not the machine's shared server (127.0.0.1:5432, which the rest of the suite uses): a cluster of
its own, made with the installed binaries (``/usr/lib/postgresql/<newest>/bin``) in a temporary
directory, listening on 127.0.0.1 on a free port, trusted locally, without fsync (a restart is
a clean shutdown: what was committed is on disk). Run as the ``postgres`` user when the tests
run as root (``initdb`` refuses root), as the current user otherwise. :meth:`PrivateCluster.stop`
stops it and removes the directory.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from gateway.app.process import free_port

__all__ = ["PrivateCluster", "binaries", "unavailable"]


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin directory with initdb and pg_ctl."""
    found = [
        b
        for b in Path("/usr/lib/postgresql").glob("*/bin")
        if (b / "initdb").exists() and (b / "pg_ctl").exists()
    ]
    return max(found, key=lambda b: int(b.parent.name)) if found else None


def unavailable() -> str | None:
    """Why a private cluster cannot be made here (None: it can)."""
    if binaries() is None:
        return "no PostgreSQL binaries in /usr/lib/postgresql/*/bin"
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return "running as root without runuser to become postgres"
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user"
    return None


class PrivateCluster:
    def __init__(self) -> None:
        bin_dir = binaries()
        assert bin_dir is not None
        self.bin = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
        self.data = self.root / "data"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [*self.as_user, str(self.bin / program), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{program} {' '.join(args)}: {done.stderr.strip()}\n{tail}")

    def _pg_ctl(self, action: str, *args: str) -> None:
        self._run("pg_ctl", action, "-D", str(self.data), "-w", "-t", "60", *args)

    def start(self) -> None:
        self._run(
            *("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust"),
            *("-E", "UTF8", "--locale=C", "--no-sync"),
        )
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off"
        )
        self._pg_ctl("start", "-l", str(self.root / "server.log"), "-o", options)

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every session is ended, the server stops and starts."""
        self._pg_ctl("restart", "-m", "fast", "-l", str(self.root / "server.log"))

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._pg_ctl("stop", "-m", "immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"
