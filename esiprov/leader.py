"""Lease-based leadership: several ``esiprov watch`` may run, one acts.

The leader's key lives under /esi-worker/ on an etcd lease; it exists only as
long as the leader keeps refreshing the lease. When the leader dies, the lease
expires within ``ttl`` seconds and a standby's put-if-absent succeeds.
Correctness never depends on it: every dispatch is guarded by the resource's
workflow record, so two watchers acting at once would only duplicate reads.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time

from esiprov.store import Compare, Store, StoreError

log = logging.getLogger(__name__)

#: seconds a leader's lease lives without a refresh (a standby takes over within this)
LEASE_TTL = 10


def identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Leadership:
    def __init__(self, store: Store, key: str, ttl: int = LEASE_TTL) -> None:
        self.store = store
        self.key = key
        self.ttl = ttl
        self.name = identity()
        self.lease: int | None = None
        #: monotonic time etcd last answered this campaign (a grant, a put-if-absent, a refresh);
        #: None before the first answer and after a failed request, until one succeeds again
        self.answered_at: float | None = None

    def campaign(self, stopped: threading.Event) -> bool:
        """Block until this process leads (True) or ``stopped`` is set (False)."""
        waiting_logged = False
        while not stopped.is_set():
            if self.try_acquire():
                log.info("%s leads (%s)", self.name, self.key)
                return True
            if not waiting_logged:
                log.info("%s stands by: %s is held by %s", self.name, self.key, self.store.value(self.key))
                waiting_logged = True
            stopped.wait(self.ttl / 3)
        return False

    def try_acquire(self) -> bool:
        """Take the key on a new lease if nobody holds it; True when this process now holds it."""
        try:
            lease = self.store.grant(self.ttl)
            acquired = self.store.commit([Compare.absent(self.key)], {self.key: {"holder": self.name}}, lease=lease)
            if not acquired:
                self.store.revoke(lease)
        except StoreError:
            self.lost_contact()
            raise
        self.answered_at = time.monotonic()
        if acquired:
            self.lease = lease
        return acquired

    def keep(self) -> bool:
        """Refresh the lease; False once leadership is lost (lease expired or etcd unreachable)."""
        if self.lease is None:
            return False
        try:
            alive = self.store.refresh(self.lease)
        except StoreError as exc:
            log.warning("cannot refresh the leader lease: %s", exc)
            self.lost_contact()
            return self._lost()
        self.answered_at = time.monotonic()
        return alive or self._lost()

    def _lost(self) -> bool:
        """Leadership is gone (the lease expired, or etcd did not answer): False, for keep()."""
        log.warning("%s lost leadership of %s", self.name, self.key)
        self.lease = None
        return False

    def lost_contact(self) -> None:
        """etcd failed a request of this campaign (or the watch built on it broke): not alive until it answers again."""
        self.answered_at = None

    def resign(self) -> None:
        if self.lease is not None:
            lease, self.lease = self.lease, None
            try:
                self.store.revoke(lease)
            except StoreError:
                pass  # the lease expires on its own
