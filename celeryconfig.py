"""Celery settings for esiprov (the baseline of research/anchors.md §3.6), from esiprov.settings."""
from esiprov import steps
from esiprov.settings import current

_settings = current()

broker_url = _settings.broker_url
result_backend = _settings.result_backend
# TLS for rediss:// URLs (certificates verified unless the URL says ssl_cert_reqs=none); the URLs may
# carry the Redis password: Celery masks it in its banner, and esiprov never logs these URLs.
broker_use_ssl = _settings.broker_ssl
redis_backend_use_ssl = _settings.result_backend_ssl
broker_connection_retry_on_startup = True
# RabbitMQ keeps delivering to a consumer whose host froze or vanished until heartbeats say it is gone:
# 10 s (not Celery's 120) hands its messages back within half a minute. Redis ignores it.
broker_heartbeat = 10

task_serializer = result_serializer = "json"
accept_content = ["json"]

# At-least-once delivery: every step is idempotent, so a redelivered message is harmless.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
# Not on: a thread pool cannot kill a running task (the worker would crash when the broker
# connection drops), and a step that runs on after a lost connection is only repeated, harmlessly.
worker_cancel_long_running_tasks_on_connection_loss = False
# Not on either: after a reconnect with steps still running, Celery lowers the prefetch count and
# restores it from the thread that acks, and on RabbitMQ that is a basic.qos call on the consumer's
# connection from a pool thread. py-amqp is not thread-safe: in half the runs of the "broker came
# back empty" chaos test the consumer then stopped receiving until RabbitMQ dropped it for missed
# heartbeats, 30 s later. Without the reduction, a worker that reconnects may receive up to its
# prefetch count beside the steps still running (each held, esiprov.holds): harmless.
worker_enable_prefetch_count_reduction = False
worker_deduplicate_successful_tasks = True
# Give a stopping worker time to hand back what it holds (countdown polls included).
worker_soft_shutdown_timeout = 30
worker_enable_soft_shutdown_on_idle = True

# The steps wait on I/O (Heat, etcd, SNMP) and never hold a slot while a stack builds, so
# `celery -A tasks worker` runs threads: one process, many steps in flight, and the same
# etcd connection for all of them.
worker_pool = "threads"
worker_concurrency = 16

# A worker that dies or freezes loses nothing for long: each worker holds what it received on an
# etcd lease, and the leading watcher resends it within seconds of the lease expiring
# (esiprov.holds). So on Redis, kombu's ack emulation is off: it kept a copy of every received
# message in Redis, two more round trips per message on the worker's one consumer thread, to hand
# a dead worker's messages back only after a visibility timeout (a quarter of an hour, a duplicate
# run by then). A worker killed in the instant between taking a message and writing its hold leaves
# that workflow to the periodic resync (ESIPROV_RESEND_AFTER), as the emulation left one killed
# between taking a message and booking it. A warm shutdown still hands back what it had received.
# RabbitMQ ignores the option: its acks are its own.
broker_transport_options = {"ack_emulation": False}

task_soft_time_limit = 120
task_time_limit = 180

# Results are kept (esiprov jobs list shows the last Celery state of each job) but lean: no
# started-tracking or extended results (etcd's holds say who works on what, and since when), and
# no task events unless a monitor asks for them (Flower turns them on when it starts).
result_expires = 24 * 3600

# One queue per handler (plus finalize's and the periodic poller's), so slow Heat polling never
# starves the others: declared once, in esiprov.steps.
task_queues = steps.queues()
task_default_queue = steps.FINALIZE.queue
task_routes = steps.routes()

beat_schedule = {
    steps.RESYNC.name: {"task": steps.RESYNC.task_name, "schedule": _settings.resync_interval},
    # a poll that waited longer than one interval in the queue is dropped: the next one is due anyway
    steps.POLL_TARGETS.name: {"task": steps.POLL_TARGETS.task_name, "schedule": _settings.monitor_interval,
                              "options": {"expires": _settings.monitor_interval}},
}
