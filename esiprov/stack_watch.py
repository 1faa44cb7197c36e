"""A worker process's watch over the Heat stacks its heat steps wait for: one list request per tenant
and round for all of them, instead of one re-check task per stack and round.

A heat step that finds its stack building hands the wait to the watch of its process and ends, its
message acked: nothing is parked in the worker. The watch lists the waiting stacks of each tenant by
name, in one Heat request per round, and when a stack's status has moved on (or the stack is gone)
it calls the step's ``resend``, which publishes the re-check that reads the stack with its outputs
and goes on. Each stack is listed again after an eighth of the time its operation has run so far,
never sooner than ESIPROV_HEAT_POLL_INTERVAL nor later than ESIPROV_HEAT_POLL_MAX, so a finished
stack is seen within an eighth of its build time (or one poll interval, for a short build); the
waits due within one interval of each other share a request. A worker with 200 stacks building pays a few list requests per second,
where one re-check task per stack and round kept it from sending the creates behind them.

Nothing is lost when the process dies: a step hands its wait over only while its process holds the
workflow on its etcd lease (esiprov.holds), and the leader sends the workflow again when that lease
expires. A list that fails (Heat down, a policy that forbids listing) wakes each wait at the
countdown its step would have waited, so the step checks for itself as before; a wait outlives
ESIPROV_WAIT_TIMEOUT in no case, the step fails it then.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from esiprov.heat import Stack, client_for
from esiprov.settings import Settings

log = logging.getLogger(__name__)

#: a stack is listed again after this share of the time its operation has run so far
SHARE = 8
#: stack names per list request: each is a query parameter, and Heat's request line stays short
BATCH = 50
#: seconds before a re-check the broker refused is sent again (the wait stays held meanwhile)
RESEND_RETRY = 1.0


def pace(settings: Settings, elapsed: float, share: float) -> float:
    """Seconds to the next look at a stack whose operation has run ``elapsed`` seconds: ``share`` of
    that, between ESIPROV_HEAT_POLL_INTERVAL and ESIPROV_HEAT_POLL_MAX (a short build is seen soon, a
    long one costs few requests)."""
    return min(settings.heat_poll_max, max(settings.heat_poll_interval, elapsed / share))


@dataclass(order=True)
class Wait:
    """One step waiting for its stack; ordered by when it is listed next."""

    #: time.monotonic() of its next list
    due: float
    order: int
    tenant: str = field(compare=False)
    name: str = field(compare=False)
    #: the stack's revision (esiprov.heat.Stack.revision) when the step last looked
    seen: list[str] = field(compare=False)
    #: time.time() when the step's operation was sent
    since: float = field(compare=False)
    #: time.time() when the step checks for itself if the stack cannot be listed
    fallback: float = field(compare=False)
    resend: Callable[[], None] = field(compare=False)

    def over(self, listed: dict[str, Stack] | None, now: float, settings: Settings) -> bool:
        """Whether to wake the step: its stack moved on or is gone; with no list (``None``), once its
        fallback has come; in any case once its wait has run out (the step then fails it)."""
        if now - self.since >= settings.wait_timeout:
            return True
        if listed is None:
            return now >= self.fallback
        stack = listed.get(self.name)
        return stack is None or (not stack.in_progress and stack.revision != self.seen)


class StackWatch:
    """The waits of one process and the thread that lists their stacks; ``add`` is safe from any thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._waits: list[Wait] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        #: tenants whose last list failed (touched by the watch thread only)
        self._failing: set[str] = set()
        self.thread = threading.Thread(target=self._run, name="esiprov-stack-watch", daemon=True)
        self.thread.start()

    def add(self, tenant: str, name: str, seen: list[str], since: float, countdown: float,
            resend: Callable[[], None]) -> None:
        """Call ``resend`` once stack ``name`` of ``tenant`` has moved on from revision ``seen``;
        ``since``: when its operation was sent (time.time()); ``countdown``: seconds after which the
        step would have checked itself."""
        now = time.time()
        self._push(Wait(self._next(now, since), next(self._order), tenant, name, seen, since, now + countdown,
                        resend))

    def _next(self, now: float, since: float) -> float:
        """When to list a stack next (monotonic), its operation sent at ``since`` (wall clock, as ``now``)."""
        return time.monotonic() + pace(self.settings, now - since, SHARE)

    def _push(self, wait: Wait) -> None:
        with self._changed:
            heapq.heappush(self._waits, wait)
            self._changed.notify()

    def _run(self) -> None:
        while True:
            due = self._due()
            for tenant in {wait.tenant for wait in due}:
                ours = [wait for wait in due if wait.tenant == tenant]
                for start in range(0, len(ours), BATCH):
                    batch = ours[start:start + BATCH]
                    try:
                        self._check(tenant, batch)
                    except Exception:  # noqa: BLE001 - the thread must live on, and no wait be dropped
                        log.exception("the stack watch failed on %d stacks of tenant %s; their steps "
                                      "check for themselves", len(batch), tenant)
                        for wait in batch:
                            self._wake(wait)

    def _due(self) -> list[Wait]:
        """Block until a wait is due; then every wait due within one poll interval of now."""
        with self._changed:
            while not self._waits or self._waits[0].due > time.monotonic():
                self._changed.wait(self._waits[0].due - time.monotonic() if self._waits else None)
            horizon = time.monotonic() + self.settings.heat_poll_interval
            due = []
            while self._waits and self._waits[0].due <= horizon:
                due.append(heapq.heappop(self._waits))
            return due

    def _check(self, tenant: str, waits: list[Wait]) -> None:
        listed = self._list(tenant, [wait.name for wait in waits])
        now = time.time()
        for wait in waits:
            if wait.over(listed, now, self.settings):
                self._wake(wait)
            else:
                wait.due = self._next(now, wait.since)
                self._push(wait)

    def _list(self, tenant: str, names: list[str]) -> dict[str, Stack] | None:
        """The listed stacks by name; None when Heat could not list them (logged when the tenant's lists
        start failing and when they work again, not every round)."""
        try:
            listed = client_for(self.settings, tenant).statuses(names)
        except Exception as exc:  # noqa: BLE001 - no failure may drop a wait: its step checks itself
            if tenant not in self._failing:
                self._failing.add(tenant)
                log.warning("cannot list the building stacks of tenant %s (each is checked at its own "
                            "countdown until the list works again): %s", tenant, self.settings.redact(str(exc)))
            return None
        if tenant in self._failing:
            self._failing.discard(tenant)
            log.info("the building stacks of tenant %s are listed again", tenant)
        return listed

    def _wake(self, wait: Wait) -> None:
        """Publish the step's re-check; a broker that refuses it is asked again shortly."""
        try:
            wait.resend()
        except Exception as exc:  # noqa: BLE001 - the wait stays held by this worker: keep it
            log.warning("cannot send the re-check of stack %s (sent again in %.0f s): %s", wait.name,
                        RESEND_RETRY, self.settings.redact(str(exc)))
            wait.due = time.monotonic() + RESEND_RETRY
            self._push(wait)


_watch: tuple[int, StackWatch] | None = None
_watch_lock = threading.Lock()


def watch(settings: Settings) -> StackWatch:
    """This process's watch, started on first use (a forked child starts its own, and so would a
    process whose watch thread had died)."""
    global _watch
    with _watch_lock:
        if _watch is None or _watch[0] != os.getpid() or not _watch[1].thread.is_alive():
            _watch = (os.getpid(), StackWatch(settings))
        return _watch[1]


def hand_over(settings: Settings, tenant: str, name: str, seen: list[str], since: float, countdown: float,
              resend: Callable[[], None]) -> None:
    """``StackWatch.add`` on this process's watch, started only when a wait is really handed over."""
    watch(settings).add(tenant, name, seen, since, countdown, resend)
