"""The real daemon killed at chosen points of its commit path while the agency streams 速報.

A kill from outside (tests/test_cvs_link_e2e.py) lands between a commit and its ack only by
luck: with acks moved before the commit, it caught the loss in 2 runs of 3. Here the daemon
kills itself (``GATEWAY_TEST_CRASH_AT``, gateway/infra/crashpoints.py, docs/testing.md "Crash
points") exactly there:

- ``cvs.after_commit:N``: the N-th 速報 of the process is committed, its ``AK 00`` not written;
- ``ingest.before_commit:N``: the N-th group commit has written its group, COMMIT not sent.

Each seed draws four kills (point and pass) and the agency's bursts; the agency keeps at most
20 records unacknowledged and resends them after every reconnection. After each kill: the
process died of SIGKILL at that point, every record acknowledged ``00`` is stored, none is
stored twice, and the kill landed where it was meant to (after a commit: a record is stored
that the agency was never told about). After a last, clean start every record is stored exactly
once. The same on PostgreSQL (GATEWAY_TEST_DATABASE_URL).

The mutation check runs the same with a daemon whose link acks before it commits
(tests/faults/early_ack.py): every kill loses acknowledged records, and the check says so.
"""

from __future__ import annotations

import random
import signal
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from gateway.app.process import DaemonProcess
from gateway.infra import crashpoints
from tests.faults.link import (
    Agency,
    bill_codes,
    certificates,
    event_key,
    messages_stored,
    onboard_biller,
    start_daemon,
    stored_keys,
)
from tests.test_cvs_link_e2e import make_site, records_for

pytestmark = pytest.mark.e2e

__all__ = ["certificates"]  # the session fixture, imported for the tests below

WINDOW = 20  # records the agency leaves unacknowledged at most
BILLS = 60  # 180 records: 3 per bill
ROUND_SECONDS = 30  # the bound of one life of the daemon


@dataclass(frozen=True)
class Kill:
    point: str
    count: int

    @property
    def spec(self) -> str:
        return f"{self.point}:{self.count}"


@dataclass
class Round:
    """What one kill left: compared with what the agency was told."""

    kill: Kill
    exit: int | None
    acked: int
    stored: int
    lost: list[str]  # acknowledged 00, not stored
    doubled: list[str]  # stored more than once
    unacked_stored: int  # committed, never acknowledged: resent after the restart


@dataclass
class Run:
    rounds: list[Round] = field(default_factory=list)
    records: int = 0
    keys: list[str] = field(default_factory=list)  # every record's event key, sorted
    final: list[str] | None = None  # event keys stored at the end, after a clean start
    messages: int = 0
    answers: list[str] = field(default_factory=list)


def plan(seed: int, kills: int, points: tuple[str, ...]) -> list[Kill]:
    rng = random.Random(seed)
    out = []
    for _ in range(kills):
        point = rng.choice(points)
        # groups are fewer than records: a group commit is met a few times per life
        out.append(Kill(point, rng.randint(1, 20 if point == "cvs.after_commit" else 4)))
    return out


