"""A fast Heat-API simulator for benchmarks and fault injection (named as such: it is not Heat).

It answers what python-heatclient really sends (research/deps-lab.md §5):
``POST /v1/{t}/stacks`` (409 on a duplicate name), its ``GET`` (the list, filtered by
repeated ``name`` parameters), the ``stacks:lookup`` 302 of
``/v1/{t}/stacks/{name or id}`` for any method (``Location`` carries the query
string), and GET/PUT/PATCH/DELETE of ``/v1/{t}/stacks/{name}/{id}`` plus its
``/outputs``. A stack is ``<ACTION>_IN_PROGRESS`` for ``build_time`` seconds,
then ``<ACTION>_COMPLETE``, or ``<ACTION>_FAILED`` with a reason for a
``fail_rate`` share of operations; ``error_rate`` of all requests get an HTTP 503.
Outputs are the template's, with deterministic values. Requests are counted per
method and path kind, so a benchmark can report Heat requests per resource.

    python -m bench.heatsim --port P [--build-time S] [--fail-rate F] [--error-rate E] [--seed N]

``/_heatsim/stats`` (GET), ``/_heatsim/reset`` and ``/_heatsim/config`` (POST, JSON
with any of build_time, fail_rate, error_rate) let a benchmark read the counters and
change the behaviour between runs without restarting. ``HeatSim`` launches it.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from esiprov.devenv.process import LocalServer, free_port, tcp_open

ROOT = Path(__file__).resolve().parents[1]
CONTROL = "/_heatsim/"
#: libyaml's loader when PyYAML has it: the pure-Python one costs milliseconds per template
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Behaviour:
    """What the simulator does; changeable at run time through /_heatsim/config."""

    build_time: float = 0.0
    fail_rate: float = 0.0
    error_rate: float = 0.0


@dataclass
class SimStack:
    """One stack: its last operation and when that operation ends."""

    tenant: str
    name: str
    id: str
    template: dict[str, Any]
    parameters: dict[str, Any]
    action: str = "CREATE"
    started: float = field(default_factory=time.monotonic)
    build_time: float = 0.0
    fails: bool = False
    #: the template's outputs, worked out when an operation starts (the template changes only then)
    output_list: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        if time.monotonic() - self.started < self.build_time:
            return f"{self.action}_IN_PROGRESS"
        return f"{self.action}_{'FAILED' if self.fails else 'COMPLETE'}"

    @property
    def reason(self) -> str:
        status = self.status
        if status.endswith("_FAILED"):
            return f"Resource {self.action} failed: simulated failure (heatsim)"
        return f"Stack {self.action} {'started' if status.endswith('_IN_PROGRESS') else 'completed successfully'}"

    def outputs(self) -> list[dict[str, Any]]:
        """The template's outputs; values are derived from the stack's name, so they never change."""
        found = (self.template or {}).get("outputs") or {}
        return [{"output_key": key, "description": (spec or {}).get("description", "No description given"),
                 "output_value": output_value(self.name, key)} for key, spec in found.items()]

    def body(self, base: str, outputs: bool = True) -> dict[str, Any]:
        status = self.status
        body = {"id": self.id, "stack_name": self.name, "stack_status": status,
                "stack_status_reason": self.reason, "parameters": self.parameters,
                "links": [{"href": f"{base}/stacks/{self.name}/{self.id}", "rel": "self"}]}
        if outputs and status.endswith("_COMPLETE"):
            body["outputs"] = self.output_list
        return body


def output_value(stack_name: str, key: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"heatsim:{stack_name}:{key}"))


class Simulator:
    """The stacks of every tenant and the request counters; thread-safe."""

    def __init__(self, behaviour: Behaviour, seed: int = 0) -> None:
        self.behaviour = behaviour
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._by_name: dict[tuple[str, str], SimStack] = {}
        self._by_id: dict[str, SimStack] = {}  # deleted stacks too: Heat shows them by name/id
        self.requests: Counter[str] = Counter()

    def count(self, what: str) -> None:
        with self._lock:
            self.requests[what] += 1

    def inject_error(self) -> bool:
        with self._lock:
            return self._random.random() < self.behaviour.error_rate

    def _start(self, stack: SimStack, action: str) -> None:
        stack.action, stack.started = action, time.monotonic()
        stack.build_time = self.behaviour.build_time
        stack.output_list = stack.outputs()
        stack.fails = action != "DELETE" and self._random.random() < self.behaviour.fail_rate

    def create(self, tenant: str, name: str, template: dict[str, Any], parameters: dict[str, Any]) -> SimStack | None:
        """The new stack; None when the tenant already has one of that name."""
        with self._lock:
            if (tenant, name) in self._by_name:
                return None
            stack = SimStack(tenant, name, str(uuid.uuid4()), template, parameters)
            self._start(stack, "CREATE")
            self._by_name[tenant, name] = self._by_id[stack.id] = stack
            return stack

    def find(self, tenant: str, name_or_id: str) -> SimStack | None:
        """A live stack by name, or any stack of the tenant by id."""
        with self._lock:
            stack = self._by_name.get((tenant, name_or_id)) or self._by_id.get(name_or_id)
            return stack if stack is not None and stack.tenant == tenant else None

    def update(self, stack: SimStack, template: dict[str, Any] | None, parameters: dict[str, Any],
               patch: bool) -> bool:
        """Start an update; False while another operation is in progress (Heat's 409)."""
        with self._lock:
            if stack.status.endswith("_IN_PROGRESS"):
                return False
            if template is not None or not patch:  # PATCH without a template keeps the old one
                stack.template = template or {}
            stack.parameters = {**stack.parameters, **parameters} if patch else parameters
            self._start(stack, "UPDATE")
            return True

    def delete(self, stack: SimStack) -> None:
        """Start deleting; the name is free at once (a later create makes a new stack)."""
        with self._lock:
            self._by_name.pop((stack.tenant, stack.name), None)
            self._start(stack, "DELETE")

    def live(self, tenant: str) -> list[SimStack]:
        with self._lock:
            return [s for (t, _), s in self._by_name.items() if t == tenant]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": dict(self.requests), "stacks": len(self._by_name)}

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()


class Handler(BaseHTTPRequestHandler):
    """Routes Heat's v1 stack paths; keep-alive, as heatclient's requests session expects."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else a keep-alive client waits for a delayed ACK: 40 ms a request
    server: "SimServer"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a log line per request would cost more than the answer

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        body = self._body()
        if url.path.startswith(CONTROL):
            return self._control(url.path[len(CONTROL):], body)
        parts = url.path.strip("/").split("/")
        if len(parts) < 3 or parts[0] != "v1" or parts[2] != "stacks":
            return self._send(404, _error(404, "NotFound", f"no route for {url.path}"))
        tenant, rest = parts[1], parts[3:]
        kind = ["stacks", "lookup", "stack"][min(len(rest), 2)] if len(rest) < 3 else "outputs"
        sim = self.server.sim
        sim.count(f"{method} {kind}")
        if sim.inject_error():
            return self._send(503, _error(503, "ServiceUnavailable", "simulated outage (heatsim)"))
        base = f"http://{self.headers.get('Host', 'localhost')}/v1/{tenant}"
        if not rest:
            return self._collection(method, tenant, body, base, parse_qs(url.query).get("name"))
        stack = sim.find(tenant, rest[0])
        if stack is None or (len(rest) > 1 and rest[1] != stack.id):
            return self._send(404, _error(404, "EntityNotFound", f"The Stack ({rest[0]}) could not be found."))
        if len(rest) == 1:  # stacks:lookup: the same request again at the canonical path
            query = f"?{url.query}" if url.query else ""
            return self._send(302, {}, {"Location": f"{base}/stacks/{stack.name}/{stack.id}{query}"})
        if len(rest) > 2:
            return self._outputs(stack, rest[2:])
        self._stack(method, stack, body, base)

    def _collection(self, method: str, tenant: str, body: dict[str, Any], base: str,
                    names: list[str] | None) -> None:
        sim = self.server.sim
        if method == "GET":  # the list, filtered by name as Heat does; like Heat's, without outputs
            listed = [s for s in sim.live(tenant) if names is None or s.name in names]
            return self._send(200, {"stacks": [s.body(base, outputs=False) for s in listed]})
        if method != "POST":
            return self._send(405, _error(405, "MethodNotAllowed", method))
        name = body.get("stack_name", "")
        stack = sim.create(tenant, name, _template(body), body.get("parameters") or {})
        if stack is None:
            return self._send(409, _error(409, "StackExists", f"The Stack ({name}) already exists."))
        self._send(201, {"stack": {"id": stack.id, "links": stack.body(base)["links"]}})

    def _stack(self, method: str, stack: SimStack, body: dict[str, Any], base: str) -> None:
        sim = self.server.sim
        if method == "GET":
            return self._send(200, {"stack": stack.body(base)})
        if method == "DELETE":
            sim.delete(stack)
            return self._send(204, None)
        if method in ("PUT", "PATCH"):
            if not sim.update(stack, _template(body) if "template" in body else None,
                              body.get("parameters") or {}, patch=method == "PATCH"):
                return self._send(409, _error(409, "ActionInProgress",
                                              f"Stack {stack.name} already has an action in progress."))
            return self._send(202, None)
        self._send(405, _error(405, "MethodNotAllowed", method))

    def _outputs(self, stack: SimStack, rest: list[str]) -> None:
        outputs = stack.output_list
        if rest == ["outputs"]:
            return self._send(200, {"outputs": [{k: o[k] for k in ("output_key", "description")} for o in outputs]})
        found = [o for o in outputs if rest[1:] == [o["output_key"]]]
        if not found:
            return self._send(404, _error(404, "NotFound", f"no output {'/'.join(rest[1:])}"))
        self._send(200, {"output": found[0]})

    def _control(self, command: str, body: dict[str, Any]) -> None:
        sim = self.server.sim
        if command == "reset":
            sim.reset()
        elif command == "config":
            for name, value in body.items():
                setattr(sim.behaviour, name, float(value))
        self._send(200, {**sim.stats(), "behaviour": vars(sim.behaviour)})

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            found = json.loads(raw) if raw else {}
        except ValueError:
            found = {}
        return found if isinstance(found, dict) else {}

    def _send(self, status: int, body: dict[str, Any] | None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for name, value in {**(headers or {}), "Content-Length": str(len(data)),
                            **({"Content-Type": "application/json"} if body is not None else {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class SimServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, port: int, sim: Simulator) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.sim = sim


def _template(body: dict[str, Any]) -> dict[str, Any]:
    """The template of a create/update body: heatclient sends a dict, or YAML/JSON text."""
    template = body.get("template")
    if isinstance(template, str):
        try:
            template = yaml.load(template, Loader=SAFE_LOADER)
        except yaml.YAMLError:
            template = None
    return template if isinstance(template, dict) else {}


def _error(code: int, kind: str, message: str) -> dict[str, Any]:
    """Heat's error body: heatclient takes the message from error.message."""
    return {"code": code, "title": kind, "explanation": message, "error": {"type": kind, "message": message}}


class HeatSim(LocalServer):
    """``with HeatSim(build_time=5) as heat:`` — the simulator as a subprocess on a free loopback port.

    ``url`` has ESIPROV_HEAT_URL's ``{tenant_id}`` placeholder, like HeatServer's.
    """

    host = "127.0.0.1"

    def __init__(self, log_dir: Path, build_time: float = 0.0, fail_rate: float = 0.0,
                 error_rate: float = 0.0) -> None:
        super().__init__(log_dir)
        self.behaviour = Behaviour(build_time, fail_rate, error_rate)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1/{{tenant_id}}"

    def start(self, timeout: float = 15.0) -> "HeatSim":
        if self._service is not None:
            return self
        self.port = free_port(self.host)
        b = self.behaviour
        argv = [sys.executable, "-m", "bench.heatsim", "--port", str(self.port), "--build-time", str(b.build_time),
                "--fail-rate", str(b.fail_rate), "--error-rate", str(b.error_rate)]
        return self._launch("heatsim", argv, lambda: tcp_open(self.host, self.port), timeout,
                            env={"PYTHONPATH": str(ROOT)})

    def stats(self) -> dict[str, Any]:
        """{"requests": {"<METHOD> <kind>": n}, "stacks": live stacks, "behaviour": {...}}."""
        return self._control("config", {})

    def reset(self) -> dict[str, Any]:
        """Zero the request counters."""
        return self._control("reset", {})

    def configure(self, **behaviour: float) -> dict[str, Any]:
        """Change build_time, fail_rate or error_rate for the operations that start from now on."""
        return self._control("config", behaviour)

    def _control(self, command: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(f"http://{self.host}:{self.port}{CONTROL}{command}",
                                         data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
        with opener.open(request, timeout=5) as answer:
            return json.load(answer)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--build-time", type=float, default=0.0, help="seconds an operation stays IN_PROGRESS")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of create/update operations that fail")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered with HTTP 503")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sim = Simulator(Behaviour(args.build_time, args.fail_rate, args.error_rate), args.seed)
    with SimServer(args.port, sim) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
