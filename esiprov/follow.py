"""Following etcd for the operator: re-show a view when what it shows changes; wait for a document.

Both register etcd watches from a revision read *before* the first look, so a
change made between the look and the watch is never missed, and then block on
an event: no polling loop. A broken watch stream calls nothing (esiprov.store),
so both also look again every ``REFRESH`` seconds, which also moves the ages a
view shows on.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Sequence

from esiprov.store import Change, Entry, Store

#: seconds between two looks when nothing changed
REFRESH = 10.0


def follow(store: Store, prefixes: Sequence[str], show: Callable[[], None], refresh: float = REFRESH) -> None:
    """Call ``show`` now and again after every change under ``prefixes`` (at least every ``refresh`` s).

    Returns only by an exception: KeyboardInterrupt (Ctrl-C) is how a follower ends.
    """
    changed = threading.Event()
    start = store.revision() + 1
    cancels = [store.on_changes(prefix, start, lambda _change: changed.set()) for prefix in prefixes]
    try:
        while True:
            changed.clear()  # before looking: a change during the look brings another look
            show()
            changed.wait(refresh)
    finally:
        for cancel in cancels:
            cancel()


def wait_for(store: Store, key: str, after_revision: int, wanted: Callable[[Any], bool],
             timeout: float, refresh: float = REFRESH) -> Entry | None:
    """The first value of ``key`` written after ``after_revision`` that is ``wanted``; None after ``timeout`` s."""
    seen = threading.Event()

    def changed(change: Change) -> None:
        if change.key == key:  # a watch on a key also sees the keys it is a prefix of
            seen.set()

    deadline = time.monotonic() + timeout
    cancel = store.on_changes(key, after_revision + 1, changed)
    try:
        while True:
            seen.clear()
            entry = store.get(key)
            if entry is not None and entry.mod_revision > after_revision and wanted(entry.value):
                return entry
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            seen.wait(min(remaining, refresh))
    finally:
        cancel()
