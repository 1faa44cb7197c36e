"""A private Redis on a free loopback port: no persistence, nothing shared with the system Redis."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from esiprov.devenv.process import LocalServer, ServiceError, free_port


class RedisServer(LocalServer):
    """``with RedisServer() as r:`` gives a Redis answering PING at ``r.url``."""

    def __init__(self, requirepass: str | None = None, log_dir: Path | None = None) -> None:
        super().__init__(log_dir)
        self.requirepass = requirepass
        self.port = 0

    @property
    def url(self) -> str:
        """Broker/backend URL; it carries the password when one is set, so never log it."""
        auth = f":{self.requirepass}@" if self.requirepass else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A client that fails at once: redis-py 8 otherwise retries refused or failed
        connections (AuthenticationError included) with backoff for ~4 s."""
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.requirepass,
                           socket_timeout=1.0, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0))

    def start(self, timeout: float = 15.0) -> "RedisServer":
        """Start redis-server and wait until it answers PING; on failure clean up and raise ServiceError."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceError("redis-server not found: run `make deps` (Debian redis-server)")
        self.workdir = Path(tempfile.mkdtemp(prefix="esiprov-redis-"))
        self.port = free_port()
        # A config file (in a 0700 dir) rather than argv keeps requirepass out of `ps`.
        config = self.workdir / "redis.conf"
        config.write_text(f"port {self.port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\n"
                          f"dir {self.workdir}\ndaemonize no\n"
                          + (f"requirepass {self.requirepass}\n" if self.requirepass else ""))
        argv = [binary, str(config)]
        return self._launch("redis", argv, self._pong, timeout)

    def _pong(self) -> bool:
        with self.client() as client:
            return client.ping()
