"""A template written into etcd runs in a sandbox: whoever can write templates cannot run code on the fleet.

The template is the shipped port monitoring template with one line that, rendered
by plain Jinja, reaches ``os.system`` through a Jinja global. It is written as an
API server writes it (no ``esiprov templates load`` check on the way), so only
the workers' sandbox stands between it and a shell.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from esiprov import keys, templates
from esiprov.devenv.apiserver import envelope, wait_for_state
from esiprov.devenv.pipeline import start_watcher, start_worker

pytestmark = pytest.mark.slow
MONITORING = "ese_physical_port_monitoring"


def escaping_template(marker: Path) -> dict:
    """The shipped port monitoring template, with a port name that would run ``touch marker``."""
    body = next(t for t in templates.load_dir(templates.SHIPPED)[1] if t.id == MONITORING).body()
    escape = "{{ cycler.__init__.__globals__.os.system('touch " + str(marker) + "') }}"
    return {**body, "template_file": body["template_file"].replace("{{ name | tojson }}", escape)}


@pytest.fixture
def marker() -> Iterator[Path]:
    """A file the escaping template would create; it must never exist."""
    path = Path(f"/tmp/esiprov-sandbox-{uuid.uuid4().hex}")
    yield path
    path.unlink(missing_ok=True)


def test_a_port_whose_monitoring_template_runs_a_command_fails_and_the_command_never_runs(cluster, marker):
    template = escaping_template(marker)
    assert marker.name in template["template_file"]
    cluster.store.put(keys.template(MONITORING), envelope(template, 2))

    with start_worker(cluster.env, cluster.logs), start_watcher(cluster.env, cluster.logs):
        device = cluster.devices(1)[0]
        port = cluster.ports(device, 1)[0]
        state = wait_for_state(cluster.store, "ese_physical_port", port["id"], 1, timeout=120)

    assert not marker.exists(), "the template ran a shell command in the worker"
    assert state["state"] == {"worker_state": "CREATE_FAILED"}
    assert state["error"] == (f"template {MONITORING}: the template tried something unsafe, which the sandbox "
                              "refused (access to attribute '__init__' of 'type' object is unsafe)")
    assert cluster.store.get(keys.target("ese_physical_port", port["id"])) is None, "no target was registered"


def test_templates_load_refuses_a_template_that_runs_a_command_and_writes_nothing(cluster, marker, tmp_path):
    directory = tmp_path / "templates"
    shutil.copytree(templates.SHIPPED, directory)
    (directory / f"{MONITORING}.yaml").write_text(yaml.safe_dump(escaping_template(marker)))
    before = cluster.store.get(keys.template(MONITORING))

    done = subprocess.run([sys.executable, "-m", "esiprov.cli", "templates", "load", str(directory)],
                          capture_output=True, text=True, check=False, env={**cluster.env, "PATH": os.environ["PATH"]}, timeout=60)

    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "esiprov: 1 problem in the templates; nothing was written:",
        (f"  template {MONITORING}: the template tried something unsafe, which the sandbox refused "
         "(access to attribute '__init__' of 'type' object is unsafe)")]
    assert not marker.exists(), "the load-time check ran the template's command"
    assert cluster.store.get(keys.template(MONITORING)).mod_revision == before.mod_revision
