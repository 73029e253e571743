"""API keys (issue 14, finding 4): list, revoke, rotate with a grace; the authenticator's caches
(a revoked key stops within api.auth_cache_seconds, a rotated one when its grace ends, wrong keys
cost no database query each); and the attacks against the real daemon."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from gateway.app.admin.commands import main as admin_main
from gateway.billing.keys import NEGATIVE_SECONDS, Authenticator, hash_key, new_key, well_formed
from gateway.model import Principal
from gateway.store import create_db_engine
from gateway.store.billers import principal_for_hash
from gateway.store.schema import api_keys
from tests.conftest import config_text
from tests.daemon import Daemon, admin_cli, http, start_daemon, write_config

T0 = 1_800_000_000.0
KEY = new_key()[1]
OTHER = new_key()[1]


# --- the authenticator's caches, on a clock -----------------------------------------------------


class FakeStore:
    """Answers keys.lookup from a dict, counting the database round trips."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[Principal, datetime | None]] = {}
        self.lookups = 0

    def run_interaction(self, desc: str, fn: Any, digest: str, now: datetime) -> Deferred[Any]:
        assert desc == "keys.lookup"
        self.lookups += 1
        found = self.keys.get(digest)
        if found is not None and found[1] is not None and found[1] <= now:
            found = None
        return succeed(found)


def auth(store: FakeStore, clock: Clock, ttl: float = 10, **kw: Any) -> Authenticator:
    return Authenticator(store, clock, ttl, **kw)  # type: ignore[arg-type]


def check(a: Authenticator, key: str) -> Principal | None:
    result: list[Principal | None] = []
    a.authenticate(key).addCallback(result.append)
    return result[0]


@pytest.fixture
def clock() -> Clock:
    c = Clock()
    c.advance(T0)
    return c


def test_a_known_key_is_cached_for_auth_cache_seconds_only(clock: Clock) -> None:
    store = FakeStore()
    acme = Principal("key_1", "acme", False)
    store.keys[hash_key(KEY)] = (acme, None)
    a = auth(store, clock, ttl=10)
    assert [check(a, KEY) for _ in range(5)] == [acme] * 5
    assert store.lookups == 1
    del store.keys[hash_key(KEY)]  # revoked in the database
    clock.advance(9.9)
    assert check(a, KEY) == acme  # still inside the cache window
    clock.advance(0.2)
    assert check(a, KEY) is None  # the window is over: refused
    assert store.lookups == 2


def test_a_rotated_key_is_never_cached_past_its_grace(clock: Clock) -> None:
    store = FakeStore()
    acme = Principal("key_1", "acme", False)
    ends = datetime.fromtimestamp(T0 + 3, UTC)
    store.keys[hash_key(KEY)] = (acme, ends)
    a = auth(store, clock, ttl=60)
    assert check(a, KEY) == acme
    clock.advance(2.9)
    assert check(a, KEY) == acme
    assert store.lookups == 1
    clock.advance(0.1)
    assert check(a, KEY) is None  # 3 s after, although auth_cache_seconds is 60


def test_repeated_wrong_keys_cost_one_lookup_per_few_seconds(clock: Clock) -> None:
    store = FakeStore()
    a = auth(store, clock, ttl=0)  # even with the positive cache off
    assert [check(a, KEY) for _ in range(100)] == [None] * 100
    assert store.lookups == 1
    clock.advance(NEGATIVE_SECONDS + 0.1)
    assert check(a, KEY) is None
    assert store.lookups == 2


def test_a_key_issued_after_a_miss_works_once_the_miss_expires(clock: Clock) -> None:
    store = FakeStore()
    a = auth(store, clock)
    assert check(a, KEY) is None
    store.keys[hash_key(KEY)] = (Principal("key_1", "acme", False), None)
    clock.advance(NEGATIVE_SECONDS + 0.1)
    assert check(a, KEY) is not None


def test_text_that_cannot_be_a_key_never_reaches_the_database(clock: Clock) -> None:
    store = FakeStore()
    a = auth(store, clock)
    for junk in ["nope", "gw_", KEY + "x", KEY[:-1], "gw_" + "!" * 43, KEY.upper()[3:]]:
        assert check(a, junk) is None
    assert store.lookups == 0
    assert well_formed(KEY) and well_formed(OTHER)


