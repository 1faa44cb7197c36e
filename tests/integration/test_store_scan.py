"""Store.scan reads in short key windows and gives exactly what one unpaged range read gives, whatever the keys look like."""
from __future__ import annotations

import uuid
from typing import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esiprov.settings import from_env
from esiprov.store import Store

#: ids of every shape: UUIDs, names, digits, upper case, non-ASCII, and an empty one (the key ends in "/")
IDS = [str(uuid.uuid4()) for _ in range(5)] + ["xe-0/0/3", "0abc", "Zed", "zz", "é-port", "日本", ""]
#: a page large enough that the reference read is one request for every family of these tests
WHOLE = 100_000
#: etcd's default limit of operations in one transaction
TXN_OPS = 128


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


def put_all(etcd: Store, entries: dict[str, object]) -> None:
    items = list(entries.items())
    for start in range(0, len(items), TXN_OPS):
        etcd.commit(puts=dict(items[start:start + TXN_OPS]))


@pytest.mark.parametrize("page", [1, 2, 1000])
def test_scan_resources_gives_the_same_entries_in_the_same_order_as_one_range_read(etcd: Store, prefix: str,
                                                                                     page: int) -> None:
    expected = list(etcd.scan(prefix, page=WHOLE))
    assert len(expected) == 3 * len(IDS) + 1
    assert list(etcd.scan_resources(prefix, page=page)) == expected
    assert [e.key for e in etcd.scan_resources(prefix, keys_only=True, page=page)] == [e.key for e in expected]
    assert list(etcd.scan(prefix, page=page)) == expected


def test_scan_resources_of_one_type_gives_only_that_type(etcd: Store, prefix: str) -> None:
    found = [e.key for e in etcd.scan_resources(prefix, keys_only=True, page=3, plural="ese_physical_ports")]
    assert found == sorted(f"{prefix}ese_physical_ports/{rid}" for rid in IDS)


@pytest.mark.parametrize("page", [7, 500])
def test_ids_sharing_a_long_prefix_are_each_read_once_in_order(etcd: Store, page: int) -> None:
    """Names such as port-000001 and UUIDs that all begin alike, beside a few keys far away in the key space."""
    prefix = f"/test-scan/{uuid.uuid4()}/"
    ids = [f"port-{n:06d}" for n in range(0, 3000, 3)] + [f"3f2a9c1e-0000-4000-8000-{uuid.uuid4().hex[:12]}"
                                                         for _ in range(1000)]
    far = [f"{prefix}a", f"{prefix}ese_physical_ports0", f"{prefix}\x7fend"]
    put_all(etcd, {**{f"{prefix}ese_physical_ports/{rid}": {"id": rid} for rid in ids}, **{key: {} for key in far}})
    assert [e.key for e in etcd.scan(prefix, keys_only=True, page=page)] == sorted(
        [f"{prefix}ese_physical_ports/{rid}" for rid in ids] + far)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=st.lists(st.text(st.characters(min_codepoint=1, max_codepoint=0x2FF), max_size=12), unique=True,
                    max_size=60),
       page=st.integers(min_value=1, max_value=9))
def test_any_set_of_keys_is_read_whole_in_order_at_any_page_size(etcd: Store, ids: list[str], page: int) -> None:
    prefix = f"/test-scan/{uuid.uuid4()}/"
    put_all(etcd, {f"{prefix}{rid}": {"id": rid} for rid in ids})
    assert [e.key for e in etcd.scan(prefix, keys_only=True, page=page)] == sorted(
        (f"{prefix}{rid}" for rid in ids), key=str.encode)


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
