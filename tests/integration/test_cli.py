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
import threading
import time
import urllib.parse
import uuid
from typing import Any, Iterator

import pytest

from esiprov import keys, templates
from esiprov.devenv.apiserver import envelope, put_config, wait_for_state
from esiprov.devenv.etcd import EtcdServer
from esiprov.devenv.history import history
from esiprov.devenv.pipeline import LEADING
from esiprov.devenv.process import free_port, wait_until
from esiprov.documents import Job, JobEntry
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
                            "status", "celery_state", "age_seconds", "error", "worker", "waiting_for",
                            "waiting_seconds"} for row in found)
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
    attempts = [JobEntry.from_etcd(c.entry.value).attempts for c in history(store, keys.job(job_id), before + 1)
                if c.entry is not None]
    assert attempts == [1]
    assert store.get(keys.failure(job_id)) is None
    assert store.value(keys.monitoring(LAB, rid)) == {"version": 1, "switch": "UP"}
    done = as_json(esiprov(env, "state", "show", LAB, rid, "--json"))
    assert (done["heat"]["stack_status"], done["jobs"], done["workflow"]) == ("UPDATE_COMPLETE", [], None)
    side_by_side = esiprov(env, "state", "show", LAB, rid)
    for row in (r"^config\s+1\s+present", r"^state\s+1\s+CREATE_COMPLETED", r"^monitoring\s+1\s+switch: UP",
                r"^workflow\s+none", r"^stack \(etcd\)\s+UPDATE_COMPLETE", r"^stack \(Heat\)\s+UPDATE_COMPLETE"):
        assert re.search(row, side_by_side.stdout, re.M), (row, side_by_side.stdout)


def hold_puts(store: Store, rid: str, after: int) -> list[dict[str, Any]]:
    """The hold records written for the lab thing ``rid`` after revision ``after``, oldest first."""
    return [change.entry.value for change in history(store, keys.hold(LAB, rid), after + 1) if change.entry is not None]


def test_a_worker_holds_a_workflow_once_and_a_requeued_one_again(broker_pipeline, lab):
    """The worker writes a workflow's hold as it receives its first step; the later steps it published
    itself find it in place. A failure deletes the hold, and the requeued workflow, sent by the command
    to the same worker (which remembers having held it), is held again."""
    store, worker = lab, f"worker@{os.uname().nodename}"
    put_lab_template(store, FIXED)
    _, before = store.range(keys.HOLDS, keys_only=True)
    done = str(uuid.uuid4())
    put_config(store, LAB, {"id": done, "tenant_id": seed.TENANT_ID, "message": MESSAGE,
                            "management_ip_address": SWITCH_A.ip}, 1)
    assert wait_for_state(store, LAB, done, 1)["state"]["worker_state"] == "CREATE_COMPLETED"
    assert [(hold["worker"], hold["task"].split(":")[:2]) for hold in hold_puts(store, done, before)] == \
        [(worker, ["create", "heat_worker"])], "one hold for the heat step, the monitoring step and finalize"
    assert store.get(keys.hold(LAB, done)) is None, "finalize deleted it"

    put_lab_template(store, BROKEN)
    rid, job_id = failed_thing(store)
    assert store.get(keys.hold(LAB, rid)) is None, "the failure deleted it"
    put_lab_template(store, FIXED)
    _, requeued_at = store.range(keys.HOLDS, keys_only=True)
    requeued = esiprov(broker_pipeline.env, "jobs", "requeue", job_id)
    assert requeued.returncode == 0, requeued.stderr
    wait_until(lambda: worker_state(store, rid) == "CREATE_COMPLETED", 60, f"{LAB} {rid} completed")
    assert [(hold["worker"], hold["task"]) for hold in hold_puts(store, rid, requeued_at)] == [(worker, job_id)]


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


def test_state_show_shows_every_etcd_row_and_the_stack_as_unreachable_when_heat_is_down(private_etcd):
    store, env = private_etcd
    put_config(store, "ese_device", seed.device_body())
    heat_env = {**env, "ESIPROV_HEAT_URL": f"http://127.0.0.1:{free_port()}/v1/{{tenant_id}}",
                "ESIPROV_HEAT_TOKEN": "never-shown-token"}
    shown = esiprov(heat_env, "state", "show", "ese_device", seed.DEVICE_ID, "--json")
    assert shown.returncode == 0, shown.stderr
    view = as_json(shown)
    assert view["config"]["version"] == 1
    assert view["heat"]["stack_status"] == "unreachable"
    assert view["heat"]["status_reason"].startswith(f"unreachable: show stack ese_device_{seed.DEVICE_ID}:")
    table = esiprov(heat_env, "state", "show", "ese_device", seed.DEVICE_ID)
    assert table.returncode == 0 and "unreachable" in table.stdout
    assert "never-shown" not in shown.stdout + shown.stderr + table.stdout + table.stderr
    skipped = as_json(esiprov(heat_env, "state", "show", "ese_device", seed.DEVICE_ID, "--no-heat", "--json"))
    assert skipped["heat"] is None and skipped["config"]["version"] == 1


