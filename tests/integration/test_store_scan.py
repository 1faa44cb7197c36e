"""Store.scan_resources reads a /state-like family in short key ranges and gives exactly what Store.scan gives."""
from __future__ import annotations

import uuid
from typing import Iterator

import pytest

from esiprov.settings import from_env
from esiprov.store import Store

#: ids of every shape: UUIDs, names, digits, upper case, non-ASCII, and an empty one (the key ends in "/")
IDS = [str(uuid.uuid4()) for _ in range(5)] + ["xe-0/0/3", "0abc", "Zed", "zz", "é-port", "日本", ""]


@pytest.fixture
def etcd(etcd_endpoint: str) -> Iterator[Store]:
    store = Store.connect(from_env({"ESIPROV_ETCD_ENDPOINTS": etcd_endpoint}))
    yield store
    store.close()


@pytest.fixture
def prefix(etcd: Store) -> str:
    """A family of its own: three types with every kind of id, and a key right under the prefix."""
    prefix = f"/test-scan/{uuid.uuid4()}/"
    puts = {f"{prefix}{plural}/{rid}": {"n": n} for n, (plural, rid) in
            enumerate((plural, rid) for plural in ("ese_devices", "ese_physical_ports", "zebras") for rid in IDS)}
    etcd.commit(puts={**puts, f"{prefix}stray": {"n": -1}})
    return prefix


@pytest.mark.parametrize("page", [1, 2, 1000])
def test_scan_resources_gives_the_same_entries_in_the_same_order_as_scan(etcd: Store, prefix: str, page: int) -> None:
    expected = list(etcd.scan(prefix))
    assert len(expected) == 3 * len(IDS) + 1
    assert list(etcd.scan_resources(prefix, page=page)) == expected
    assert [e.key for e in etcd.scan_resources(prefix, keys_only=True, page=page)] == [e.key for e in expected]


def test_scan_resources_reads_one_snapshot_and_misses_what_is_written_meanwhile(etcd: Store, prefix: str) -> None:
    entries = etcd.scan_resources(prefix, page=1)
    first = next(entries)
    etcd.put(f"{prefix}zebras/zzz-late", {"n": 99})
    etcd.delete(f"{prefix}zebras/zz")
    rest = [entry.key for entry in entries]
    assert first.key == f"{prefix}ese_devices/"
    assert f"{prefix}zebras/zzz-late" not in rest
    assert f"{prefix}zebras/zz" in rest


def test_scan_resources_of_an_empty_family_gives_nothing(etcd: Store) -> None:
    assert list(etcd.scan_resources(f"/test-scan/{uuid.uuid4()}/")) == []
