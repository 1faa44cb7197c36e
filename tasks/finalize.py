"""finalize: the chain's last step publishes /state and /monitoring, then re-drives the resource.

Re-driving (reconcile) starts the newest config version if one arrived while
this workflow ran: one workflow per resource at a time, newest version wins.
"""
from __future__ import annotations

import logging

from esiprov import publish, steps
from esiprov.app import app
from esiprov.reconcile import reconcile
from tasks.context import context
from tasks.job import retrying

log = logging.getLogger(__name__)


# Its result is not stored: nothing reads it (esiprov jobs reads the jobs' own states), and it
# would cost a Redis write per resource.
@app.task(**retrying(steps.FINALIZE), ignore_result=True)
def finalize(rtype: str, rid: str, version: int) -> None:
    """Publish the finished workflow of ``rtype`` ``rid`` at ``version``."""
    ctx = context()
    done = publish.finalize(ctx.store, rtype, rid, version)
    if done.published:
        log.info("%s %s: version %s published", rtype, rid, version)
    if not done.current:  # the config was no longer at the version published (or nothing was): re-drive
        reconcile(ctx.store, ctx.app, rtype, rid)