def test_state_show_of_a_config_that_is_not_a_json_object_shows_it_as_such(private_etcd):
    store, env = private_etcd
    store.put(keys.config("ese_device", "not-an-object"), ["a", "list"])
    shown = esiprov(env, "state", "show", "ese_device", "not-an-object")
    assert shown.returncode == 0, shown.stderr
    assert "not a JSON object" in shown.stdout and "Traceback" not in shown.stderr


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


# --- jobs requeue --wait ----------------------------------------------------------------
def test_requeue_wait_returns_when_the_state_is_final_saying_whether_it_failed_again_or_completed(
        broker_pipeline, lab):
    env = broker_pipeline.env
    rid, job_id = failed_thing(lab)

    timed_out = one_line_error(esiprov(env, "jobs", "requeue", "--wait", "--timeout", "0", job_id), 1)
    assert f"timed out after 0 s waiting for /state of {LAB} {rid} version 1" in timed_out
    wait_until(lambda: lab.get(keys.failure(job_id)) is not None, 60, "the job to fail again")
    wait_until(lambda: lab.get(keys.workflow(LAB, rid)) is None, 60, "the workflow to end")

    again = esiprov(env, "jobs", "requeue", "--wait", job_id)
    assert again.returncode == 1 and again.stdout.startswith(f"requeued {job_id} (attempt 2)")
    assert again.stderr.startswith(f"esiprov: {LAB} {rid} version 1 failed again: CREATE_FAILED: ")
    assert MESSAGE in again.stderr and len(again.stderr.splitlines()) == 1

    put_lab_template(lab, FIXED)
    done = as_json(esiprov(env, "jobs", "requeue", "--wait", "--json", job_id))
    assert [(r["job"], r["attempts"], r["worker_state"], r["completed"]) for r in done] == \
        [(job_id, 3, "CREATE_COMPLETED", True)]
    assert worker_state(lab, rid) == "CREATE_COMPLETED"


# --- state list -------------------------------------------------------------------------
def test_state_list_shows_heat_and_planning_failures_and_takes_the_plural_type(broker_pipeline, lab):
    env, store = broker_pipeline.env, lab
    rid, _ = failed_thing(store)
    port = {"id": str(uuid.uuid4()), "ese_device_id": seed.DEVICE_ID, "tenant_id": seed.TENANT_ID}  # no name
    put_config(store, "ese_physical_port", port)
    assert wait_for_state(store, "ese_physical_port", port["id"], 1)["state"]["worker_state"] == "CREATE_FAILED"

    failed = {(r["resource_type"], r["resource_id"]): r for r in as_json(esiprov(env, "state", "list", "--failed",
                                                                                 "--json"))}
    assert all(r["worker_state"].endswith("_FAILED") for r in failed.values())
    assert MESSAGE in failed[LAB, rid]["error"] and failed[LAB, rid]["version"] == 1
    planning = failed["ese_physical_port", port["id"]]
    assert (planning["version"], planning["state_version"], planning["worker_state"]) == (1, 1, "CREATE_FAILED")
    assert "field 'name' is missing" in planning["error"]

    mine = as_json(esiprov(env, "state", "list", "--type", f"{LAB}s", "--json"))
    assert {r["resource_type"] for r in mine} == {LAB} and rid in {r["resource_id"] for r in mine}
    table = esiprov(env, "state", "list", "--failed", "--type", "ese_physical_ports")
    assert table.returncode == 0
    assert re.search(r"^TYPE\s+ID\s+CONFIG\s+STATE\s+WORKER_STATE\s+MONITORING\s+ERROR$", table.stdout, re.M)
    assert re.search(rf"^ese_physical_port\s+{port['id']}\s+1\s+1\s+CREATE_FAILED\s+parameter physical_port_name",
                     table.stdout, re.M), table.stdout