async def crash_run(
    tmp_path: Path,
    database_url: str,
    tls: Path,
    seed: int,
    kills: list[Kill],
    *,
    module: str | None = None,
    final: bool = True,
) -> Run:
    """Stream records in bursts while the daemon dies at each kill of ``kills`` in turn and is
    started again; with ``final``, a last clean life until every record is acknowledged."""
    from twisted.internet import reactor  # noqa: TID251 - tests drive the real reactor

    rng = random.Random(seed)
    site = make_site(tmp_path, database_url, tls=tls)
    key = onboard_biller(site.config)
    lives = [k.spec for k in kills] + ([""] if final else [])
    daemon: DaemonProcess = start_daemon(site, crash_at=lives[0], module=module)
    agency = None
    run = Run()
    try:
        await deferToThread(daemon.wait, "/readyz")
        records = records_for(await deferToThread(bill_codes, daemon, key, BILLS), 3)
        run.records = len(records)
        run.keys = sorted(event_key(r) for r in records)
        queue = deque(records)
        agency = Agency(reactor, site)
        for n, kill in enumerate(kills):
            assert daemon.proc is not None
            waited = 0.0
            while daemon.proc.poll() is None:
                if queue and agency.unacked < WINDOW:
                    for _ in range(min(rng.randint(1, 10), len(queue))):
                        agency.send(queue.popleft())
                pause = rng.uniform(0.005, 0.06)
                await deferLater(reactor, pause)
                waited += pause
                assert waited < ROUND_SECONDS, f"{kill.spec} was not reached: {daemon.output()}"
            exit = daemon.proc.wait()
            await agency.disconnected()
            stored = await deferToThread(stored_keys, database_url)
            acked = set(agency.acked)
            run.rounds.append(
                Round(
                    kill,
                    exit,
                    len(acked),
                    len(stored),
                    sorted(acked - set(stored)),
                    sorted({k for k in stored if stored.count(k) > 1}),
                    len(set(stored) - acked),
                )
            )
            assert exit == -signal.SIGKILL, daemon.output()
            assert f"crash point {kill.point}: pass {kill.count}," in daemon.output()
            if n + 1 < len(lives):
                # not waited for: the agency finds it and resends at once, which may kill it
                daemon = start_daemon(site, crash_at=lives[n + 1], module=module)
        if final:
            await deferToThread(daemon.wait, "/readyz")
            while queue:
                if agency.unacked < WINDOW:
                    for _ in range(min(rng.randint(1, 10), len(queue))):
                        agency.send(queue.popleft())
                await deferLater(reactor, 0.01)
            run.answers = await agency.all_answered()
    finally:
        if agency is not None:
            await agency.stop()
        await deferToThread(daemon.stop)
    if final:
        run.final = stored_keys(database_url)
        run.messages = messages_stored(database_url)
    return run


@pytest.mark.parametrize("seed", [1, 2])
@pytest_twisted.ensureDeferred
async def test_killed_at_the_commit_the_agency_resends_and_nothing_is_lost_or_doubled(
    tmp_path: Path, migrated_url: str, certificates: Path, seed: int
) -> None:
    kills = plan(seed, 4, ("cvs.after_commit", "ingest.before_commit"))
    run = await crash_run(tmp_path, migrated_url, certificates, seed, kills)
    for r in run.rounds:
        assert r.lost == [], f"{r.kill.spec}: acknowledged and not stored: {r.lost}"
        assert r.doubled == [], f"{r.kill.spec}: stored twice: {r.doubled}"
        if r.kill.point == "cvs.after_commit":
            # the window was hit: a record committed whose ack the agency never had
            assert r.unacked_stored >= 1, r
    assert run.answers == ["00"] * run.records
    assert run.final is not None
    assert sorted(run.final) == run.keys
    assert run.messages == run.records


@pytest.mark.parametrize("seed", [3])
@pytest_twisted.ensureDeferred
async def test_the_crash_test_catches_acks_written_before_the_commit_every_time(
    tmp_path: Path, migrated_url: str, certificates: Path, seed: int
) -> None:
    """Mutation check: the daemon of tests/faults/early_ack.py acks a 速報 when it reads it and
    commits it later. Killed between the two, it loses acknowledged records at every kill."""
    kills = plan(seed, 3, ("ingest.before_commit",))
    run = await crash_run(
        tmp_path,
        migrated_url,
        certificates,
        seed,
        kills,
        module="tests.faults.early_ack",
        final=False,
    )
    assert len(run.rounds) == 3
    for r in run.rounds:
        assert r.lost, f"{r.kill.spec}: the mutation went unnoticed: {r}"


def test_a_crash_point_fires_on_its_pass_only() -> None:
    kills: list[str] = []
    crashpoints.arm("cvs.after_commit:3", kill=lambda: kills.append("killed"))
    try:
        crashpoints.crash_point("ingest.before_commit")
        for _ in range(2):
            crashpoints.crash_point("cvs.after_commit")
        assert kills == []
        crashpoints.crash_point("cvs.after_commit")
        assert kills == ["killed"]
        crashpoints.crash_point("cvs.after_commit")
        assert kills == ["killed"]  # the 3rd pass only
    finally:
        crashpoints.arm("")
    crashpoints.crash_point("cvs.after_commit")
    assert kills == ["killed"]
    assert crashpoints.parse("cvs.after_commit, ingest.before_commit:2") == {
        "cvs.after_commit": 1,
        "ingest.before_commit": 2,
    }
    for bad in ("cvs.after_comit", "cvs.after_commit:0", "cvs.after_commit:x"):
        with pytest.raises(ValueError, match="GATEWAY_TEST_CRASH_AT"):
            crashpoints.parse(bad)
