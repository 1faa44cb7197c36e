"""``make demo``: the seed's ese_physical_port create, end to end on local services.

Starts etcd, Redis, real Heat, an emulated switch, a Celery worker and the
watcher; writes the seed's device and then its port to /config as the API
server would; prints every etcd record of the port create in the seed
document's order (transient ones read back from etcd's history); stops
everything it started.
"""
from __future__ import annotations

import json
import sys
import time
from typing import Any

from esiprov import keys
from esiprov.devenv.apiserver import put_config, wait_for_state
from esiprov.devenv.history import history
from esiprov.devenv.local import LocalDeployment
from esiprov.devenv.switches import Switch
from esiprov.store import Store

TENANT = "0b576f6f4cbf414f829cd12f008bf08f"
DEVICE_IP = "127.0.161.34"
DEVICE: dict[str, Any] = {"id": "9f05b260-26ca-46f7-98c3-ad88e411a989", "name": "QFX-NW02", "hostname": "QFX-NW02",
          "existing": "new", "type": "tor", "management_ip_address": DEVICE_IP, "public_ip_address": DEVICE_IP,
          "tenant_id": TENANT, "status": "PENDING_CREATE", "tags": {}, "description": ""}
PORT: dict[str, Any] = {"status": "PENDING_CREATE", "connected_port_owner": "mx_downlink", "name": "xe-0/0/4", "tags": {},
        "tenant_id": TENANT, "existing": "new", "connected_port_id": "",
        "ese_device_id": DEVICE["id"], "id": "5b2dee2e-7420-4cd4-b270-5081eb9eb371", "description": ""}
SWITCH = Switch(DEVICE_IP, "public-esi", ("xe-0/0/3", "xe-0/0/4", "xe-0/0/5"), name="ese-sw-01")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def show(point: int | None, key: str, value: Any) -> None:
    label = f"at the point of ({point})" if point else "for"
    print(f"\n### Stored data {label} in etcd\n\n```\n{key}\n{json.dumps(value, indent=4)}\n```")


def records(store: Store, since: int) -> None:
    """Print the port's records as the seed document shows them."""
    rtype, rid = "ese_physical_port", PORT["id"]
    config = store.value(keys.config(rtype, rid))
    show(1, keys.config(rtype, rid), {**config, "body": json.loads(config["body"])})
    for change in history(store, keys.JOBS, since):
        if change.entry is not None and rid in change.key:
            show(2, change.key, change.entry.value)
    show(3, keys.heat_stack(rtype, rid), store.value(keys.heat_stack(rtype, rid)))
    states = [c.entry.value for c in history(store, keys.job_state(rtype, rid), since) if c.entry]
    for point, value in zip((4, 5), states):
        show(point, keys.job_state(rtype, rid), value)
    show(6, keys.state(rtype, rid), store.value(keys.state(rtype, rid)))
    show(7, keys.monitoring(rtype, rid), store.value(keys.monitoring(rtype, rid)))


def main() -> int:
    started = time.monotonic()
    say("starting etcd, Redis, Heat, an emulated switch, a Celery worker and the watcher ...")
    with LocalDeployment([SWITCH]) as local:
        store = local.store
        say(f"  ready in {time.monotonic() - started:.1f} s (logs in {local.work_dir})")
        say("writing the ese_device and waiting for its /state ...")
        put_config(store, "ese_device", DEVICE)
        device = wait_for_state(store, "ese_device", DEVICE["id"], 1, timeout=180)
        say(f"  device: {device['state']['worker_state']} {device['error']}")
        _, revision = store.range(keys.CONFIG, keys_only=True)
        say("writing the seed's ese_physical_port and waiting for its /state ...")
        put_config(store, "ese_physical_port", PORT)
        port = wait_for_state(store, "ese_physical_port", PORT["id"], 1, timeout=180)
        say(f"  port: {port['state']['worker_state']} {port['error']}")
        print("# Stored data in etcd: Create Ese Physical Port (esiprov demo)")
        records(store, revision + 1)
        say("stopping everything ...")
    say(f"done in {time.monotonic() - started:.1f} s")
    return 0 if port["error"] == "" else 1


if __name__ == "__main__":
    sys.exit(main())
