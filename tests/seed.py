"""The seed document (tests/data/seed.txt): every etcd record of one ese_physical_port create.

The tests read the contract from the recorded document itself (a verbatim copy), not from values retyped here.
"""
from __future__ import annotations

import json
import re
from typing import Any

from esiprov.devenv import demo
from tests.data import seed_text

#: the seed's device address, moved to loopback where the emulated switch answers
SEED_DEVICE_IP, LOCAL_DEVICE_IP = "10.161.0.34", demo.DEVICE_IP
DEVICE_ID, PORT_ID, TENANT_ID = demo.DEVICE["id"], demo.PORT["id"], demo.TENANT


def records() -> list[tuple[str, Any]]:
    """(key, value) of every record block of the seed, in document order, on loopback."""
    text = seed_text().replace(SEED_DEVICE_IP, LOCAL_DEVICE_IP)
    found = []
    for block in re.findall(r"```\n(.*?)```", text, re.S):
        key, _, value = block.partition("\n")
        found.append((key.strip(), json.loads(value)))
    return found


def record(prefix: str, index: int = 0) -> Any:
    return [value for key, value in records() if key.startswith(prefix)][index]


def device_body() -> dict[str, Any]:
    """The port's device, as an API server would store it (the seed shows only the port)."""
    return dict(demo.DEVICE)


def without_suffix(job_id: str) -> str:
    """A job id without its 5-character suffix (random in the reference system, a hash in esiprov)."""
    return job_id.rsplit(":", 1)[0]
