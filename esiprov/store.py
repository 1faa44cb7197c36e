"""etcd access: JSON documents, compare-and-put transactions, prefix reads with revision, watch.

All values esiprov reads and writes are JSON documents. Writes that must not
race (job_state merges, one workflow per resource, /state versions) go through
transactions that compare a key's mod_revision or its absence.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

# Before gRPC loads (an operator's own value wins): its C core would print TLS failures on stderr
# itself; StoreError carries them, in one line.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import grpc  # noqa: E402
import pyetcd  # noqa: E402
from pyetcd import etcdrpc  # noqa: E402
from pyetcd import events as etcd_events  # noqa: E402
from pyetcd import exceptions as etcd_exceptions  # noqa: E402

from esiprov import keys  # noqa: E402
from esiprov.errors import Transient  # noqa: E402
from esiprov.settings import Settings  # noqa: E402

#: seconds one etcd request may take before it counts as failed
REQUEST_TIMEOUT = 10.0
#: seconds a failed endpoint is skipped before it is tried again (pyetcd's default, 300 s, would
#: leave a single-endpoint client refusing every request for five minutes after an etcd restart)
ENDPOINT_RETRY = 1.0
#: attempts of a read-modify-write before giving up on contention
CAS_ATTEMPTS = 50
#: keys per request of a scan
SCAN_PAGE = 500


class StoreError(Transient, RuntimeError):
    """etcd could not be reached or refused a request; the message says which endpoints."""


@dataclass(frozen=True)
class Entry:
    key: str
    value: Any
    mod_revision: int


class _Unread:
    """``Store.update``'s ``read`` when the caller has read nothing: the first attempt reads."""


UNREAD = _Unread()


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

    @staticmethod
    def as_read(key: str, entry: Entry | None) -> Any:
        """The key is still as it was read: ``entry``, or absent when the read found nothing."""
        return Compare.unchanged(key, entry.mod_revision) if entry else Compare.absent(key)


def etcd_client(settings: Settings) -> pyetcd.MultiEndpointEtcd3Client:
    """A client of ``settings.etcd_endpoints`` over TLS when configured; it has not dialled yet."""
    tls = settings.etcd_tls
    creds = None if tls is None else pyetcd.MultiEndpointEtcd3Client.get_secure_creds(
        *(str(path) if path else None for path in (tls.ca, tls.key, tls.cert)))
    endpoints = [pyetcd.Endpoint(e.host, e.port, secure=creds is not None, creds=creds, time_retry=ENDPOINT_RETRY)
                 for e in settings.etcd_endpoints]
    return pyetcd.MultiEndpointEtcd3Client(endpoints, timeout=REQUEST_TIMEOUT, failover=True)


