"""A private InfluxDB 1.x on free loopback ports, with its OpenTSDB listener on: a TSDB the poller pushes to.

Debian's ``influxdb`` package (1.6) provides ``influxd``; ``make deps`` installs it.
Its OpenTSDB input speaks the protocol esiprov pushes traffic counters with
(HTTP ``POST /api/put``, 204 on success), and its own HTTP API answers InfluxQL, so
tests read back exactly what the poller put. The package's own service is not used
(on a machine with systemd it listens on :8086 and :8088): this one has its config,
metadata, data and WAL in a scratch dir of its own and binds every listener (HTTP
API, OpenTSDB, the backup RPC) to free loopback ports. Usage reporting is off, so
it sends nothing anywhere.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from esiprov.devenv.process import LocalServer, ServiceError, free_port, tcp_open

#: seconds per request to InfluxDB's HTTP API
HTTP_TIMEOUT = 10.0
#: the database the OpenTSDB listener writes into (it creates it when it starts)
DATABASE = "esiprov"


def influxd_binary() -> str:
    """``influxd`` on PATH, else a ServiceError saying how to get it."""
    found = shutil.which("influxd")
    if found is None:
        raise ServiceError("influxd not found: run `make deps` (Debian influxdb)")
    return found


class InfluxServer(LocalServer):
    """``with InfluxServer() as tsdb:`` takes OpenTSDB puts at ``tsdb.opentsdb_url`` and answers
    ``tsdb.query("SELECT ...")`` (InfluxQL) on ``tsdb.url``."""

    def __init__(self, log_dir: Path | None = None, database: str = DATABASE) -> None:
        super().__init__(log_dir)
        self.database = database
        self.http_port = 0
        self.opentsdb_port = 0
        self.rpc_port = 0

    @property
    def url(self) -> str:
        """InfluxDB's own HTTP API (/ping, /query)."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def opentsdb_url(self) -> str:
        """The OpenTSDB listener, as ESIPROV_TSDB_URL names it (``/api/put`` is appended by the client)."""
        return f"http://127.0.0.1:{self.opentsdb_port}"

    def config(self) -> str:
        """influxdb.conf (TOML): everything under ``workdir``, every listener on loopback, nothing sent out.

        The OpenTSDB listener's batch timeout is short so that points are queryable
        soon after a put: a test waits for them rather than for a fixed delay.
        """
        if self.workdir is None:
            raise ServiceError("influxd: no workdir (start() makes it)")
        data = self.workdir / "influxdb"
        return "\n".join([
            "reporting-disabled = true",
            f'bind-address = "127.0.0.1:{self.rpc_port}"',
            "[meta]", f'  dir = "{data / "meta"}"',
            "[data]", f'  dir = "{data / "data"}"', f'  wal-dir = "{data / "wal"}"',
            "  query-log-enabled = false",
            "[monitor]", "  store-enabled = false",
            "[subscriber]", "  enabled = false",
            "[continuous_queries]", "  enabled = false",
            "[http]", f'  bind-address = "127.0.0.1:{self.http_port}"', "  log-enabled = false",
            "  pprof-enabled = false",
            "[[opentsdb]]", "  enabled = true", f'  bind-address = "127.0.0.1:{self.opentsdb_port}"',
            f'  database = "{self.database}"', '  batch-timeout = "100ms"', "  log-point-errors = true",
            ""])

    def start(self, timeout: float = 60.0) -> "InfluxServer":
        """Start influxd, wait until /ping answers and the OpenTSDB port accepts, then create the database.

        The listener itself creates its database only with its first write; made here, a query
        before any put finds it (empty) instead of failing with "database not found".
        """
        binary = influxd_binary()
        self.workdir = Path(tempfile.mkdtemp(prefix="esiprov-influxdb-"))
        self.http_port, self.opentsdb_port, self.rpc_port = free_port(), free_port(), free_port()
        config = self.workdir / "influxdb.conf"
        config.write_text(self.config())
        # INFLUXDB_* variables override the config file; none of the caller's may leak in
        self._launch("influxd", [binary, "-config", str(config)], self._answers, timeout,
                     env={"INFLUXDB_CONFIG_PATH": str(config)})
        self._post_query(f'CREATE DATABASE "{self.database}"')
        return self

    def _answers(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/ping", timeout=HTTP_TIMEOUT) as answer:
            if answer.status != 204:
                return False
        return tcp_open("127.0.0.1", self.opentsdb_port)

    def _post_query(self, statement: str, database: str = "") -> None:
        """A statement that changes something: InfluxDB takes those only by POST."""
        body = urllib.parse.urlencode({"q": statement, **({"db": database} if database else {})}).encode()
        with urllib.request.urlopen(f"{self.url}/query", data=body, timeout=HTTP_TIMEOUT) as answer:
            reply = json.load(answer)
        if "error" in reply or "error" in (reply.get("results") or [{}])[0]:
            raise ServiceError(f"InfluxQL {statement!r}: {reply}")

    def drop(self, measurement: str) -> None:
        """Delete every point of ``measurement``: a test starts from an empty series set."""
        self._post_query(f'DROP MEASUREMENT "{measurement}"', self.database)

    def query(self, statement: str, database: str | None = None) -> list[dict[str, Any]]:
        """Run one InfluxQL statement; every series of its answer as ``{"name", "tags", "columns", "values"}``.

        Times come back as epoch seconds. An error InfluxDB reports is a ServiceError.
        """
        params = {"q": statement, "epoch": "s"}
        db = self.database if database is None else database
        if db:
            params["db"] = db
        with urllib.request.urlopen(f"{self.url}/query?{urllib.parse.urlencode(params)}",
                                    timeout=HTTP_TIMEOUT) as answer:
            reply = json.load(answer)
        results = reply.get("results") or [{}]
        if "error" in reply or "error" in results[0]:
            raise ServiceError(f"InfluxQL {statement!r}: {reply.get('error') or results[0].get('error')}")
        return list(results[0].get("series", []))

    def rows(self, statement: str, database: str | None = None) -> list[list[Any]]:
        """The values of every series of ``statement``'s answer, one list per row."""
        return [row for series in self.query(statement, database) for row in series.get("values", [])]
