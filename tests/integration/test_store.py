"""etcd access at a data centre's scale: prefix reads larger than one gRPC answer may carry."""
from __future__ import annotations

import uuid
from typing import Iterator

import pytest

from esiprov.devenv.etcd import EtcdServer
from esiprov.settings import from_env
from esiprov.store import Store
from tests.fixtures.services import running

#: gRPC's default limit on one answer; a prefix holding more than this cannot be read in one range
GRPC_ANSWER_LIMIT = 4 * 1024 * 1024
#: etcd's default limit of operations in one transaction
TXN_OPS = 128


@pytest.fixture(scope="module")
def big_prefix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, str, int]]:
    """An etcd of its own holding 6 MB under one prefix: (client, prefix, number of keys)."""
    with running(EtcdServer(log_dir=tmp_path_factory.mktemp("store-etcd"))) as server:
        store = Store.connect(from_env({"ESIPROV_ETCD_ENDPOINTS": server.endpoint}))
        prefix, count, filler = "/config/v2.0/ese_physical_ports/", 12_000, "x" * 500
        for start in range(0, count, TXN_OPS):
            store.commit(puts={f"{prefix}{n:06d}": {"body": filler, "version": 1}
                               for n in range(start, min(count, start + TXN_OPS))})
        yield store, prefix, count
        store.close()


def test_a_range_larger_than_one_grpc_answer_returns_every_entry_at_one_revision(big_prefix):
    store, prefix, count = big_prefix
    entries, revision = store.range(prefix)
    assert sum(len(e.key) + len(str(e.value)) for e in entries) > GRPC_ANSWER_LIMIT
    assert [e.key for e in entries] == [f"{prefix}{n:06d}" for n in range(count)]
    assert all(e.value["version"] == 1 for e in entries)
    assert max(e.mod_revision for e in entries) <= revision


def test_a_range_reads_the_snapshot_of_its_start_even_when_keys_change_meanwhile(big_prefix):
    store, prefix, count = big_prefix
    scan = store.scan(prefix, page=100)
    first = next(scan)
    store.put(f"{prefix}{count - 1:06d}", {"body": "changed", "version": 2})
    store.put(f"{prefix}zzz-new", {"body": "new", "version": 1})
    rest = list(scan)
    assert first.key == f"{prefix}{0:06d}"
    assert len(rest) == count - 1, "a key written after the scan began is not in it"
    assert rest[-1].value["version"] == 1, "the scan reads the revision it started at"


def test_update_merges_into_what_the_caller_read_and_reads_again_only_if_it_changed_meanwhile(store: Store) -> None:
    key = f"/test/update/{uuid.uuid4().hex}"
    store.put(key, {"a": 1})
    read = store.get(key)
    assert store.update(key, lambda value: {**(value or {}), "b": 2}, read=read) == {"a": 1, "b": 2}
    store.put(key, {"a": 1, "b": 2, "c": 3})  # someone else wrote after ``read``
    assert store.update(key, lambda value: {**(value or {}), "d": 4}, read=read) == {"a": 1, "b": 2, "c": 3, "d": 4}
    assert store.update(f"{key}/absent", lambda value: {"new": value is None}, read=None) == {"new": True}
    store.commit(deletes=[key, f"{key}/absent"])
