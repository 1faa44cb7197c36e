"""finalize: the chain's last step publishes /state and /monitoring, then re-drives the resource.

Re-driving (reconcile) starts the newest config version if one arrived while
this workflow ran: one workflow per resource at a time, newest version wins.
"""
from __future__ import annotations

import logging

from esiprov import keys, publish, steps
from esiprov.app import app
from esiprov.documents import envelope_version
from esiprov.reconcile import reconcile
from tasks.context import context
from tasks.job import retrying

log = logging.getLogger(__name__)


@app.task(**retrying(steps.FINALIZE))
def finalize(rtype: str, rid: str, version: int) -> None:
    """Publish the finished workflow of ``rtype`` ``rid`` at ``version``."""
    ctx = context()
    etcd = ctx.store
    if publish.finalize(etcd, rtype, rid, version):
        log.info("%s %s: version %s published", rtype, rid, version)
        if envelope_version(etcd.value(keys.config(rtype, rid))) == version:
            return  # the config is still at the version just published: nothing newer to start
    reconcile(etcd, ctx.app, rtype, rid)