def test_state_list_reads_a_fleet_in_pages_in_key_order_with_configs_and_states_merged(private_etcd):
    store, env = private_etcd
    ids = [f"{n:05d}" for n in range(1200)]  # more than two pages of resources.PAGE
    for batch in range(0, len(ids), 50):  # etcd takes at most 128 operations per transaction
        puts = {keys.config("ese_device", rid): envelope({"id": rid}, 2) for rid in ids[batch:batch + 50]}
        puts.update({keys.state("ese_device", rid): {"version": 1, "state": {"worker_state": "CREATE_COMPLETED"},
                                                     "error": ""} for rid in ids[batch:batch + 50] if rid != "00007"})
        store.commit(puts=puts)
    store.put(keys.state("ese_device", "gone"), {"version": 3, "state": {"worker_state": "DELETE_COMPLETED"}})
    store.put(keys.state("location", "l1"), {"version": 1, "state": {"worker_state": "CREATE_FAILED"}, "error": "x"})
    store.put(keys.monitoring("ese_device", "00042"), {"version": 1, "switch": "DOWN"})

    rows = as_json(esiprov(env, "state", "list", "--json"))
    assert [(r["resource_type"], r["resource_id"]) for r in rows] == \
        [("ese_device", rid) for rid in ids] + [("ese_device", "gone"), ("location", "l1")]
    by_id = {r["resource_id"]: r for r in rows}
    assert (by_id["00007"]["version"], by_id["00007"]["state_version"], by_id["00007"]["worker_state"]) == (2, None, "")
    assert (by_id["gone"]["version"], by_id["gone"]["state_version"]) == (None, 3)
    assert by_id["00042"]["monitoring"] == {"switch": "DOWN"}
    assert [r["resource_id"] for r in as_json(esiprov(env, "state", "list", "--failed", "--json"))] == ["l1"]
    assert len(as_json(esiprov(env, "state", "list", "--type", "ese_devices", "--json"))) == 1201
    assert esiprov(env, "state", "list", "--type", "nothing").stdout == "no resources\n"


