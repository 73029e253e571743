"""What each seed starts from: its configuration, its database (a copy of a migrated SQLite
file, or a database made from a migrated template on a PostgreSQL server) and random identifiers
drawn from the seed."""

from __future__ import annotations

import base64
import contextlib
import os
import random
import secrets
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url

from gateway import ids
from gateway.config import Config
from gateway.config.parse import parse_config
from gateway.store import create_db_engine
from gateway.store.migrate import migrate

COMPANY_CODE = "987654"
KINDS = {"01": "preliminary", "02": "confirmation", "03": "void"}
SECRET_KEY = base64.b64encode(b"simulation-secret-key-32-bytes!!").decode()
CUSTOMERS = ("C1", "C2", "C3", "C4")  # with a mandate; C5 has none
BILLERS = ("acme", "beta")


def config_text(workdir: Path, database_url: str) -> str:
    return f"""
[database]
url = "{database_url}"
pool_size = 4
migrate_on_start = false

[api]
listen = "tcp:0:interface=127.0.0.1"
public_url = "https://pay.example.jp"

[metrics]
listen = "tcp:0:interface=127.0.0.1"

[secrets]
key = "{SECRET_KEY}"

[bills]
expiry_interval = 1800

[cvs]
company_code = "{COMPANY_CODE}"
ceiling = 300000

[cvs.files]
inbox = "{workdir / "inbox" / "cvs"}"
poll_interval = 10

[mpn]
institution_code = "58191"
number_key = "5e1f0c2a9b7d4e6f8a3c1b2d0e9f7a6c"
close_at = "23:50"

[zengin]
outbox = "{workdir / "outbox" / "zengin"}"
inbox = "{workdir / "inbox" / "zengin"}"
poll_interval = 10
request_at = "09:05"
lead_days = 3

[webhooks]
poll_interval = 60
backoff_base = 5
backoff_cap = 120
max_age_hours = 720
timeout = 10

[settlement]
interval = 3600
"""


def load(text: str, base: Path) -> Config:
    return parse_config(tomllib.loads(text), base)


# --- the database -------------------------------------------------------------------------------


class Databases:
    """Where each seed's database comes from: a migrated SQLite file copied, or a database
    made from a migrated template on the PostgreSQL server (and dropped afterwards)."""

    def __init__(self, base: Path, server_url: str | None) -> None:
        self.base = base
        self.server_url = server_url
        self.template: str | None = None
        self._server: Any = None
        self._engine: Engine | None = None
        self._url: str | None = None

    @property
    def backend(self) -> str:
        return "postgresql" if self.server_url else "sqlite"

    def _template(self) -> str:
        if self.template is not None:
            return self.template
        if self.server_url is None:
            path = self.base / f"template-{os.getpid()}.sqlite3"
            if not path.exists():
                engine = create_db_engine(f"sqlite:///{path}", 1)
                migrate(engine)
                engine.dispose()
            self.template = str(path)
        else:
            name = f"simtpl_{os.getpid()}_{secrets.token_hex(3)}"
            self._server = create_engine(self.server_url, isolation_level="AUTOCOMMIT")
            with self._server.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            url = make_url(self.server_url).set(database=name).render_as_string(hide_password=False)
            engine = create_db_engine(url, 1)
            migrate(engine)
            engine.dispose()
            self.template = name
        return self.template

    def _engine_for(self, url: str) -> Engine:
        """One engine per worker and database name, for its cache of compiled statements
        (each seed's database has the same name); its connections are closed between seeds
        and at every crash."""
        if self._engine is None or self._url != url:
            if self._engine is not None:
                self._engine.dispose()
            self._engine, self._url = create_db_engine(url, 4), url
        return self._engine

    @contextlib.contextmanager
    def database(self, seed: int, workdir: Path) -> Iterator[tuple[str, Engine]]:
        template = self._template()
        if self._engine is not None:
            self._engine.dispose()
        if self.server_url is None:
            path = self.base / "seed.sqlite3"
            for suffix in ("", "-wal", "-shm", "-journal"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
            shutil.copyfile(template, path)
            url = f"sqlite:///{path}"
            try:
                yield url, self._engine_for(url)
            finally:
                self._engine_for(url).dispose()
            return
        name = f"sim_{os.getpid()}"
        with self._server.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        url = make_url(self.server_url).set(database=name).render_as_string(hide_password=False)
        try:
            yield url, self._engine_for(url)
        finally:
            self._engine_for(url).dispose()
            with self._server.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        if self._server is not None and self.template is not None:
            with self._server.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')
            self._server.dispose()
        self._server = None


# --- determinism --------------------------------------------------------------------------------


@contextlib.contextmanager
def seeded_randomness(seed: int) -> Iterator[random.Random]:
    """Every random identifier the gateway draws (ids, page and event ids, secrets) from the
    seed, so that a seed replays exactly; restored afterwards."""
    rng = random.Random(f"secrets/{seed}")
    names = ("token_bytes", "token_hex", "token_urlsafe", "randbelow")
    saved = {name: getattr(secrets, name) for name in names}

    def token_bytes(n: int | None = 32) -> bytes:
        return rng.randbytes(32 if n is None else n)

    def token_hex(n: int | None = 32) -> str:
        return token_bytes(n).hex()

    def token_urlsafe(n: int | None = 32) -> str:
        return base64.urlsafe_b64encode(token_bytes(n)).rstrip(b"=").decode("ascii")

    secrets.token_bytes = token_bytes  # type: ignore[assignment]
    secrets.token_hex = token_hex  # type: ignore[assignment]
    secrets.token_urlsafe = token_urlsafe  # type: ignore[assignment]
    secrets.randbelow = lambda n: rng.randrange(n)  # type: ignore[assignment]
    ids.new_id._pool, ids.new_id._at = b"", 0
    try:
        yield rng
    finally:
        for name, value in saved.items():
            setattr(secrets, name, value)
        ids.new_id._pool, ids.new_id._at = b"", 0