class Store:
    """etcd for esiprov; with a user and password it authenticates on first use.

    Authenticating lazily keeps ``connect`` free of network calls (a worker
    connects inside a task, where an unreachable etcd must be a retryable
    StoreError from the first request, not from the constructor), and lets an
    expired token (etcd's simple tokens lapse after --auth-token-ttl idle
    seconds, JWTs after their TTL) be replaced transparently.
    """

    def __init__(self, client: pyetcd.MultiEndpointEtcd3Client, where: str,
                 login: tuple[str, str] | None = None) -> None:
        self._client = client
        self.where = where
        self._login = login
        self._token: str | None = None
        self._auth_lock = threading.Lock()

    @classmethod
    def connect(cls, settings: Settings) -> "Store":
        where = ",".join(map(str, settings.etcd_endpoints))
        return cls(etcd_client(settings), where, settings.etcd_login)

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        login = self._login
        try:
            token = self._token
            if login and token is None:
                token = self._authenticate(login, None)
            try:
                return fn(*args, **kwargs)
            except grpc.RpcError as exc:
                if not (login and exc.code() == grpc.StatusCode.UNAUTHENTICATED):
                    raise
            self._authenticate(login, token)  # the token expired: a new one, and the request once more
            return fn(*args, **kwargs)
        except (etcd_exceptions.Etcd3Exception, grpc.RpcError) as exc:
            raise StoreError(f"etcd at {self.where}: {_describe(exc)}") from exc

    def _authenticate(self, login: tuple[str, str], stale: str | None) -> str:
        """A token in place of ``stale`` (unless another thread got one already); the new token."""
        user, password = login
        client = self._client
        with self._auth_lock:
            if self._token is not None and self._token != stale:
                return self._token
            try:
                try:
                    answer = client.authstub.Authenticate(
                        etcdrpc.AuthenticateRequest(name=user, password=password), REQUEST_TIMEOUT)
                except grpc.RpcError as exc:
                    client._manage_grpc_errors(exc)  # as pyetcd does for its calls: fail over next time
                    raise
            except (etcd_exceptions.Etcd3Exception, grpc.RpcError) as exc:
                raise StoreError(f"etcd at {self.where}: cannot authenticate as {user!r}: "
                                 f"{_describe(exc)}") from None
            # Metadata only: pyetcd's call credentials would be refused on a plain channel.
            client.metadata = (("token", answer.token),)
            client._clear_old_stubs()  # a cached watch stream would keep the old token
            self._token = answer.token
            return answer.token

    def ping(self) -> None:
        """Raise StoreError unless etcd answers."""
        self._call(self._client.status)

    def get(self, key: str) -> Entry | None:
        raw, meta = self._call(self._client.get, key)
        return None if raw is None else _entry(raw, meta)

    def get_many(self, keys: Sequence[str]) -> list[Entry | None]:
        """Several keys in one round trip, read at one revision (a transaction of reads)."""
        _, found = self._call(self._client.transaction, compare=[],
                              success=[pyetcd.transactions.Get(key) for key in keys], failure=[])
        return [_entry(*kvs[0]) if kvs else None for kvs in found]

    def value(self, key: str, default: Any = None) -> Any:
        entry = self.get(key)
        return default if entry is None else entry.value

    def range(self, prefix: str, keys_only: bool = False) -> tuple[list[Entry], int]:
        """Every entry under ``prefix`` and the store revision they were read at.

        Read in pages (``scan``): one answer for a whole prefix would exceed gRPC's 4 MB message
        limit past some 10,000 configs.
        """
        revision = self.revision(prefix)
        return list(self.scan(prefix, keys_only=keys_only, revision=revision)), revision

    def scan(self, start: str, end: str | None = None, keys_only: bool = False,
             page: int = SCAN_PAGE, revision: int | None = None) -> Iterator[Entry]:
        """Entries from ``start`` up to ``end`` (exclusive; default: every key with prefix ``start``) in key order.

        Read ``page`` keys per request, every request at one revision (``revision``, else the first
        request's): memory stays flat however many keys there are, and the whole scan is one
        consistent snapshot.

        Each request asks for a short window of the key space, not for the rest of the range: for
        every request etcd walks its index from the request's first key to its range end (3.4 to
        collect it, 3.5 to count it), so paging through one range of n keys costs n²/page steps
        (12 s for 100,000 keys here). Windows are sized from what the previous answers held
        (``_Windows``), so each walks about a page of keys whatever the keys look like: UUIDs,
        names sharing a long prefix ("port-000001"...), several types under one prefix.
        """
        end_key = end.encode() if end is not None else pyetcd.utils.prefix_range_end(start.encode())
        windows = _Windows(start.encode(), end_key, page)
        while (window := windows.next()) is not None:
            low, high = window
            response = self._call(self._client.get_range_response, low, high, limit=page,
                                  revision=revision, keys_only=keys_only)
            revision = revision or response.header.revision
            for kv in response.kvs:
                yield Entry(kv.key.decode(), None if keys_only else _decode(kv.value), kv.mod_revision)
            windows.answered([kv.key for kv in response.kvs], response.count, response.more)

    def revision(self, prefix: str = keys.WORKER) -> int:
        """etcd's current revision, from a count under ``prefix`` (nothing is transferred; esiprov's etcd
        role may read only its own prefixes, so the default is esiprov's own)."""
        return self._call(self._client.get_prefix_response, prefix, count_only=True).header.revision

    def scan_resources(self, prefix: str, keys_only: bool = False, page: int = SCAN_PAGE,
                       plural: str | None = None) -> Iterator[Entry]:
        """What ``scan(prefix)`` gives for a ``<prefix><plural>/<id>`` family (/state/v2.0/, ...), of the type
        ``plural`` alone if given. One snapshot, read in short windows like every scan."""
        return self.scan(prefix if plural is None else f"{prefix}{plural}/", keys_only=keys_only, page=page)

    def count(self, prefix: str) -> int:
        """How many keys start with ``prefix`` (etcd counts them; nothing is transferred)."""
        return self._call(self._client.get_prefix_response, prefix, count_only=True).count

    def put(self, key: str, value: Any) -> None:
        self._call(self._client.put, key, encode(value))

    def delete(self, key: str) -> None:
        self._call(self._client.delete, key)

    def commit(self, guards: Sequence[Any] = (), puts: Mapping[str, Any] | None = None,
               deletes: Sequence[str] = (), lease: int | None = None) -> bool:
        """Apply puts (attached to ``lease``, if given) and deletes in one transaction if every guard
        holds; return whether it did."""
        ops = [pyetcd.transactions.Put(k, encode(v), lease=lease) for k, v in (puts or {}).items()]
        ops += [pyetcd.transactions.Delete(k) for k in deletes]
        succeeded, _ = self._call(self._client.transaction, compare=list(guards), success=ops, failure=[])
        return succeeded

    def grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds: keys put with it vanish when it is not refreshed."""
        return self._call(self._client.lease, ttl).id

    def refresh(self, lease: int) -> bool:
        """Keep ``lease`` alive; False when it has already expired."""
        responses = self._call(lambda: list(self._client.refresh_lease(lease)))
        return bool(responses) and responses[-1].TTL > 0

    def revoke(self, lease: int) -> None:
        """End ``lease`` now, deleting its keys."""
        self._call(self._client.revoke_lease, lease)

    def on_changes(self, prefix: str, start_revision: int, callback: Callable[[Change], None]) -> Callable[[], None]:
        """Call ``callback`` for every change under ``prefix`` from ``start_revision`` on (on the client's
        one watch stream, in its thread); returns cancel. A broken stream calls nothing: whoever
        watches /config on the same stream sees the break and starts again."""
        def deliver(response: Any) -> None:
            if not isinstance(response, Exception):
                for event in response.events:
                    callback(_change(event))
        watch_id = self._call(self._client.add_watch_prefix_callback, prefix, deliver, start_revision=start_revision)

        def cancel() -> None:
            try:
                self._client.cancel_watch(watch_id)
            except (etcd_exceptions.Etcd3Exception, grpc.RpcError):
                pass  # etcd unreachable: the stream, and this watch with it, is gone anyway
        return cancel

    def update(self, key: str, change: Callable[[Any], Any], extra: Mapping[str, Any] | None = None,
               read: Entry | None | _Unread = UNREAD) -> Any:
        """Read-modify-write ``key`` (change(None) when absent) with a compare on its revision.

        ``extra`` puts land in the same transaction. ``read``: the entry as the caller has read it
        already (None: absent), which the first attempt uses instead of reading again. Returns the new value.
        """
        entry = read
        for attempt in range(CAS_ATTEMPTS):
            if attempt or isinstance(entry, _Unread):
                entry = self.get(key)
            new = change(None if entry is None else entry.value)
            guard = Compare.as_read(key, entry)
            if self.commit([guard], {key: new, **(extra or {})}):
                return new
        raise StoreError(f"etcd at {self.where}: {key} kept changing; gave up after {CAS_ATTEMPTS} tries")

    def watch(self, prefix: str, start_revision: int) -> tuple[Iterator[Change], Callable[[], None]]:
        """Changes under ``prefix`` from ``start_revision`` on, and a function that cancels the watch."""
        batches, cancel = self.watch_batches(prefix, start_revision)
        return (change for batch in batches for change in batch), cancel

    def watch_batches(self, prefix: str, start_revision: int) -> tuple[Iterator[list[Change]], Callable[[], None]]:
        """``watch``, in the batches etcd sends: each holds whole revisions, so a reader can tell
        when it has seen every change of a revision (esiprov.devenv.history reads up to "now")."""
        responses, cancel = self._call(self._client.watch_prefix_response, prefix,
                                       start_revision=start_revision)
        return ([_change(event) for event in response.events] for response in responses), cancel

    def close(self) -> None:
        self._client.close()


class _Windows:
    """The key windows of one scan of [start, end): each meant to hold about ``page`` keys.

    A key's place in the key space is its bytes read as a number (``_place``); a window's width
    is a difference of such numbers. The first window is the whole range (etcd's answer says how
    many keys it holds); after that each window is as wide as the last answer suggests: the width
    the last page of keys spanned, or the last window's width scaled by how far its count was from
    the aim. The window after an empty one is ``GROWTH`` squared times wider, and each further
    empty one squares that growth again: the gap between two types of keys (or two runs of names) may be 2^100 times wider
    than a window over UUIDs, and is crossed in a few requests, each walking nothing.
    Estimates only size the windows: every window starts where the last answer ended, so no key
    is skipped or read twice whatever the keys look like.
    """

    #: bytes past the scan's start that place a key: longer keys share a place with their head,
    #: which only makes their windows wider than aimed
    PLACE_BYTES = 128
    #: an empty window's growth is this squared, then squared again for each further empty window
    GROWTH = 8

    def __init__(self, start: bytes, end: bytes, page: int) -> None:
        self.low, self.end = start, end
        self.size = len(start) + self.PLACE_BYTES
        self.aim = max(1, page * 3 // 4)  # under a page: a window a little denser than its estimate still fits
        self.width: int | None = None  # None: the whole range (the first window)
        self.high = end
        self.growth = self.GROWTH
        self.done = end <= start

    def next(self) -> tuple[bytes, bytes] | None:
        """The next (low, high) to read, or None when the range is read."""
        if self.done:
            return None
        self.high = self.end
        if self.width is not None:
            self.high = min(self.end, self._key(self._place(self.low) + self.width))
        return self.low, self.high

    def answered(self, found: Sequence[bytes], count: int, more: bool) -> None:
        """Move past what the last window gave: ``found`` (its first keys), ``count`` (how many it holds)."""
        self.growth = self.growth ** 2 if count == 0 else self.GROWTH
        if more:
            self.low = found[-1] + b"\0"
            if len(found) > 1:
                spanned, keys = self._place(found[-1]) - self._place(found[0]), len(found) - 1
            else:  # one key a page: the density of the rest of the window
                spanned, keys = self._place(self.high) - self._place(self.low), count - len(found)
            self.width = max(1, spanned * self.aim // keys)
            return
        if self.high == self.end:
            self.done = True
            return
        width = self._place(self.high) - self._place(self.low)
        self.low = self.high
        self.width = max(1, width * self.growth if count == 0 else width * self.aim // count)

    def _place(self, key: bytes) -> int:
        return int.from_bytes(key[:self.size].ljust(self.size, b"\0"), "big")

    def _key(self, place: int) -> bytes:
        """The shortest key at ``place`` (trailing zero bytes dropped); still after the window's low key,
        since a positive width changes a byte that is kept."""
        if place >= 1 << (8 * self.size):
            return self.end
        return place.to_bytes(self.size, "big").rstrip(b"\0")


def _change(event: Any) -> Change:
    """A Change from one of pyetcd's (already wrapped) watch events."""
    key = event.key.decode()
    if isinstance(event, etcd_events.DeleteEvent):
        return Change(key, None, event.mod_revision)
    return Change(key, Entry(key, _decode(event.value), event.mod_revision), event.mod_revision)


#: (a fragment of gRPC's details, what the operator should check)
_HINTS = (
    ("TSI_", "the TLS handshake failed: check ESIPROV_ETCD_CA, ESIPROV_ETCD_CERT and ESIPROV_ETCD_KEY"),
    ("user name is empty", "etcd has authentication on: set ESIPROV_ETCD_USER and ESIPROV_ETCD_PASSWORD"),
    ("permission denied", "the etcd user (ESIPROV_ETCD_USER, else the client certificate's CN) needs a role "
                          "allowing read and write under /config/, /jobs/, /esi-worker/, /state/ and /monitoring/"),
)


def _describe(exc: BaseException) -> str:
    """gRPC's code and details (pyetcd's own errors hide them in the gRPC error they replaced), with a hint."""
    rpc = exc if isinstance(exc, grpc.RpcError) else exc.__context__
    if not (isinstance(rpc, grpc.RpcError) and hasattr(rpc, "details")):
        return str(exc) or type(exc).__name__
    details = rpc.details() or ""
    hints = [hint for fragment, hint in _HINTS if fragment in details]
    return "; ".join([f"{rpc.code().name}: {details}", *hints])
