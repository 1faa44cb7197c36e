"""etcd access: JSON documents, compare-and-put transactions, prefix reads with revision, watch.

All values esiprov reads and writes are JSON documents. Writes that must not
race (job_state merges, one workflow per resource, /state versions) go through
transactions that compare a key's mod_revision or its absence.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import grpc
import pyetcd
from pyetcd import events as etcd_events
from pyetcd import exceptions as etcd_exceptions

from esiprov.settings import Settings

#: seconds one etcd request may take before it counts as failed
REQUEST_TIMEOUT = 10.0
#: attempts of a read-modify-write before giving up on contention
CAS_ATTEMPTS = 50


class StoreError(RuntimeError):
    """etcd could not be reached or refused a request; the message says which endpoints."""


@dataclass(frozen=True)
class Entry:
    key: str
    value: Any
    mod_revision: int


@dataclass(frozen=True)
class Change:
    """One watch event: a put (entry set) or a delete (entry None) of ``key``."""

    key: str
    entry: Entry | None
    revision: int


def encode(value: Any) -> str:
    return json.dumps(value)


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _entry(raw: bytes, meta: Any) -> Entry:
    return Entry(meta.key.decode(), _decode(raw), meta.mod_revision)


class Compare:
    """Transaction guards, named for what they mean rather than etcd's compare targets."""

    @staticmethod
    def absent(key: str) -> Any:
        return pyetcd.transactions.Version(key) == 0

    @staticmethod
    def unchanged(key: str, mod_revision: int) -> Any:
        """The key still has ``mod_revision`` (0 meaning: still absent)."""
        return pyetcd.transactions.Mod(key) == mod_revision


class Store:
    def __init__(self, client: pyetcd.MultiEndpointEtcd3Client, where: str) -> None:
        self._client = client
        self.where = where

    @classmethod
    def connect(cls, settings: Settings) -> "Store":
        endpoints = [pyetcd.Endpoint(e.host, e.port, secure=False) for e in settings.etcd_endpoints]
        where = ",".join(map(str, settings.etcd_endpoints))
        client = pyetcd.MultiEndpointEtcd3Client(endpoints, timeout=REQUEST_TIMEOUT, failover=True)
        return cls(client, where)

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (etcd_exceptions.Etcd3Exception, grpc.RpcError) as exc:
            raise StoreError(f"etcd at {self.where}: {_describe(exc)}") from exc

    def ping(self) -> None:
        """Raise StoreError unless etcd answers."""
        self._call(self._client.status)

    def get(self, key: str) -> Entry | None:
        raw, meta = self._call(self._client.get, key)
        return None if raw is None else _entry(raw, meta)

    def get_at(self, key: str, revision: int) -> Entry | None:
        """The key as it was at ``revision`` (history; fails once compacted)."""
        raw, meta = self._call(self._client.get, key, revision=revision)
        return None if raw is None else _entry(raw, meta)

    def value(self, key: str, default: Any = None) -> Any:
        entry = self.get(key)
        return default if entry is None else entry.value

    def range(self, prefix: str, keys_only: bool = False) -> tuple[list[Entry], int]:
        """Every entry under ``prefix`` and the store revision they were read at."""
        response = self._call(self._client.get_prefix_response, prefix, keys_only=keys_only)
        entries = [Entry(kv.key.decode(), None if keys_only else _decode(kv.value), kv.mod_revision)
                   for kv in response.kvs]
        return entries, response.header.revision

    def put(self, key: str, value: Any) -> None:
        self._call(self._client.put, key, encode(value))

    def delete(self, key: str) -> None:
        self._call(self._client.delete, key)

    def commit(self, guards: Sequence[Any] = (), puts: Mapping[str, Any] | None = None,
               deletes: Sequence[str] = ()) -> bool:
        """Apply puts and deletes in one transaction if every guard holds; return whether it did."""
        ops = [pyetcd.transactions.Put(k, encode(v)) for k, v in (puts or {}).items()]
        ops += [pyetcd.transactions.Delete(k) for k in deletes]
        succeeded, _ = self._call(self._client.transaction, compare=list(guards), success=ops, failure=[])
        return succeeded

    def update(self, key: str, change: Callable[[Any], Any], extra: Mapping[str, Any] | None = None) -> Any:
        """Read-modify-write ``key`` (change(None) when absent) with a compare on its revision.

        ``extra`` puts land in the same transaction. Returns the new value.
        """
        for _ in range(CAS_ATTEMPTS):
            entry = self.get(key)
            new = change(None if entry is None else entry.value)
            guard = Compare.unchanged(key, entry.mod_revision) if entry else Compare.absent(key)
            if self.commit([guard], {key: new, **(extra or {})}):
                return new
        raise StoreError(f"etcd at {self.where}: {key} kept changing; gave up after {CAS_ATTEMPTS} tries")

    def watch(self, prefix: str, start_revision: int) -> tuple[Iterator[Change], Callable[[], None]]:
        """Changes under ``prefix`` from ``start_revision`` on, and a function that cancels the watch."""
        responses, cancel = self._call(self._client.watch_prefix_response, prefix,
                                       start_revision=start_revision)

        def changes() -> Iterator[Change]:
            for response in responses:
                for event in response.events:
                    yield _change(event)

        return changes(), cancel

    def history(self, prefix: str, start_revision: int) -> list[Change]:
        """Every change under ``prefix`` from ``start_revision`` up to now, from etcd's history.

        Transient documents (jobs, job_state) are gone once a workflow ends; their
        history stays readable until etcd compacts it.
        """
        _, now = self.range(prefix, keys_only=True)
        if now < start_revision:
            return []
        responses, cancel = self._call(self._client.watch_prefix_response, "/", start_revision=start_revision)
        found: list[Change] = []
        try:
            for response in responses:
                batch = [_change(e) for e in response.events]
                found += [c for c in batch if c.key.startswith(prefix)]
                if any(c.revision >= now for c in batch):
                    break
        finally:
            cancel()
        return found

    def close(self) -> None:
        self._client.close()


def _change(event: Any) -> Change:
    """A Change from one of pyetcd's (already wrapped) watch events."""
    key = event.key.decode()
    if isinstance(event, etcd_events.DeleteEvent):
        return Change(key, None, event.mod_revision)
    return Change(key, Entry(key, _decode(event.value), event.mod_revision), event.mod_revision)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "details"):
        return f"{exc.code().name}: {exc.details()}"
    return str(exc) or type(exc).__name__
