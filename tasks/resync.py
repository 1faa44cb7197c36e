"""resync: the periodic reconcile, insurance against lost events and lost broker messages.

Celery beat runs it every ``ESIPROV_RESYNC_INTERVAL`` seconds; it re-drives
every resource without a final state and sends again the workflows in flight
for longer than ``ESIPROV_RESEND_AFTER`` seconds.
"""
from __future__ import annotations

from esiprov import steps
from esiprov.app import app
from esiprov.reconcile import resync as resync_all
from tasks.context import context
from tasks.job import retrying


@app.task(**retrying(steps.RESYNC))
def resync() -> dict[str, int]:
    """Reconcile every known resource; return the outcome counts (shown in Flower)."""
    ctx = context()
    return dict(resync_all(ctx.store, ctx.app, ctx.settings.resend_after))
