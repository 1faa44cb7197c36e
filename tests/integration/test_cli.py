"""The operator's `esiprov` commands, run as an operator runs them, against the session's real services.

The failing resource is a test-only type, ``cli_lab_thing``, whose Heat template
uses ``Lab::Fail`` (the Heat plugin that always fails with its ``message``) until
the test replaces it with a working one, as an operator fixes a broken backend:
templates are read when a job runs, so the requeued job uses the fixed one. Only
this type's schema entries and template are written, and removed afterwards.
"""
from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import urllib.parse
import uuid
from typing import Any, Iterator

import pytest

from esiprov import keys, templates
from esiprov.devenv.apiserver import envelope, put_config, wait_for_state
from esiprov.devenv.etcd import EtcdServer
from esiprov.devenv.pipeline import LEADING
from esiprov.devenv.process import free_port, wait_until
from esiprov.settings import from_env
from esiprov.store import Store
from tests import seed
from tests.fixtures.services import SWITCH_A

pytestmark = pytest.mark.slow

LAB = "cli_lab_thing"
LAB_TEMPLATE = "cli_lab_thing_heat"
MESSAGE = "the Contrail API is down"
HOT = """heat_template_version: 2013-05-23
parameters:
  message: {type: string}
resources:
  thing:
    type: %s
outputs:
  id: {value: {get_resource: thing}}
"""
BROKEN = HOT % "Lab::Fail\n    properties: {message: {get_param: message}}"
FIXED = HOT % "OS::Heat::None"
#: a broker password no message may show
BROKER_SECRET = "broker-secret-0123"


