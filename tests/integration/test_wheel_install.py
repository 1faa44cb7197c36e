"""esiprov installed from its wheel, not run from the checkout: the seed's device and port created.

The wheel is built from a copy of the sources and installed, with its dependencies, into a fresh
venv; every esiprov command then runs from that venv in an empty directory, so nothing of the
checkout (its ``heat_templates/``, its ``celeryconfig.py``, its ``tasks``) can stand in for what
the wheel failed to carry.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Iterator

import pytest

from esiprov.devenv.apiserver import put_config, wait_for_state
from esiprov.devenv.etcd import EtcdServer
from esiprov.devenv.heatserver import HeatServer
from esiprov.devenv.local import esiprov_env
from esiprov.devenv.pipeline import LEADING
from esiprov.devenv.process import Service
from esiprov.devenv.redis import RedisServer
from esiprov.devenv.switches import Switches
from esiprov.settings import from_env
from esiprov.store import Store
from tests import seed
from tests.fixtures.services import COMMUNITY, running

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
#: what a wheel is not built from: venvs, caches, the tests and the benchmarks
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv*", ".devenv", "build", "dist", "*.egg-info", "__pycache__",
                                     ".*_cache", "tests", "bench")


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with esiprov's wheel (built from a copy of the checkout) and its dependencies."""
    work = tmp_path_factory.mktemp("wheel")
    sources = work / "src"
    shutil.copytree(ROOT, sources, ignore=NOT_SOURCES)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist"), str(sources)], work)
    wheel, = (work / "dist").glob("esiprov-*.whl")
    _run([sys.executable, "-m", "venv", str(work / "venv")], work)
    _run([str(work / "venv/bin/pip"), "install", "-q", str(wheel)], work)
    return work / "venv"


@pytest.fixture
def services(tmp_path: Path, heat_server: HeatServer, switches: Switches) -> Iterator[dict[str, str]]:
    """An etcd and a Redis of this test's own (the session's Heat and switches): its ESIPROV_* environment."""
    with ExitStack() as stack:
        etcd = stack.enter_context(running(EtcdServer(log_dir=tmp_path)))
        redis = stack.enter_context(running(RedisServer(log_dir=tmp_path)))
        # PYTHONPATH emptied: nothing may reach the checkout
        yield {**esiprov_env(etcd, redis, heat_server, switches, COMMUNITY), "PYTHONPATH": ""}


def _logged(service: Service, line: str) -> bool:
    return service.log_path.exists() and line in service.log_path.read_text(errors="replace")


def test_the_installed_modules_are_the_venvs_and_carry_the_shipped_templates(venv: Path, tmp_path: Path) -> None:
    code = ("import celeryconfig, esiprov, tasks; from esiprov import templates; "
            "print(esiprov.__file__, tasks.__file__, celeryconfig.__file__, templates.SHIPPED, sep='\\n')")
    files = _run([str(venv / "bin/python"), "-c", code], tmp_path, {"PYTHONPATH": ""}).stdout.split()
    assert all(Path(f).is_relative_to(venv) for f in files), files
    shipped = Path(files[-1])
    assert sorted(p.name for p in shipped.iterdir()) == sorted(p.name for p in (ROOT / "heat_templates").iterdir())


def test_the_wheel_alone_loads_the_shipped_templates_and_creates_the_seeds_device_and_port(
        venv: Path, services: dict[str, str], tmp_path: Path) -> None:
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = services
    loaded = _run([str(venv / "bin/esiprov"), "templates", "load"], cwd, env).stdout
    assert f"from {venv}" in loaded, loaded
    worker = Service("worker", [str(venv / "bin/celery"), "-A", "tasks", "worker", "-l", "info", "-n", "worker@%h",
                                "--without-gossip", "--without-mingle"], tmp_path, env, cwd=cwd)
    watcher = Service("watcher", [str(venv / "bin/esiprov"), "watch"], tmp_path, env, cwd=cwd)
    store = Store.connect(from_env(env))
    with worker.start(lambda: _logged(worker, "ready."), 60), watcher.start(lambda: _logged(watcher, LEADING), 60):
        try:
            put_config(store, "ese_device", seed.device_body())
            device = wait_for_state(store, "ese_device", seed.DEVICE_ID, 1, timeout=180)
            assert device["state"]["worker_state"] == "CREATE_COMPLETED", device
            config = seed.record("/config/")
            put_config(store, "ese_physical_port", config["body"], config["version"])
            port = wait_for_state(store, "ese_physical_port", seed.PORT_ID, 1, timeout=180)
            assert port["state"]["worker_state"] == "CREATE_COMPLETED", port
        finally:
            store.close()