# --- following changes ------------------------------------------------------------------
class Follower:
    """A running ``esiprov ... --watch --json``: the JSON documents it printed so far, one per line."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "esiprov.cli", *args, "--watch", "--json"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**env, "PATH": os.environ["PATH"]})
        self.documents: list[Any] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.documents.append(json.loads(line))

    def shows(self, check: Any) -> bool:
        return any(check(document) for document in list(self.documents))

    def interrupt(self) -> subprocess.CompletedProcess:
        """Ctrl-C, as an operator ends it."""
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(30)
        self._reader.join(10)
        return subprocess.CompletedProcess(self.proc.args, code, "", self.proc.stderr.read())


def test_state_show_watch_shows_the_resource_again_as_soon_as_its_config_changes(private_etcd):
    store, env = private_etcd
    put_config(store, "ese_device", seed.device_body())
    follower = Follower(env, "state", "show", "--no-heat", "ese_devices", seed.DEVICE_ID)
    try:
        wait_until(lambda: follower.shows(lambda view: view["config"]["version"] == 1), 30, "the first view")
        put_config(store, "ese_device", seed.device_body(), version=2)
        # well within follow.REFRESH: the change itself brought the new view
        wait_until(lambda: follower.shows(lambda view: view["config"]["version"] == 2), 5, "the view of version 2")
    finally:
        ended = follower.interrupt()
    assert ended.returncode == 0 and ended.stderr == ""


# --- jobs waiting, on a private etcd: the records as a worker waiting for a device leaves them --------
DEVICE_RID = "d0d0d0d0-1d2e-4f5a-8b9c-0123456789ab"
PORT_RID = "c0ffee00-1d2e-4f5a-8b9c-0123456789ab"


def _job(handler: str, rtype: str, rid: str, dependency: list[str]) -> Job:
    return Job(id=f"create:{handler}:{rtype}:{rid}:1:xfqzo", action="create", handler=handler, resource_type=rtype,
               resource_id=rid, version=1, job_name=f"{rtype}:{rid}:1", is_first=True, is_last=False,
               on_failure="fail", params=[], resource_input={}, dependency=dependency)


@pytest.fixture
def waiting_port(private_etcd, redis_server) -> Iterator[tuple[Store, dict[str, str], Job, Job]]:
    """A port's job waiting for its device's, sent 90 s ago; Celery (an empty result database) knows neither."""
    store, env = private_etcd
    device = _job("monitoring_worker", "ese_device", DEVICE_RID, [])
    port = _job("monitoring_worker", "ese_physical_port", PORT_RID, [device.id])
    store.commit(puts={keys.job(job.id): [job.handler, job.document(), 0] for job in (device, port)})
    store.put(keys.workflow("ese_physical_port", PORT_RID),
              {"version": 1, "action": "create", "jobs": [port.id], "sent_at": time.time() - 90})
    yield store, {**env, "ESIPROV_BROKER_URL": redis_server.db_url(7)}, device, port


def test_a_job_waiting_for_a_referenced_resources_job_says_which_and_since_when(waiting_port):
    _, env, device, port = waiting_port
    rows = {row["id"]: row for row in as_json(esiprov(env, "jobs", "list", "--json"))}
    assert (rows[port.id]["status"], rows[port.id]["waiting_for"]) == ("waiting", [device.id])
    assert 90 <= rows[port.id]["waiting_seconds"] < 150
    assert (rows[device.id]["status"], rows[device.id]["waiting_for"]) == ("pending", [])
    shown = as_json(esiprov(env, "jobs", "show", port.id, "--json"))
    assert (shown["status"], shown["waiting_for"]) == ("waiting", [device.id])
    human = esiprov(env, "jobs", "show", port.id).stdout
    assert re.search(rf"^waiting for\s+{re.escape(device.id)} for 1m$", human, re.M), human


def test_jobs_list_on_a_100_column_terminal_keeps_every_job_id_whole(waiting_port):
    _, env, device, port = waiting_port
    controller, terminal = pty.openpty()
    with subprocess.Popen([sys.executable, "-m", "esiprov.cli", "jobs", "list"], stdout=terminal,
                          stderr=subprocess.PIPE, env={**env, "PATH": os.environ["PATH"], "COLUMNS": "100"},
                          text=True) as proc:
        os.close(terminal)
        _, err = proc.communicate(timeout=120)
    screen = re.sub(r"\x1b\[[0-9;]*m", "", _read_all(controller))  # without colour codes
    assert proc.returncode == 0, err
    lines = screen.splitlines()
    assert all(len(line) <= 100 for line in lines), screen
    assert any(port.id in line for line in lines) and any(device.id in line for line in lines), screen
    assert re.search(r"^ID\s+STATUS", screen, re.M), screen


def test_jobs_list_watch_shows_a_new_job_as_soon_as_it_is_written(waiting_port):
    store, env, device, port = waiting_port
    follower = Follower(env, "jobs", "list")
    try:
        wait_until(lambda: follower.shows(lambda rows: {r["id"] for r in rows} == {device.id, port.id}), 30,
                   "the first listing")
        store.delete(keys.job(device.id))  # the device's workflow ended
        wait_until(lambda: follower.shows(lambda rows: [(r["id"], r["status"]) for r in rows] == [
            (port.id, "pending")]), 5, "the listing without the device's job")
    finally:
        ended = follower.interrupt()
    assert ended.returncode == 0 and ended.stderr == ""


# --- status -----------------------------------------------------------------------------
def test_status_of_a_running_pipeline_is_all_up(broker_pipeline):
    env = broker_pipeline.env
    report = as_json(esiprov(env, "status", "--json"))
    assert report["problems"] == [] and all(e["ok"] for e in report["etcd"])
    assert report["leader"]["holder"] and report["leader"]["heartbeat_age_seconds"] < 30
    assert set(report["queues"]) == {"heat_worker", "monitoring_worker", "finalize", "poller"}
    assert all(q["workers"] and q["waiting"] >= 0 for q in report["queues"].values())
    assert report["broker"]["error"] is None and BROKER_SECRET not in json.dumps(report)
    assert set(report["fleet"]) == {"failed_jobs", "workflows_in_flight", "oldest_workflow_age_seconds", "unsent",
                                    "holds", "holding_workers"}
    screen = esiprov(env, "status")
    assert screen.returncode == 0 and screen.stdout.splitlines()[-1] == "all up", screen.stdout
    assert re.search(r"^watcher\s+\S+ leads, heartbeat \d+ s ago$", screen.stdout, re.M)
    assert re.search(r"^heat_worker\s+\d+\s+\S+@", screen.stdout, re.M)


def test_status_exits_1_naming_every_part_that_is_down(private_etcd):
    _, env = private_etcd
    dead = f"127.0.0.1:{free_port()}"
    down = {**env, "ESIPROV_ETCD_ENDPOINTS": f"{env['ESIPROV_ETCD_ENDPOINTS']},{dead}",
            "ESIPROV_BROKER_URL": f"redis://:{BROKER_SECRET}@127.0.0.1:{free_port()}/0"}
    done = esiprov(down, "status")
    error = one_line_error(done, 1)
    assert error.startswith("esiprov: down: ")
    assert f"etcd {dead} does not answer" in error and "no watcher leads" in error
    assert "broker redis://:**@127.0.0.1:" in error and BROKER_SECRET not in error + done.stdout
    assert re.search(rf"^etcd\s+{env['ESIPROV_ETCD_ENDPOINTS']} ok, {dead} DOWN$", done.stdout, re.M), done.stdout
    assert "problems:" in done.stdout
