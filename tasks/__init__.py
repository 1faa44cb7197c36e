"""The esiprov steps on the library's Celery app: ``celery -A tasks worker`` runs every step on its own queue.

Queues are named after the handlers (heat_worker, monitoring_worker) plus finalize
(finalize and resync) and poller (the periodic SNMP poll). Tasks take job ids, never
documents or secrets: a job's inputs live in etcd, where ``esiprov jobs requeue``
finds them again. The app itself is built in ``esiprov.app``; importing this
package registers the steps and makes every worker hold what it receives
(``esiprov.holds``).
"""
from esiprov import holds, logs
from esiprov.app import app
from esiprov.settings import ConfigError, current

try:
    settings = current()  # read once, first: celery worker, beat and flower stop in one line naming the variable
except ConfigError as exc:
    raise SystemExit(f"esiprov: {exc}") from None
holds.install()
logs.install(settings.log_format)

from tasks import finalize, heat_worker, monitoring_worker, poller, resync  # noqa: E402,F401  (registers the tasks)

__all__ = ["app"]
