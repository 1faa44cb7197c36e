"""The esiprov Celery app: ``celery -A tasks worker`` runs every step on its own queue.

Queues are named after the handlers (heat_worker, monitoring_worker) plus one for
finalize. Tasks take job ids, never documents or secrets: a job's inputs live in
etcd, where ``esiprov jobs requeue`` finds them again.
"""
from celery import Celery

from esiprov import holds

app = Celery("esiprov")
app.config_from_object("celeryconfig")
holds.install()

from tasks import finalize, heat_worker, monitoring_worker, poller, resync  # noqa: E402,F401  (registers the tasks)
