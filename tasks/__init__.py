"""The esiprov steps on the library's Celery app: ``celery -A tasks worker`` runs every step on its own queue.

Every task, its queue and its module are declared once in ``esiprov.steps``:
a queue per handler (heat_worker, monitoring_worker) plus finalize (finalize and
resync) and poller (the periodic SNMP poll). Tasks take job ids, never
documents or secrets: a job's inputs live in etcd, where ``esiprov jobs requeue``
finds them again. The app itself is built in ``esiprov.app``; importing this
package registers the steps, makes every worker hold what it receives
(``esiprov.holds``) and gives each worker process its context (``tasks.context``).
"""
import importlib

from esiprov import holds, logs, steps
from esiprov.app import app
from esiprov.settings import ConfigError, current
from tasks import context

try:
    settings = current()  # read once, first: celery worker, beat and flower stop in one line naming the variable
except ConfigError as exc:
    raise SystemExit(f"esiprov: {exc}") from None
holds.install()
logs.install(settings.log_format)
context.install()
for module in steps.modules():
    importlib.import_module(module)  # registers the module's tasks on the app

__all__ = ["app"]
