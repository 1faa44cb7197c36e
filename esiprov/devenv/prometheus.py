"""A private Prometheus on a free loopback port, scraping given targets, and a client of its HTTP API.

Debian's ``prometheus`` package (with ``promtool``) provides the binaries; ``make
deps`` installs it. The package's own service is not used (on a machine with
systemd it listens on :9090): this one has its config and its TSDB in a scratch
dir of its own and listens on a free port, so it collides with nothing.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from esiprov.devenv.process import LocalServer, ServiceError, free_port

#: seconds per request to Prometheus's HTTP API
HTTP_TIMEOUT = 10.0


def binary(name: str) -> str:
    """``prometheus`` or ``promtool`` on PATH, else a ServiceError saying how to get it."""
    found = shutil.which(name)
    if found is None:
        raise ServiceError(f"{name} not found: run `make deps` (Debian prometheus)")
    return found


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``promtool ARGS`` (check rules, check config, test rules); its exit code and output, unchecked."""
    return subprocess.run([binary("promtool"), *args], check=False, capture_output=True, text=True, timeout=60)


class PrometheusServer(LocalServer):
    """``with PrometheusServer({"esiprov": ["127.0.0.1:9465"]}) as p:`` scrapes those targets every
    ``interval`` seconds and answers ``p.query(...)``.

    ``jobs`` maps a job name to its targets (``host:port``, scraped at /metrics); ``rule_files``
    are loaded as Prometheus loads an operator's (deploy/prometheus/alerts.yml).
    """

    def __init__(self, jobs: Mapping[str, Sequence[str]], interval: float = 1.0, rule_files: Sequence[Path] = (),
                 log_dir: Path | None = None) -> None:
        super().__init__(log_dir)
        self.jobs = {name: list(targets) for name, targets in jobs.items()}
        self.interval = interval
        self.rule_files = [Path(path).resolve() for path in rule_files]
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        """prometheus.yml: every job scraped (and rules evaluated) every ``interval`` seconds."""
        every = f"{int(self.interval * 1000)}ms"
        return {"global": {"scrape_interval": every, "scrape_timeout": every, "evaluation_interval": every},
                "rule_files": [str(path) for path in self.rule_files],
                "scrape_configs": [{"job_name": name, "static_configs": [{"targets": targets}]}
                                   for name, targets in self.jobs.items()]}

    def start(self, timeout: float = 60.0) -> "PrometheusServer":
        """Start prometheus and wait until /-/ready answers; on failure clean up and raise ServiceError."""
        prometheus = binary("prometheus")
        self.workdir = Path(tempfile.mkdtemp(prefix="esiprov-prometheus-"))
        self.port = free_port()
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config()))
        argv = [prometheus, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{self.port}",
                f"--storage.tsdb.path={self.workdir / 'data'}", "--log.level=warn"]
        self._launch("prometheus", argv, self._serves, timeout)
        return self

    def _serves(self) -> bool:
        """Prometheus says it is ready (LocalServer's own ``_ready`` attribute would shadow a method of that name)."""
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=HTTP_TIMEOUT) as answer:
            return answer.status == 200

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/``path`` with ``params``; its ``data``, or ServiceError when Prometheus says it failed."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=HTTP_TIMEOUT) as answer:
            reply = json.load(answer)
        if reply.get("status") != "success":
            raise ServiceError(f"Prometheus /api/v1/{path}: {reply.get('error')}")
        return reply["data"]

    def query(self, expression: str) -> list[tuple[dict[str, str], float]]:
        """An instant query: (labels, value) of every series of the answer."""
        data = self.api("query", query=expression)
        return [(series["metric"], float(series["value"][1])) for series in data["result"]]
