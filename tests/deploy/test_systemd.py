"""deploy/systemd: the units run the real programs, as their own user, in the sandbox the
operations guide promises; ``systemd-analyze verify`` accepts them where it is installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.app.process import BIN

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
CONFIG = "/etc/gateway/gateway.toml"
STATE = "/var/lib/gateway"

#: What each unit's [Service] must say, exactly (a missing or different line fails).
SANDBOX = {
    "User": "gateway",
    "Group": "gateway",
    "UMask": "0077",
    "ProtectSystem": "strict",
    "ReadWritePaths": STATE,
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
}


def parse(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as sections of keys, each key with its values in order (systemd's syntax:
    ``#``/``;`` comments, ``[Section]``, ``Key=value``; no continuation lines are used here)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), f"{path.name}:{number}: continuation line"
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}:{number}: a setting outside any section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}:{number}: not Key=value: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(section: dict[str, list[str]], key: str) -> str:
    values = section.get(key)
    assert values is not None, f"{key}= missing"
    assert len(values) == 1, f"{key}= given {len(values)} times: {values}"
    return values[0]


@pytest.fixture(scope="module")
def gateway() -> dict[str, dict[str, list[str]]]:
    return parse(UNITS / "gateway.service")


@pytest.fixture(scope="module")
def migrate() -> dict[str, dict[str, list[str]]]:
    return parse(UNITS / "gateway-migrate.service")


def test_the_daemon_runs_twistd_in_the_foreground_without_a_pid_file(
    gateway: dict[str, dict[str, list[str]]],
) -> None:
    service = gateway["Service"]
    assert one(service, "Type") == "simple"
    assert one(service, "ExecStart").split() == [
        "/opt/gateway/bin/twistd",
        "-n",
        "--pidfile=",
        "gateway",
        "-c",
        CONFIG,
    ]
    assert one(service, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one(service, "KillSignal") == "SIGTERM"
    assert float(one(service, "TimeoutStopSec")) >= 30  # the drain of work in flight
    assert one(service, "Restart") == "on-failure"
    assert one(service, "WorkingDirectory") == STATE
    assert gateway["Install"]["WantedBy"] == ["multi-user.target"]


def test_the_daemon_migrates_first(
    gateway: dict[str, dict[str, list[str]]], migrate: dict[str, dict[str, list[str]]]
) -> None:
    assert "gateway-migrate.service" in gateway["Unit"]["Requires"]
    assert "gateway-migrate.service" in gateway["Unit"]["After"]
    assert one(migrate["Unit"], "Before") == "gateway.service"
    service = migrate["Service"]
    assert one(service, "Type") == "oneshot"
    assert one(service, "ExecStart").split() == [
        "/opt/gateway/bin/gateway-admin",
        "-c",
        CONFIG,
        "migrate",
    ]
    assert "RemainAfterExit" not in service  # so that every (re)start migrates again


@pytest.mark.parametrize("unit", ["gateway.service", "gateway-migrate.service"])
def test_each_unit_runs_in_the_sandbox(unit: str) -> None:
    service = parse(UNITS / unit)["Service"]
    for key, value in SANDBOX.items():
        assert one(service, key) == value, key


def test_the_programs_the_units_run_are_installed_with_the_gateway() -> None:
    """``/opt/gateway/bin/X`` is the venv's ``bin/X``: the same names are in this one."""
    for name in ("twistd", "gateway-admin"):
        assert (BIN / name).exists(), name


def test_the_sandbox_covers_the_folders_the_guide_tells_to_use() -> None:
    """The README's configuration puts everything the daemon writes under /var/lib/gateway."""
    text = (UNITS / "README.md").read_text(encoding="utf-8")
    assert "sqlite:////var/lib/gateway/" in text
    assert "systemctl daemon-reload" in text
    assert "useradd --system" in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    """Copies whose /opt/gateway/bin is this environment's bin: verify checks the programs."""
    for unit in ("gateway.service", "gateway-migrate.service"):
        text = (UNITS / unit).read_text(encoding="utf-8")
        (tmp_path / unit).write_text(text.replace("/opt/gateway/bin", str(BIN)), "utf-8")
    proc = subprocess.run(
        ["systemd-analyze", "verify", *(str(p) for p in sorted(tmp_path.glob("*.service")))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr.strip() == "", proc.stderr