def test_both_caches_are_bounded(clock: Clock) -> None:
    store = FakeStore()
    a = auth(store, clock, max_entries=3)
    wrong = [new_key()[1] for _ in range(10)]
    for key in wrong:
        check(a, key)
    assert len(a._unknown) == 3
    for key in wrong:
        store.keys[hash_key(key)] = (Principal("key_x", "acme", False), None)
    clock.advance(NEGATIVE_SECONDS + 1)
    for key in wrong:
        check(a, key)
    assert len(a._cache) == 3


# --- the store and the commands -----------------------------------------------------------------


@pytest.fixture
def conf(tmp_path: Path, migrated_url: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(config_text(migrated_url), encoding="utf-8")
    return path


def run(conf: Path, *args: str) -> tuple[int, Any, str]:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = admin_main(["-c", str(conf), *args])
    return rc, json.loads(out.getvalue()) if rc == 0 else None, err.getvalue()


def ok(conf: Path, *args: str) -> Any:
    rc, result, err = run(conf, *args)
    assert rc == 0, err
    return result


def onboard(conf: Path, biller: str) -> dict[str, Any]:
    ok(conf, "biller", "create", "--id", biller, "--name", biller, "--kana", "ｱｸﾒ")
    result: dict[str, Any] = ok(conf, "key", "create", "--biller", biller)
    return result


def works(url: str, key: str, at: datetime) -> bool:
    engine = create_db_engine(url, 1)
    try:
        with engine.connect() as conn:
            return principal_for_hash(conn, hash_key(key), at) is not None
    finally:
        engine.dispose()


def test_key_list_shows_ids_and_states_never_secrets(conf: Path, migrated_url: str) -> None:
    one = onboard(conf, "acme")
    two = onboard(conf, "rival")
    admin_key = ok(conf, "key", "create", "--admin")
    listed = ok(conf, "key", "list")["keys"]
    assert {k["key_id"] for k in listed} == {one["key_id"], two["key_id"], admin_key["key_id"]}
    shown = {"key_id", "biller_id", "admin", "name", "prefix", "created_at", "last_used_at"}
    for k in listed:
        assert set(k) == shown | {"revoked_at", "state"}
        assert k["state"] == "active" and k["revoked_at"] is None
        made = next(m for m in (one, two, admin_key) if m["key_id"] == k["key_id"])
        assert k["prefix"] == made["key"][:7] and k["prefix"].startswith("gw_")
    text = json.dumps(listed)
    for made in (one, two, admin_key):
        assert made["key"] not in text and hash_key(made["key"]) not in text
    only = ok(conf, "key", "list", "--biller", "acme")["keys"]
    assert [(k["key_id"], k["biller_id"], k["admin"]) for k in only] == [
        (one["key_id"], "acme", False)
    ]
    assert run(conf, "key", "list", "--biller", "nobody")[0] == 1


def test_a_key_has_a_name_and_remembers_when_it_was_last_used(
    conf: Path, migrated_url: str
) -> None:
    onboard(conf, "acme")
    made = ok(conf, "key", "create", "--biller", "acme", "--name", "基幹システム（本番）")
    assert made["name"] == "基幹システム（本番）"
    assert run(conf, "key", "create", "--biller", "acme", "--name", "x" * 65)[0] == 1

    def last_used() -> datetime | None:
        (key,) = [k for k in ok(conf, "key", "list")["keys"] if k["key_id"] == made["key_id"]]
        assert key["name"] == "基幹システム（本番）"
        return None if key["last_used_at"] is None else datetime.fromisoformat(key["last_used_at"])

    def use(at: datetime) -> None:
        engine = create_db_engine(migrated_url, 1)
        with engine.begin() as conn:
            assert principal_for_hash(conn, hash_key(made["key"]), at) is not None
        engine.dispose()

    assert last_used() is None  # never used yet
    first = datetime.now(UTC)
    use(first)
    assert last_used() == first
    use(first + timedelta(seconds=30))  # within a minute: not written again
    assert last_used() == first
    use(first + timedelta(seconds=61))
    assert last_used() == first + timedelta(seconds=61)


def test_key_revoke_one_and_all_of_a_biller(conf: Path, migrated_url: str) -> None:
    first = onboard(conf, "acme")
    second = ok(conf, "key", "create", "--biller", "acme")
    rival = onboard(conf, "rival")
    now = datetime.now(UTC)
    assert works(migrated_url, first["key"], now)
    done = ok(conf, "key", "revoke", first["key_id"])
    assert done["revoked"][0]["state"] == "revoked"
    assert not works(migrated_url, first["key"], datetime.now(UTC))
    assert works(migrated_url, second["key"], datetime.now(UTC))
    assert run(conf, "key", "revoke", "key_0000000000000000")[0] == 1  # unknown id
    assert run(conf, "key", "revoke", "--biller", "acme")[0] == 1  # --all is required
    assert run(conf, "key", "revoke")[0] == 1
    everything = ok(conf, "key", "revoke", "--biller", "acme", "--all")
    assert [k["key_id"] for k in everything["revoked"]] == [second["key_id"]]
    assert not works(migrated_url, second["key"], datetime.now(UTC))
    assert works(migrated_url, rival["key"], datetime.now(UTC))  # another biller's: untouched


def test_key_rotate_prints_the_new_key_once_and_ends_the_old_after_the_grace(
    conf: Path, migrated_url: str
) -> None:
    old = onboard(conf, "acme")
    rotated = ok(conf, "key", "rotate", "--biller", "acme", "--grace", "2h")
    new = rotated["key"]
    assert well_formed(new) and rotated["key_id"] != old["key_id"]
    ends = datetime.fromisoformat(rotated["old_keys_stop_at"])
    assert [k["key_id"] for k in rotated["old_keys"]] == [old["key_id"]]
    assert rotated["old_keys"][0]["state"] == "expiring"
    assert (
        timedelta(hours=2) - timedelta(minutes=1) < ends - datetime.now(UTC) <= timedelta(hours=2)
    )
    # The old key works until the end of the grace and not after; the new one throughout.
    assert works(migrated_url, old["key"], ends - timedelta(seconds=1))
    assert not works(migrated_url, old["key"], ends)
    assert works(migrated_url, new, ends + timedelta(days=1))
    # The key is printed by rotate only: list shows its id and state.
    assert new not in json.dumps(ok(conf, "key", "list"))
    # Rotating again does not extend the first grace; revoking cuts it short.
    again = ok(conf, "key", "rotate", "--biller", "acme", "--grace", "7d")
    assert [k["key_id"] for k in again["old_keys"]] == [rotated["key_id"]]
    engine = create_db_engine(migrated_url, 1)
    with engine.connect() as conn:
        kept = conn.execute(
            select(api_keys.c.revoked_at).where(api_keys.c.key_id == old["key_id"])
        ).scalar_one()
    engine.dispose()
    assert kept == ends
    ok(conf, "key", "revoke", old["key_id"])
    assert not works(migrated_url, old["key"], datetime.now(UTC))


@pytest.mark.parametrize("grace", ["", "soon", "-5s", "31d", "1.5h", "2w"])
def test_key_rotate_refuses_a_bad_grace(conf: Path, grace: str) -> None:
    onboard(conf, "acme")
    rc, _, err = run(conf, "key", "rotate", "--biller", "acme", f"--grace={grace}")
    assert rc == 1 and "--grace" in err


# --- attacks against the real daemon ------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[tuple[Daemon, Path]]:
    """The daemon with api.auth_cache_seconds = 1 (the tests' default is 0: no cache)."""
    config, api_port, metrics_port = write_config(tmp_path, database_url)
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace("auth_cache_seconds = 0", "auth_cache_seconds = 1"), encoding="utf-8"
    )
    admin_cli(config, "migrate")
    daemon = start_daemon(config, api_port, metrics_port)
    try:
        daemon.wait()
        yield daemon, config
    finally:
        daemon.stop()


