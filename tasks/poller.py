"""poll_targets: the periodic SNMP poll that keeps /monitoring true.

Celery beat sends it every ``ESIPROV_MONITOR_INTERVAL`` seconds to the ``poller``
queue (with that interval as expiry, so a backlog never runs stale cycles);
``esiprov.poller.guarded_poll`` makes a second beat, or an overlap with a slow
cycle, skip rather than poll twice. With ``ESIPROV_TSDB_URL`` set, each cycle's
traffic counters go to the TSDB from this worker process, after the cycle.
"""
from __future__ import annotations

import logging
from typing import Any

from esiprov import poller, steps, tsdb
from esiprov.app import app
from esiprov.snmp import SnmpProbe
from tasks.context import context
from tasks.job import retrying

log = logging.getLogger(__name__)


@app.task(**retrying(steps.POLL_TARGETS))
def poll_targets() -> dict[str, Any] | None:
    """Poll every monitoring target once; the cycle's summary (None when it skipped), shown in Flower."""
    ctx = context()
    summary = poller.guarded_poll(ctx.store, SnmpProbe(ctx.settings), ctx.settings.monitor_interval,
                                  on_traffic=tsdb.sink(ctx.settings))
    if summary is None:
        return None
    log.info("poll cycle: %s", summary)
    return vars(summary)
