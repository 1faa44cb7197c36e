"""Config bodies of new devices and ports, as the API server writes them, for the tests and benchmarks.

The seed's fields (tests/data/seed.txt): a device is managed and reached at one
address, a port names its device and its interface. Ids are UUIDs unless the
caller needs its own (a benchmark's key prefix, a stable id).
"""
from __future__ import annotations

import uuid
from typing import Any


def device_body(address: str, tenant_id: str, rid: str | None = None, **changes: Any) -> dict[str, Any]:
    """A new ese_device managed at ``address`` in ``tenant_id``; ``changes`` override or add fields."""
    rid = rid or str(uuid.uuid4())
    name = changes.pop("name", f"dev-{rid[:8]}")
    return {"id": rid, "name": name, "hostname": name, "existing": "new", "type": "tor",
            "management_ip_address": address, "public_ip_address": address, "tenant_id": tenant_id, **changes}


def port_body(device: dict[str, Any], name: str, **changes: Any) -> dict[str, Any]:
    """A new ese_physical_port: interface ``name`` of ``device``, in the device's tenant."""
    return {"id": str(uuid.uuid4()), "name": name, "ese_device_id": device["id"], "existing": "new",
            "tenant_id": device["tenant_id"], "connected_port_id": "", "connected_port_owner": "mx_downlink",
            "status": "PENDING_CREATE", **changes}