def daemon_onboard(config: Path, biller: str) -> dict[str, Any]:
    admin_cli(config, "biller", "create", "--id", biller, "--name", biller, "--kana", "ｱｸﾒ")
    made: dict[str, Any] = json.loads(admin_cli(config, "key", "create", "--biller", biller).stdout)
    return made


def status(daemon: Daemon, key: str) -> int:
    code, _, _ = http("GET", daemon.api + "/v1/bills", headers={"Authorization": f"Bearer {key}"})
    return code


def until_refused(daemon: Daemon, key: str, bound: float = 30) -> int:
    """Ask with ``key`` until it is refused (bounded: the caches expire in seconds)."""
    deadline = time.monotonic() + bound
    code = status(daemon, key)
    while code != 401 and time.monotonic() < deadline:
        time.sleep(0.2)
        code = status(daemon, key)
    return code


def lookups(daemon: Daemon) -> float:
    """Database round trips of key lookups so far (the store's interaction metric)."""
    _, text, _ = http("GET", daemon.metrics + "/metrics")
    match = re.search(
        r'^gateway_store_interaction_duration_seconds_count\{desc="keys\.lookup"\} (\S+)$',
        text,
        re.M,
    )
    return float(match.group(1)) if match else 0.0


@pytest.mark.e2e
def test_a_revoked_key_is_refused_by_the_running_daemon(site: tuple[Daemon, Path]) -> None:
    daemon, config = site
    acme = daemon_onboard(config, "acme")
    assert status(daemon, acme["key"]) == 200  # and now in the daemon's cache
    admin_cli(config, "key", "revoke", acme["key_id"])
    assert until_refused(daemon, acme["key"]) == 401


