"""What etcd's history says happened under a prefix: the demo's and the tests' view of transient documents.

Jobs and job_state are gone once a workflow ends; their history stays readable
until etcd compacts it. Reading it watches the whole keyspace from a revision
(to know when it has reached the revision that was current when it began), so
it needs read access to "/": for the demo and tests, not for a role limited to
esiprov's prefixes.
"""
from __future__ import annotations

from esiprov.store import Change, Store


def history(store: Store, prefix: str, start_revision: int) -> list[Change]:
    """Every change under ``prefix`` from ``start_revision`` up to now, in revision order."""
    _, now = store.range(prefix, keys_only=True)
    if now < start_revision:
        return []
    batches, cancel = store.watch_batches("/", start_revision)
    found: list[Change] = []
    try:
        for batch in batches:
            found += [change for change in batch if change.key.startswith(prefix)]
            if any(change.revision >= now for change in batch):
                break
    finally:
        cancel()
    return found
