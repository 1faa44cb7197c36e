"""Security on real services: etcd with TLS client certificates and auth, Redis with a password over
TLS, and no secret anywhere it can leak (logs, etcd, /state.error, task arguments in Flower)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import grpc
import pyetcd
import pytest

from esiprov import templates
from esiprov.devenv.apiserver import put_config, wait_for_state
from esiprov.devenv.bodies import device_body
from esiprov.devenv.certs import CertificateAuthority
from esiprov.devenv.etcd import EtcdServer
from esiprov.devenv.flower import Flower, start_flower, wait_for_events
from esiprov.devenv.heatserver import HeatServer
from esiprov.devenv.local import esiprov_env
from esiprov.devenv.pipeline import start_watcher, start_worker
from esiprov.devenv.process import Service
from esiprov.devenv.redis import RedisServer
from esiprov.devenv.switches import Switches
from esiprov.settings import from_env
from esiprov.store import Store, StoreError
from tests.fixtures.services import COMMUNITY, SWITCH_A, running

ROOT_PASSWORD = "root-etcd-pw-7f3a91"
ETCD_PASSWORD = "esiprov-etcd-pw-2c84e0"
REDIS_PASSWORD = "redis-pw-b5d6c2"
HEAT_TOKEN = "heat-token-9e1f47"
SECRETS = (ROOT_PASSWORD, ETCD_PASSWORD, REDIS_PASSWORD, HEAT_TOKEN, COMMUNITY)
USER = "esiprov"
#: every prefix esiprov reads or writes; its etcd role grants these and nothing else
PREFIXES = ("/config/", "/jobs/", "/esi-worker/", "/state/", "/monitoring/")
TENANT = "0b576f6f4cbf414f829cd12f008bf08f"
DEVICE = "ese_device"
DOOMED = templates.Template("ese_device_doomed", "heat_worker", """
heat_template_version: 2013-05-23
resources:
  doomed:
    type: Lab::Fail
    properties: {message: the switch is on fire}
""", {})


def leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def esiprov(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess:
    """The esiprov command with exactly ``env`` (no inherited ESIPROV_*)."""
    return subprocess.run([sys.executable, "-m", "esiprov.cli", *args], capture_output=True, text=True,
                          env={**env, "PATH": "/usr/bin:/bin"}, timeout=60)


def one_clear_line(done: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit 1 and a single ``esiprov: etcd at ...`` line naming every fragment, no traceback, no secret."""
    assert done.returncode == 1, done
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("esiprov: "), done.stderr
    assert all(fragment in done.stderr for fragment in fragments), done.stderr
    assert not leaks(done.stderr)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def rogue_ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("rogue-ca"), "rogue CA")


