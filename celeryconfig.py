"""Celery settings for esiprov (the baseline of research/anchors.md §3.6), from esiprov.settings."""
from kombu import Exchange, Queue

from esiprov.settings import current

_settings = current()

broker_url = _settings.broker_url
result_backend = _settings.result_backend
broker_connection_retry_on_startup = True

task_serializer = result_serializer = "json"
accept_content = ["json"]

# At-least-once delivery: every step is idempotent, so a redelivered message is harmless.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
worker_cancel_long_running_tasks_on_connection_loss = True
# Countdowns (stack polls) stay at seconds, far below the visibility timeout.
broker_transport_options = {"visibility_timeout": 3600}
result_backend_transport_options = {"visibility_timeout": 3600}

task_soft_time_limit = 120
task_time_limit = 180

result_extended = True
result_expires = 24 * 3600
task_track_started = True
worker_send_task_events = True
task_send_sent_event = True

task_queues = [Queue(name, Exchange(name), routing_key=name)
               for name in ("heat_worker", "monitoring_worker", "finalize")]
task_default_queue = "finalize"
task_routes = {
    "esiprov.heat_worker": {"queue": "heat_worker"},
    "esiprov.monitoring_worker": {"queue": "monitoring_worker"},
    "esiprov.finalize": {"queue": "finalize"},
}
