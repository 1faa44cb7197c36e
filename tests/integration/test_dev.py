"""``make dev`` (python -m esiprov.devenv.dev): everything up, usable from its printed environment,
and every process it started gone after Ctrl-C."""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from esiprov.devenv.dev import READY
from esiprov.devenv.process import wait_until

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _descendants(pid: int) -> set[int]:
    """Every live process under ``pid``, read from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        parents[int(stat.parent.name)] = int(text.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _exported(lines: list[str]) -> dict[str, str]:
    words = [shlex.split(line)[1] for line in lines if line.startswith("export ")]
    return dict(word.split("=", 1) for word in words)


def test_make_dev_prints_an_environment_esiprov_works_with_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    with open(tmp_path / "dev.err", "w") as err:
        dev = subprocess.Popen([sys.executable, "-m", "esiprov.devenv.dev"], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=err, text=True, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(line.rstrip("\n") for line in dev.stdout or []))
    reader.start()
    try:
        wait_until(lambda: READY in lines or dev.poll() is not None, 240, "make dev's environment (see dev.err)")
        assert READY in lines, (tmp_path / "dev.err").read_text()
        env = {**os.environ, **_exported(lines)}
        assert {"ESIPROV_ETCD_ENDPOINTS", "ESIPROV_BROKER_URL", "ESIPROV_HEAT_URL"} <= set(env)
        listed = subprocess.run([sys.executable, "-m", "esiprov.cli", "templates", "list"], env=env,
                                capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert listed.returncode == 0 and "ese_physical_port_new" in listed.stdout, listed
        status = subprocess.run([sys.executable, "-m", "esiprov.cli", "status"], env=env,
                                capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert status.returncode == 0, status
        [metrics] = re.findall(r"metrics on (http://\S+/metrics)", "\n".join(lines))
        with urllib.request.urlopen(metrics, timeout=30) as answer:
            assert "esiprov_watcher_leader 1.0" in answer.read().decode()
        started = _descendants(dev.pid)
        assert len(started) >= 8, started  # etcd, Redis, Heat, snmpsim, worker, beat, watcher, Flower
        dev.send_signal(signal.SIGINT)
        assert dev.wait(120) == 0
        wait_until(lambda: not any(_alive(pid) for pid in started), 30, "every process make dev started, gone")
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGKILL)
        reader.join(10)