@pytest.mark.e2e
def test_a_rotated_key_works_during_its_grace_only(site: tuple[Daemon, Path]) -> None:
    daemon, config = site
    acme = daemon_onboard(config, "acme")
    assert status(daemon, acme["key"]) == 200
    rotated = json.loads(
        admin_cli(config, "key", "rotate", "--biller", "acme", "--grace", "3s").stdout
    )
    ends = datetime.fromisoformat(rotated["old_keys_stop_at"])
    old_during_grace = status(daemon, acme["key"])
    asked_at = datetime.now(UTC)
    assert status(daemon, rotated["key"]) == 200
    assert asked_at < ends  # the request above was made inside the grace
    assert old_during_grace == 200
    assert until_refused(daemon, acme["key"]) == 401
    assert datetime.now(UTC) >= ends
    assert status(daemon, rotated["key"]) == 200


@pytest.mark.e2e
def test_repeated_wrong_keys_do_not_each_query_the_database(site: tuple[Daemon, Path]) -> None:
    daemon, config = site
    daemon_onboard(config, "acme")
    wrong = new_key()[1]
    before = lookups(daemon)
    # (Fewer than api.auth_failure_burst failures: this address is not throttled to 429.)
    assert [status(daemon, wrong) for _ in range(15)] == [401] * 15
    assert [status(daemon, "not-a-key") for _ in range(4)] == [401] * 4
    # One lookup for the wrong key (two if the negative cache expired between requests).
    assert lookups(daemon) - before <= 2


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("old", "new", "option"),
    [
        ('public_url = "http://127.0.0.1:', 'public_url = "http://example.jp:', "api.public_url"),
        (
            "[zengin]",
            '[cvs.agency]\nurl = "http://agency.example.jp/csv"\nuser_id = "U"\n'
            'password = "P"\n\n[zengin]',
            "cvs.agency.url",
        ),
    ],
)
def test_the_daemon_refuses_plain_http_off_loopback(
    tmp_path: Path, old: str, new: str, option: str
) -> None:
    config, api_port, metrics_port = write_config(tmp_path, f"sqlite:///{tmp_path}/g.sqlite3")
    text = config.read_text(encoding="utf-8")
    assert old in text
    config.write_text(text.replace(old, new, 1), encoding="utf-8")
    daemon = start_daemon(config, api_port, metrics_port)
    try:
        rc = daemon.proc.wait(30)
    finally:
        if daemon.proc.poll() is None:  # it started after all: stop it (the test has failed)
            daemon.stop()
    assert rc != 0
    assert f"configuration error: {option}:" in daemon.output()
    assert "https" in daemon.output()
    with socket.socket() as s, pytest.raises(OSError):
        s.connect(("127.0.0.1", api_port))
