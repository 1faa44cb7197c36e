"""The esiprov Celery app, built in the library: commands send with it, ``tasks`` registers the steps on it.

The library never imports ``tasks`` (the steps need a worker's context; the
commands only send by task name and read results). The steps' modules
(esiprov.steps) are named in ``include``, so any process that starts a worker on
this app registers them;
``tasks`` re-exports this app, so ``celery -A tasks worker`` is unchanged.
"""
from __future__ import annotations

from celery import Celery

from esiprov import steps, task_events

app = Celery("esiprov", include=steps.modules())
app.config_from_object("celeryconfig")
task_events.install(app)
