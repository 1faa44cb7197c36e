"""Flower on a free loopback port for local runs and tests, and a small client of its HTTP API.

``make flower`` runs the same command for operators (on 127.0.0.1:5555). Flower
knows only the task events it receives while it runs, and workers send none
until a monitor asks (Flower does when it starts, and every 5 s after): so it
must be capturing, and the workers sending, before the work it should show
starts. ``start_flower`` waits for the first, ``wait_for_events`` for the second. Flower's ``/api`` answers without
authentication only with ``FLOWER_UNAUTHENTICATED_API=true``; that is set here,
for a server bound to loopback, unless the server is given a ``basic_auth``
``user:password`` (passed as FLOWER_BASIC_AUTH, never on the command line), as
an operator binding Flower beyond loopback would run it.
"""
from __future__ import annotations

import base64
import json
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Mapping

from esiprov.devenv.pipeline import ROOT, _logged
from esiprov.devenv.process import Service, free_port, wait_until

#: Flower logs this (at debug level) once its event receiver is consuming
CAPTURING = "Capturing events..."
#: what a worker logs when a monitor turns its task events on
EVENTS_ON = "Events of group {task} enabled by remote."
#: seconds per request to Flower's API
HTTP_TIMEOUT = 10.0


class Flower(Service):
    """``celery -A tasks flower`` on ``url``, with its API open (loopback only)."""

    def __init__(self, env: Mapping[str, str], log_dir: Path, port: int, name: str = "flower",
                 basic_auth: str | None = None) -> None:
        argv = [sys.executable, "-m", "celery", "-A", "tasks", "flower", "--address=127.0.0.1",
                f"--port={port}", "--logging=debug"]
        access = {"FLOWER_BASIC_AUTH": basic_auth} if basic_auth else {"FLOWER_UNAUTHENTICATED_API": "true"}
        super().__init__(name, argv, log_dir, {**env, **access}, cwd=ROOT)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._headers = {"Authorization": "Basic " + base64.b64encode(basic_auth.encode()).decode()} \
            if basic_auth else {}

    def get(self, path: str, **params: Any) -> Any:
        """GET ``path`` (``/api/tasks``, ...) with query ``params``, logged in if the server asks; the decoded JSON."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        request = urllib.request.Request(f"{self.url}{path}{query}", headers=self._headers)
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            return json.loads(response.read())

    def hears(self, worker: Service, heartbeats: int = 2) -> bool:
        """Flower counts ``worker`` (started as ``-n <name>@...``) alive and has had ``heartbeats`` of its
        heartbeats (every 2 s): its event stream from that worker is established, not just starting."""
        found = self.get("/workers", json=1)["data"]
        return any(str(w.get("hostname", "")).startswith(f"{worker.name}@") and w.get("status")
                   and len(w.get("heartbeats") or []) >= heartbeats for w in found)

    def tasks(self, **filters: Any) -> dict[str, dict[str, Any]]:
        """Flower's task records by task id (= esiprov job id): name, state, args, kwargs, result ...

        ``filters`` are /api/tasks query parameters (``taskname``, ``state``, ``limit`` ...).
        """
        return self.get("/api/tasks", **filters)

    def ready(self) -> bool:
        """The HTTP server answers and the event receiver consumes."""
        with urllib.request.urlopen(f"{self.url}/healthcheck", timeout=HTTP_TIMEOUT) as response:
            return response.read() == b"OK" and _logged(self, CAPTURING)


def start_flower(env: Mapping[str, str], log_dir: Path, name: str = "flower", basic_auth: str | None = None) -> Flower:
    """Start Flower against the broker of ``env`` (ESIPROV_*) and wait until it captures events."""
    flower = Flower(env, log_dir, free_port(), name, basic_auth)
    flower.start(flower.ready, timeout=60)
    return flower


def wait_for_events(flower: Flower, worker: Service, timeout: float = 30.0) -> None:
    """Block until ``worker`` sends events and ``flower`` receives them (the worker's heartbeats reach it):
    Flower turns them on when it starts, and every 5 s; its subscription may come a moment later."""
    wait_until(lambda: _logged(worker, EVENTS_ON) and flower.hears(worker), timeout,
               f"Flower to hear the events of {worker.name}")
