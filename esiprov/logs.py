"""Log lines as text (the default) or, with ``ESIPROV_LOG_FORMAT=json``, one JSON object per line.

A log pipeline (Loki, Elasticsearch, journald's JSON export) wants fields it can
query, not sentences: every record carries time, level, logger and message, and,
where the line is about one job, its ``job_id``, ``resource_type``,
``resource_id`` and ``action``. For a Celery task they come from its task id (a
step's task id is its job id; finalize's names the resource), which Celery's own
lines carry and esiprov's find in the running task; elsewhere from what the
caller passes as ``extra``.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

from celery import current_task, signals

from esiprov.documents import JobId, resource_of_task

#: the fields a record may carry about the job or resource it concerns
CONTEXT = ("job_id", "resource_type", "resource_id", "action")
TEXT, JSON = "text", "json"


def task_context(task_id: str | None) -> dict[str, str]:
    """What a workflow task's id says (resource_of_task); a step's id is also its job id, which names
    its action."""
    found = resource_of_task(task_id or "")
    if task_id is None or found is None:
        return {}
    context = {"resource_type": found[0], "resource_id": found[1]}
    if job := JobId.of(task_id):
        context.update(job_id=task_id, action=job.action)
    return context


class JsonFormatter(logging.Formatter):
    """One JSON object per record; the job's fields when the record or the running task names one."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        document.update(task_context(_task_id(record)))
        document.update({field: getattr(record, field) for field in CONTEXT if hasattr(record, field)})
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document)


def _task_id(record: logging.LogRecord) -> str | None:
    """The task a record is about: Celery's own lines name it in ``data`` (received, succeeded, retry),
    esiprov's lines inside a task through the running task."""
    data = getattr(record, "data", None)
    if isinstance(data, dict) and isinstance(data.get("id"), str):
        return data["id"]
    return current_task.request.id if current_task and current_task.request else None


def use_json(root: logging.Logger | None = None) -> None:
    """Give every handler of ``root`` (default: the root logger) the JSON formatter."""
    for handler in (root or logging.getLogger()).handlers:
        handler.setFormatter(JsonFormatter())


def _after_setup(logger: logging.Logger, **_: Any) -> None:
    use_json(logger)


def install(log_format: str) -> None:
    """In a Celery worker or beat: JSON lines once Celery has set its loggers up, if asked for."""
    if log_format == JSON:
        signals.after_setup_logger.connect(_after_setup, weak=False)
        signals.after_setup_task_logger.connect(_after_setup, weak=False)