def esiprov(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Run the console command as a separate process, as an operator would."""
    return subprocess.run([sys.executable, "-m", "esiprov.cli", *args], capture_output=True, text=True,
                          env={**env, "PATH": os.environ["PATH"]}, timeout=120)


def as_json(done: subprocess.CompletedProcess) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def one_line_error(done: subprocess.CompletedProcess, code: int) -> str:
    """The command ended with ``code`` and exactly one ``esiprov: ...`` line on stderr."""
    assert done.returncode == code, (done.stdout, done.stderr)
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("esiprov: "), done.stderr
    return done.stderr


def put_lab_template(store: Store, template_file: str) -> None:
    body = {"id": LAB_TEMPLATE, "handler": "heat_worker", "watch": [], "template_file": template_file,
            "parameter_mappings": {"message": "Pmessage"}}
    store.put(keys.template(LAB_TEMPLATE), envelope(body, 1))


def _with_lab(schema: dict[str, Any], add: bool) -> dict[str, Any]:
    """The schema with the lab type's template mappings added (or removed); every other entry as it was."""
    wanted = {"heat_worker": f"C{LAB_TEMPLATE}", "monitoring_worker": "Cese_device_monitoring"}
    mappings = {}
    for handler, by_type in schema["template_mappings"].items():
        by_type = {t: m for t, m in by_type.items() if t != LAB}
        mappings[handler] = {**by_type, LAB: wanted[handler]} if add and handler in wanted else by_type
    return {**schema, "template_mappings": mappings}


@pytest.fixture
def lab(broker_pipeline) -> Iterator[Store]:
    """The lab type in the pipeline's schema with its failing template; removed again afterwards.

    It runs every test that takes it on each broker (Redis, RabbitMQ): requeue sends through the broker.
    """
    store = broker_pipeline.store
    put_lab_template(store, BROKEN)
    store.update(keys.SCHEMA, lambda schema: _with_lab(schema, add=True))
    yield store
    store.update(keys.SCHEMA, lambda schema: _with_lab(schema, add=False))
    store.delete(keys.template(LAB_TEMPLATE))


def worker_state(store: Store, rid: str) -> str:
    return ((store.value(keys.state(LAB, rid)) or {}).get("state") or {}).get("worker_state", "")


def failed_thing(store: Store, version: int = 1, rid: str | None = None) -> tuple[str, str]:
    """A lab thing whose create failed in Heat: (resource id, the failed heat_worker job id)."""
    rid = rid or str(uuid.uuid4())
    put_config(store, LAB, {"id": rid, "tenant_id": seed.TENANT_ID, "message": MESSAGE,
                            "management_ip_address": SWITCH_A.ip}, version)
    state = wait_for_state(store, LAB, rid, version)
    assert state["state"]["worker_state"] == "CREATE_FAILED", state
    failed = [key[len(keys.FAILURES):] for key in (e.key for e in store.range(keys.FAILURES, keys_only=True)[0])
              if f":{LAB}:{rid}:{version}:" in key]
    assert len(failed) == 1 and failed[0].startswith("create:heat_worker:"), failed
    return rid, failed[0]


# --- the operator session of the README -----------------------------------------------
def test_a_port_that_failed_in_heat_is_found_inspected_requeued_and_completed(broker_pipeline, lab):
    env, store = broker_pipeline.env, lab
    rid, job_id = failed_thing(store)

    found = as_json(esiprov(env, "jobs", "list", "--failed", "--type", LAB, "--json"))
    assert all(set(row) == {"id", "resource", "type", "resource_id", "version", "action", "handler", "attempts",
                            "status", "celery_state", "age_seconds", "error", "worker"} for row in found)
    mine = [row for row in found if row["resource_id"] == rid]
    assert [(r["id"], r["handler"], r["action"], r["attempts"], r["status"], r["celery_state"]) for r in mine] == \
        [(job_id, "heat_worker", "create", 0, "failed", "FAILURE")]
    assert MESSAGE in mine[0]["error"] and mine[0]["age_seconds"] >= 0

    table = esiprov(env, "jobs", "list", "--type", LAB)
    assert table.returncode == 0 and re.search(r"^ID\s+RESOURCE\s+ACTION\s+HANDLER\s+ATTEMPTS\s+STATUS\s+AGE\s+ERROR",
                                               table.stdout, re.M)
    lines = [line.split() for line in table.stdout.splitlines() if rid in line]
    assert sorted((line[3], line[5]) for line in lines) == [("heat_worker", "failed"), ("monitoring_worker", "blocked")]

    shown = as_json(esiprov(env, "jobs", "show", job_id, "--json"))
    assert shown["job"] == store.value(keys.job(job_id))[1]
    assert (shown["status"], shown["celery_state"], shown["attempts"]) == ("failed", "FAILURE", 0)
    assert MESSAGE in shown["error"] and shown["failure"]["error"] == shown["error"]
    human = esiprov(env, "jobs", "show", job_id)
    assert human.returncode == 0 and re.search(r"^celery_state\s+FAILURE", human.stdout, re.M)

    state = as_json(esiprov(env, "state", "show", LAB, rid, "--json"))
    assert state["state"]["state"]["worker_state"] == "CREATE_FAILED"
    assert state["heat"]["stack_status"] == "CREATE_FAILED" and MESSAGE in state["heat"]["status_reason"]
    assert job_id in state["jobs"] and list(state["failures"]) == [job_id]

    put_lab_template(store, FIXED)  # the operator fixes what made Heat fail
    _, before = store.range(keys.JOBS, keys_only=True)
    requeued = esiprov(env, "jobs", "requeue", job_id)
    assert requeued.returncode == 0, requeued.stderr
    assert requeued.stdout.startswith(f"requeued {job_id} (attempt 1): sent {job_id}, create:monitoring_worker:")

    wait_until(lambda: worker_state(store, rid) == "CREATE_COMPLETED", 60, f"{LAB} {rid} completed")
    attempts = [c.entry.value[2] for c in store.history(keys.job(job_id), before + 1) if c.entry is not None]
    assert attempts == [1]
    assert store.get(keys.failure(job_id)) is None
    assert store.value(keys.monitoring(LAB, rid)) == {"version": 1, "switch": "UP"}
    done = as_json(esiprov(env, "state", "show", LAB, rid, "--json"))
    assert (done["heat"]["stack_status"], done["jobs"], done["workflow"]) == ("UPDATE_COMPLETE", [], None)
    side_by_side = esiprov(env, "state", "show", LAB, rid)
    for row in (r"^config\s+1\s+present", r"^state\s+1\s+CREATE_COMPLETED", r"^monitoring\s+1\s+switch: UP",
                r"^workflow\s+none", r"^stack \(etcd\)\s+UPDATE_COMPLETE", r"^stack \(Heat\)\s+UPDATE_COMPLETE"):
        assert re.search(row, side_by_side.stdout, re.M), (row, side_by_side.stdout)


# --- requeue refusals -----------------------------------------------------------------
def test_requeue_refuses_unknown_jobs_with_3_and_jobs_that_did_not_fail_or_whose_resource_is_busy_with_1(
        broker_pipeline, lab):
    env = broker_pipeline.env
    rid, job_id = failed_thing(lab)
    blocked = next(e.key[len(keys.JOBS):] for e in lab.range(keys.JOBS, keys_only=True)[0]
                   if f"create:monitoring_worker:{LAB}:{rid}:1:" in e.key)

    unknown = one_line_error(esiprov(env, "jobs", "requeue", "create:heat_worker:nope:1:x"), 3)
    assert "no job create:heat_worker:nope:1:x in /jobs/all/" in unknown
    not_failed = one_line_error(esiprov(env, "jobs", "requeue", blocked), 1)
    assert f"job {blocked} has not failed" in not_failed
    both = esiprov(env, "jobs", "requeue", "--json", "nope", blocked)
    assert both.returncode == 3
    assert [(r["job"], r["requeued"]) for r in json.loads(both.stdout)] == [("nope", False), (blocked, False)]

    lab.put(keys.workflow(LAB, rid), {"version": 1, "action": "modify", "jobs": []})
    try:
        busy = one_line_error(esiprov(env, "jobs", "requeue", job_id), 1)
    finally:
        lab.delete(keys.workflow(LAB, rid))
    assert f"{LAB} {rid} has a workflow in flight (modify of version 1)" in busy
    assert lab.value(keys.job(job_id))[2] == 0 and lab.get(keys.failure(job_id)) is not None


def test_requeue_of_an_old_version_is_refused_once_a_newer_version_has_a_state(broker_pipeline, lab):
    rid, old_job = failed_thing(lab)
    failed_thing(lab, version=2, rid=rid)
    refused = one_line_error(esiprov(broker_pipeline.env, "jobs", "requeue", old_job), 1)
    assert f"/state of {LAB} {rid} is at version 2 already; job {old_job} of version 1 is outdated" in refused


@pytest.mark.parametrize("broker", ["amqp"], indirect=True)
def test_requeue_through_a_rabbitmq_that_refuses_the_login_fails_in_one_line_and_changes_nothing(
        broker_pipeline, lab):
    rid, job_id = failed_thing(lab)
    url = urllib.parse.urlsplit(broker_pipeline.env["ESIPROV_BROKER_URL"])
    wrong = url._replace(netloc=f"{url.username}:{BROKER_SECRET}@{url.hostname}:{url.port}").geturl()
    error = one_line_error(esiprov({**broker_pipeline.env, "ESIPROV_BROKER_URL": wrong}, "jobs", "requeue", job_id), 1)
    assert error.startswith(f"esiprov: broker amqp://{url.username}:**@") and "ACCESS_REFUSED" in error, error
    assert BROKER_SECRET not in error
    assert lab.value(keys.job(job_id))[2] == 0 and lab.get(keys.failure(job_id)) is not None
    assert lab.get(keys.workflow(LAB, rid)) is None


def test_requeue_failed_with_no_failed_jobs_of_a_type_says_so(pipeline):
    done = esiprov(pipeline.env, "jobs", "requeue", "--failed", "--type", "no_such_type")
    assert (done.returncode, done.stdout) == (0, "no failed jobs\n")
    assert as_json(esiprov(pipeline.env, "jobs", "requeue", "--failed", "--type", "no_such_type", "--json")) == []


# --- listings and shows ---------------------------------------------------------------
def test_jobs_show_of_an_unknown_job_exits_3_and_names_celerys_state(broker_pipeline):
    error = one_line_error(esiprov(broker_pipeline.env, "jobs", "show", "create:heat_worker:nope:1:x"), 3)
    assert "no job create:heat_worker:nope:1:x in /jobs/all/" in error and "PENDING" in error


def test_templates_list_and_show_give_a_table_and_json(pipeline):
    env = pipeline.env
    listed = as_json(esiprov(env, "templates", "list", "--json"))
    assert all(set(row) == {"name", "handler", "version"} for row in listed)
    assert any(row["name"] == "ese_physical_port_new" and row["handler"] == "heat_worker" for row in listed)
    table = esiprov(env, "templates", "list").stdout
    assert re.search(r"^NAME\s+HANDLER\s+VERSION$", table, re.M)
    assert re.search(r"^ese_physical_port_monitoring\s+monitoring_worker\s+\d+", table, re.M)

    shipped = {t.id: t for t in templates.load_dir(templates.SHIPPED)[1]}
    assert as_json(esiprov(env, "templates", "show", "ese_physical_port_new", "--json")) == \
        shipped["ese_physical_port_new"].body()
    shown = esiprov(env, "templates", "show", "ese_physical_port_new").stdout
    assert re.search(r"^physical_device\s+Mese_device:ese_device_id:id$", shown, re.M)
    assert shown.endswith(shipped["ese_physical_port_new"].template_file)
    one_line_error(esiprov(env, "templates", "show", "nope"), 3)


def test_state_show_of_an_unknown_resource_exits_3(pipeline):
    one_line_error(esiprov(pipeline.env, "state", "show", LAB, "nope"), 3)


def test_resync_prints_one_summary_line_or_json_and_a_progress_bar_only_on_a_terminal(broker_pipeline):
    env = broker_pipeline.env
    plain = esiprov(env, "resync")
    # stderr carries only log lines about odd resources (e.g. a config older than its /state), no bar
    assert plain.returncode == 0 and "━" not in plain.stderr and "Traceback" not in plain.stderr
    assert re.fullmatch(r"resynced \d+ resources(: (\d+ [a-z ]+)(, \d+ [a-z ]+)*)?\n", plain.stdout), plain.stdout
    summary = as_json(esiprov(env, "resync", "--json"))
    assert set(summary) == {"resources", "outcomes"} and sum(summary["outcomes"].values()) == summary["resources"]

    controller, terminal = pty.openpty()
    with subprocess.Popen([sys.executable, "-m", "esiprov.cli", "resync"], stdout=subprocess.PIPE,
                          stderr=terminal, env={**env, "PATH": os.environ["PATH"], "COLUMNS": "100"},
                          text=True) as proc:
        os.close(terminal)
        out, _ = proc.communicate(timeout=120)
    screen = _read_all(controller)
    assert proc.returncode == 0 and out.startswith("resynced ")
    assert "resync" in screen and "━" in screen, screen


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the terminal's other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode(errors="replace")


# --- a private etcd: commands that must not touch the session's ------------------------
@pytest.fixture
def private_etcd(tmp_path) -> Iterator[tuple[Store, dict[str, str]]]:
    """An etcd no watcher acts on, and the env that points esiprov at it."""
    with EtcdServer(log_dir=tmp_path).start() as server:
        env = {"ESIPROV_ETCD_ENDPOINTS": server.endpoint}
        store = Store.connect(from_env(env))
        yield store, env
        store.close()


def test_templates_load_writes_every_shipped_template_and_the_schema_and_bumps_versions(private_etcd):
    store, env = private_etcd
    schema, shipped = templates.load_dir(templates.SHIPPED)
    first = esiprov(env, "templates", "load")
    assert first.returncode == 0
    assert first.stdout.startswith(f"loaded {len(shipped)} templates and the schema from {templates.SHIPPED}")
    assert esiprov(env, "templates", "load", str(templates.SHIPPED)).returncode == 0
    assert store.value(keys.SCHEMA) == schema.document()
    assert {r["version"] for r in as_json(esiprov(env, "templates", "list", "--json"))} == {2}
    one_line_error(esiprov(env, "templates", "load", "/nonexistent"), 1)


def test_watch_lists_config_then_stops_cleanly_on_sigterm(private_etcd, tmp_path):
    _, env = private_etcd
    log = tmp_path / "watch.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "esiprov.cli", "watch"], stdout=out, stderr=subprocess.STDOUT,
                                env={**env, "PATH": os.environ["PATH"]})
    try:
        wait_until(lambda: LEADING in log.read_text(), 30, "esiprov watch")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_state_show_says_in_one_line_when_heat_is_unreachable_and_no_heat_skips_it(private_etcd):
    store, env = private_etcd
    put_config(store, "ese_device", seed.device_body())
    heat_env = {**env, "ESIPROV_HEAT_URL": f"http://127.0.0.1:{free_port()}/v1/{{tenant_id}}",
                "ESIPROV_HEAT_TOKEN": "never-shown-token"}
    error = one_line_error(esiprov(heat_env, "state", "show", "ese_device", seed.DEVICE_ID), 1)
    assert error.startswith(f"esiprov: Heat: show stack ese_device_{seed.DEVICE_ID}:") and "never-shown" not in error
    skipped = as_json(esiprov(heat_env, "state", "show", "ese_device", seed.DEVICE_ID, "--no-heat", "--json"))
    assert skipped["heat"] is None and skipped["config"]["version"] == 1


@pytest.mark.parametrize("urls, shown", [
    ({"ESIPROV_BROKER_URL": f"redis://:{BROKER_SECRET}@127.0.0.1:{{port}}/0"}, "broker redis://:**@127.0.0.1:"),
    ({"ESIPROV_BROKER_URL": f"amqp://esiprov:{BROKER_SECRET}@127.0.0.1:{{port}}/esiprov",
      "ESIPROV_RESULT_BACKEND": f"redis://:{BROKER_SECRET}@127.0.0.1:{{port}}/0"},
     "broker amqp://esiprov:**@127.0.0.1:"),
], ids=["redis", "amqp"])
def test_commands_that_need_the_broker_say_in_one_line_when_it_is_unreachable_without_its_password(
        private_etcd, urls, shown):
    _, env = private_etcd
    port = free_port()
    unreachable = {**env, **{name: url.format(port=port) for name, url in urls.items()}}
    error = one_line_error(esiprov(unreachable, "jobs", "show", "x"), 1)
    assert error.startswith(f"esiprov: {shown}") and "unreachable" in error, error
    assert BROKER_SECRET not in error
