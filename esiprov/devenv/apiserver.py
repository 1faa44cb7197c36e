"""What the API server does to etcd, for demos and tests: write and delete resource configs.

Configs are written as the reference API server writes them: the body a JSON
string with sorted keys and compact separators inside the envelope.
"""
from __future__ import annotations

import json
import time
from typing import Any

from esiprov import keys
from esiprov.store import Store


def envelope(body: dict[str, Any], version: int, marked_for_deletion: bool = False) -> dict[str, Any]:
    return {"body": json.dumps(body, sort_keys=True, separators=(",", ":")),
            "marked_for_deletion": marked_for_deletion, "version": version}


def put_config(store: Store, rtype: str, body: dict[str, Any], version: int = 1,
               marked_for_deletion: bool = False) -> None:
    store.put(keys.config(rtype, body["id"]), envelope(body, version, marked_for_deletion))


def wait_for_state(store: Store, rtype: str, rid: str, version: int, timeout: float = 120.0) -> dict[str, Any]:
    """The /state of ``version`` (or newer) once it is written; TimeoutError naming what is missing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = store.value(keys.state(rtype, rid))
        if isinstance(state, dict) and state.get("version", 0) >= version:
            return state
        time.sleep(0.1)
    raise TimeoutError(f"no /state of {rtype} {rid} version {version} after {timeout:.0f} s")
