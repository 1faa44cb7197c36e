"""resync: the periodic reconcile, insurance against lost events and lost broker messages.

Celery beat runs it every ``ESIPROV_RESYNC_INTERVAL`` seconds; it re-drives
every resource without a final state and sends again the workflows in flight
for longer than ``ESIPROV_RESEND_AFTER`` seconds.
"""
from __future__ import annotations

from esiprov.reconcile import resync as resync_all
from esiprov.settings import current
from tasks import app
from tasks.job import retrying, store


@app.task(**retrying("esiprov.resync"))
def resync() -> dict[str, int]:
    """Reconcile every known resource; return the outcome counts (shown in Flower)."""
    return dict(resync_all(store(), app, current().resend_after))
