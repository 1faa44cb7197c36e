"""deploy/: the systemd units parse as systemd parses them, and say what a Celery fleet needs.

``systemd-analyze verify`` loads each unit as systemd would (unknown keys, bad values, a missing
ExecStart binary), working offline on the files. The units run /opt/esiprov/venv/bin/...; the copies
verified here point at stub executables instead, since this machine has no such install.
Any line verify prints fails the test: it reports a bad key as a warning and still exits 0.
"""
from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import celeryconfig
from esiprov.settings import from_env

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
VENV_BIN = "/opt/esiprov/venv/bin/"
UNITS = ["esiprov-worker@.service", "esiprov-beat.service", "esiprov-watch.service", "esiprov-flower.service"]


def _instance(queues: str) -> str:
    """The unit name of the worker for ``queues``, escaped as an operator would with systemd-escape."""
    return subprocess.run(["systemd-escape", "--template", "esiprov-worker@.service", queues],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def stubbed(tmp_path: Path) -> Path:
    """deploy/'s units copied with VENV_BIN pointing at stub executables; the directory they are in."""
    stubs, units = tmp_path / "bin", tmp_path / "units"
    stubs.mkdir()
    units.mkdir()
    for name in ("celery", "esiprov"):
        (stubs / name).write_text("#!/bin/sh\n")
        (stubs / name).chmod(0o755)
    for name in UNITS:
        (units / name).write_text((DEPLOY / name).read_text().replace(VENV_BIN, f"{stubs}/"))
    return units


def verify(unit: Path) -> str:
    """What systemd-analyze verify says of ``unit`` (empty: nothing), failing on a non-zero exit."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:  # failed, not skipped: a CI without it would pass having checked nothing
        pytest.fail("systemd-analyze is missing: `make deps` installs Debian's systemd package", pytrace=False)
    done = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True)
    said = (done.stdout + done.stderr).strip()
    assert done.returncode == 0, said
    return said


def unit(name: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment]
    parser.read(DEPLOY / name)
    return parser["Service"]


@pytest.mark.parametrize("name", ["esiprov-beat.service", "esiprov-watch.service", "esiprov-flower.service",
                                  "heat_worker", "monitoring_worker,poller"])
def test_systemd_analyze_verify_finds_nothing_to_say_of_each_unit(stubbed: Path, name: str) -> None:
    target = stubbed / (name if name.endswith(".service") else _instance(name))
    assert verify(target) == ""


def test_verify_does_report_an_unknown_key_so_its_silence_means_something(stubbed: Path) -> None:
    beat = stubbed / "esiprov-beat.service"
    beat.write_text(beat.read_text().replace("[Service]\n", "[Service]\nRestartt=always\n"))
    assert "Unknown key 'Restartt'" in verify(beat)


def test_the_worker_unit_runs_the_queues_of_its_instance_with_the_instance_as_node_name() -> None:
    argv = unit("esiprov-worker@.service")["ExecStart"].split()
    assert argv[:4] == [f"{VENV_BIN}celery", "-A", "tasks", "worker"]
    assert argv[argv.index("-Q") + 1] == "%I" and argv[argv.index("-n") + 1] == "%i@%H"


def test_a_stopping_worker_gets_sigterm_and_more_time_than_celerys_soft_shutdown() -> None:
    worker = unit("esiprov-worker@.service")
    assert worker["KillSignal"] == "SIGTERM" and worker["KillMode"] in ("mixed", "control-group")
    assert int(worker["TimeoutStopSec"]) > celeryconfig.worker_soft_shutdown_timeout


@pytest.mark.parametrize("name", UNITS)
def test_every_unit_restarts_runs_the_installed_package_as_esiprov_and_is_hardened(name: str) -> None:
    service = unit(name)
    assert service["Restart"] in ("always", "on-failure") and int(service["RestartSec"]) > 0
    assert service["ExecStart"].startswith(VENV_BIN)
    assert (service["User"], service["EnvironmentFile"]) == ("esiprov", "/etc/esiprov/esiprov.env")
    assert {key: service.get(key) for key in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp")} == \
        {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes"}


def test_beat_keeps_its_schedule_in_its_state_directory_the_one_place_it_may_write() -> None:
    beat = unit("esiprov-beat.service")
    schedule = beat["ExecStart"].split()[beat["ExecStart"].split().index("-s") + 1]
    assert schedule.startswith(f"%S/{beat['StateDirectory']}/")


def test_the_example_environment_file_is_accepted_by_esiprov_with_an_etcd_cluster_of_three(tmp_path: Path) -> None:
    text = (DEPLOY / "esiprov.env.example").read_text()
    env = dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert {name for name in env if name.endswith("_FILE")} >= {
        "ESIPROV_BROKER_URL_FILE", "ESIPROV_HEAT_TOKEN_FILE", "ESIPROV_SNMP_COMMUNITIES_FILE",
        "ESIPROV_ETCD_PASSWORD_FILE"}
    secrets = {"ESIPROV_BROKER_URL_FILE": "rediss://:pw@redis.example:6379/0\n",
               "ESIPROV_HEAT_TOKEN_FILE": "token\n", "ESIPROV_SNMP_COMMUNITIES_FILE": "ESE_NODE_COMMUNITY=c\n",
               "ESIPROV_ETCD_PASSWORD_FILE": "pw\n"}
    for name, value in env.items():  # every file it names, made here, with content of the right form
        if re.fullmatch(r"/etc/esiprov/\S+", value):
            env[name] = str(tmp_path / Path(value).name)
            Path(env[name]).write_text(secrets.get(name, "-----BEGIN CERTIFICATE-----\n"))
    settings = from_env(env)
    assert len(settings.etcd_endpoints) == 3 and settings.etcd_tls is not None
    assert settings.heat_token == "token" and settings.etcd_password == "pw"