@pytest.fixture(scope="module")
def etcd(ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """etcd over TLS requiring client certificates, auth on; user esiprov limited to PREFIXES."""
    with running(EtcdServer(log_dir=tmp_path_factory.mktemp("etcd-tls"), tls=ca)) as server:
        server.enable_auth(ROOT_PASSWORD, USER, ETCD_PASSWORD, PREFIXES)
        yield server


@pytest.fixture(scope="module")
def etcd_env(etcd: EtcdServer, ca: CertificateAuthority) -> dict[str, str]:
    """What an operator sets for esiprov: its own client certificate, user and password."""
    return {**etcd.client_env(ca.issue("esiprov-client")),
            "ESIPROV_ETCD_USER": USER, "ESIPROV_ETCD_PASSWORD": ETCD_PASSWORD}


@pytest.fixture(scope="module")
def admin(etcd: EtcdServer) -> Iterator[Store]:
    """root, as the API server or an operator: sees every key."""
    store = Store.connect(from_env({**etcd.client_env(), "ESIPROV_ETCD_USER": "root",
                                    "ESIPROV_ETCD_PASSWORD": ROOT_PASSWORD}))
    yield store
    store.close()


def new_device(**changes: Any) -> dict[str, Any]:
    return device_body(SWITCH_A.ip, TENANT, **changes)


# --- etcd: TLS client certificates and auth -------------------------------------------------------
def test_esiprov_loads_templates_and_plans_over_tls_as_a_user_limited_to_its_prefixes(etcd_env, admin):
    loaded = esiprov(etcd_env, "templates", "load")
    assert loaded.returncode == 0, loaded.stderr
    device = new_device()
    put_config(admin, DEVICE, device)

    planned = esiprov(etcd_env, "plan", DEVICE, device["id"])

    assert planned.returncode == 0, planned.stderr
    assert [job["action"] for job in json.loads(planned.stdout)] == ["create", "create"]


def test_the_limited_user_can_touch_nothing_outside_esiprovs_prefixes(etcd_env):
    store = Store.connect(from_env(etcd_env))
    store.put("/state/probe", {"ok": True})
    for forbidden in (lambda: store.put("/other/key", 1), lambda: store.range("/")):
        with pytest.raises(StoreError, match="PERMISSION_DENIED"):
            forbidden()
    store.close()


def test_a_wrong_password_fails_in_one_clear_line(etcd_env):
    done = esiprov({**etcd_env, "ESIPROV_ETCD_PASSWORD": "not-the-password"}, "plan", DEVICE, "x")
    one_clear_line(done, "cannot authenticate as 'esiprov'", "authentication failed")


def test_a_client_certificate_from_another_ca_fails_in_one_clear_line(etcd_env, rogue_ca):
    stranger = rogue_ca.issue("esiprov-client")
    done = esiprov({**etcd_env, "ESIPROV_ETCD_CERT": str(stranger.cert), "ESIPROV_ETCD_KEY": str(stranger.key)},
                   "plan", DEVICE, "x")
    one_clear_line(done, "UNAVAILABLE", "the TLS handshake failed: check ESIPROV_ETCD_CA")


def test_a_server_certificate_esiprov_does_not_trust_fails_in_one_clear_line(etcd_env, rogue_ca):
    done = esiprov({**etcd_env, "ESIPROV_ETCD_CA": str(rogue_ca.cert_path)}, "templates", "list")
    one_clear_line(done, "CERTIFICATE_VERIFY_FAILED", "the TLS handshake failed")


def test_a_certificate_without_user_and_password_is_refused_with_what_to_set(etcd, ca):
    done = esiprov(etcd.client_env(ca.issue("nobody")), "templates", "list")
    one_clear_line(done, "PERMISSION_DENIED", "ESIPROV_ETCD_USER")


def test_a_missing_certificate_file_stops_the_command_naming_the_variable(etcd_env, tmp_path):
    done = esiprov({**etcd_env, "ESIPROV_ETCD_CERT": str(tmp_path / "gone.crt")}, "plan", DEVICE, "x")
    assert (done.returncode, done.stderr) == (1, f"esiprov: ESIPROV_ETCD_CERT: {tmp_path / 'gone.crt'} is not a file\n")


def test_an_expired_etcd_token_is_renewed_without_the_caller_noticing(tmp_path):
    with running(EtcdServer(["--auth-token-ttl", "1"], log_dir=tmp_path)) as server:
        server.enable_auth(ROOT_PASSWORD, USER, ETCD_PASSWORD, PREFIXES)
        login = {"user": USER, "password": ETCD_PASSWORD}
        raw = pyetcd.client(host="127.0.0.1", port=server.client_port, **login)  # keeps its first token
        store = Store.connect(from_env({**server.client_env(), "ESIPROV_ETCD_USER": USER,
                                        "ESIPROV_ETCD_PASSWORD": ETCD_PASSWORD}))
        store.put("/state/a", 1)
        time.sleep(2.5)

        with pytest.raises(grpc.RpcError) as lapsed:
            raw.get("/state/a")
        store.put("/state/b", 2)

        assert lapsed.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert (store.value("/state/a"), store.value("/state/b")) == (1, 2)
        store.close()
        raw.close()


# --- the whole pipeline on authenticated, encrypted services -------------------------------------
@dataclass
class SecureRun:
    admin: Store
    worker: Service
    watcher: Service
    flower: Flower
    doomed: dict[str, Any]
    states: list[dict[str, Any]]
    cli_output: str


def _lifecycle(admin: Store, device: dict[str, Any], doomed: dict[str, Any]) -> list[dict[str, Any]]:
    """Create, modify and delete ``device`` while ``doomed`` fails in Heat; every /state seen."""
    put_config(admin, DEVICE, device)
    put_config(admin, DEVICE, doomed)
    states = [wait_for_state(admin, DEVICE, device["id"], 1, timeout=60)]
    put_config(admin, DEVICE, {**device, "hostname": "qfx-renamed"}, version=2)
    states.append(wait_for_state(admin, DEVICE, device["id"], 2, timeout=60))
    put_config(admin, DEVICE, device, version=3, marked_for_deletion=True)
    states.append(wait_for_state(admin, DEVICE, device["id"], 3, timeout=60))
    states.append(wait_for_state(admin, DEVICE, doomed["id"], 1, timeout=60))
    return states


@pytest.fixture(scope="module")
def secure_run(etcd: EtcdServer, etcd_env: dict[str, str], admin: Store, ca: CertificateAuthority,
               heat_server: HeatServer, switches: Switches,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureRun]:
    """Flower, a worker and the watcher on the TLS+auth etcd and a TLS Redis with a password; one run."""
    logs = tmp_path_factory.mktemp("secure-run")
    with running(RedisServer(requirepass=REDIS_PASSWORD, log_dir=logs, tls=ca)) as redis:
        env = {**esiprov_env(etcd, redis, heat_server, switches, COMMUNITY), **etcd_env,
               "ESIPROV_HEAT_TOKEN": HEAT_TOKEN}
        assert esiprov(env, "templates", "load").returncode == 0
        schema, _ = templates.load_dir(templates.SHIPPED)
        templates.save(admin, schema, [DOOMED])
        with start_flower(env, logs) as flower, start_worker(env, logs) as worker, \
                start_watcher(env, logs) as watcher:
            wait_for_events(flower, worker)
            device, doomed = new_device(), new_device(existing="doomed")
            states = _lifecycle(admin, device, doomed)
            commands = (["jobs", "list", "--failed"], ["state", "show", DEVICE, doomed["id"]])
            cli = [esiprov(env, *args) for args in commands]
            yield SecureRun(admin, worker, watcher, flower, doomed, states,
                            "".join(done.stdout + done.stderr for done in cli))


def _log_lines(*services: Service) -> list[str]:
    return [line for service in services for line in Path(service.log_path).read_text(errors="replace").splitlines()]


@pytest.mark.slow
def test_create_modify_delete_and_a_heat_failure_reach_their_final_states(secure_run):
    assert [state["state"]["worker_state"] for state in secure_run.states] == [
        "CREATE_COMPLETED", "MODIFY_COMPLETED", "DELETE_COMPLETED", "CREATE_FAILED"]
    assert "the switch is on fire" in secure_run.states[-1]["error"]


@pytest.mark.slow
def test_the_workers_reach_redis_over_tls_with_the_password_masked_in_their_banner(secure_run):
    lines = _log_lines(secure_run.worker)
    assert any("rediss://:**@127.0.0.1" in line for line in lines), "\n".join(lines[:30])


@pytest.mark.slow
def test_no_secret_is_in_any_log_line_or_command_output(secure_run):
    lines = _log_lines(secure_run.worker, secure_run.watcher, secure_run.flower)
    assert any("succeeded" in line for line in lines)  # the logs are the run's, not empty
    assert [line for line in lines if leaks(line)] == []
    assert secure_run.doomed["id"] in secure_run.cli_output and not leaks(secure_run.cli_output)


@pytest.mark.slow
def test_no_secret_is_in_any_etcd_key_or_value(secure_run):
    entries, _ = secure_run.admin.range("/")
    assert any(entry.key.startswith("/state/") for entry in entries)
    assert [entry.key for entry in entries if leaks(entry.key + json.dumps(entry.value))] == []


@pytest.mark.slow
def test_no_secret_is_in_any_state_error(secure_run):
    errors = [entry.value.get("error", "") for entry in secure_run.admin.range("/state/")[0]
              if isinstance(entry.value, dict)]
    assert any("Lab::Fail" in error or "on fire" in error for error in errors)
    assert [error for error in errors if leaks(error)] == []


@pytest.mark.slow
def test_flower_shows_job_ids_as_the_only_task_arguments_and_no_secret(secure_run):
    tasks = secure_run.flower.tasks()
    workers = secure_run.flower.get("/api/workers", refresh=True)
    assert {task["name"] for task in tasks.values()} >= {"esiprov.heat_worker", "esiprov.finalize"}
    for task_id, task in tasks.items():
        if task["name"] != "esiprov.finalize":
            assert task["args"] in (repr((task_id,)), repr([task_id])), task
    assert not leaks(json.dumps(tasks)) and not leaks(json.dumps(workers))
