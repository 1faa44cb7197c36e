"""A private Redis on a free loopback port: no persistence, nothing shared with the system Redis.

With a password it requires AUTH; with a CertificateAuthority it speaks TLS only
and requires client certificates, as a broker shared with other services would.
"""
from __future__ import annotations

import shutil
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from esiprov.devenv.certs import CertificateAuthority, TlsFiles
from esiprov.devenv.process import LocalServer, ServiceError, free_port


class RedisServer(LocalServer):
    """``with RedisServer() as r:`` gives a Redis answering PING at ``r.url``."""

    def __init__(self, requirepass: str | None = None, log_dir: Path | None = None,
                 tls: CertificateAuthority | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(log_dir)
        self.host = host  # the address it binds and clients reach it on
        self.requirepass = requirepass
        self.tls = tls
        self.client_tls: TlsFiles | None = None  # the client certificate ``url`` and ``client()`` use
        self.port = 0

    @property
    def url(self) -> str:
        """Broker/backend URL (rediss:// with its ssl_* files under TLS); it carries the password, so never log it."""
        return self.db_url(0)

    def db_url(self, db: int) -> str:
        """``url`` for database ``db``: a second user of this server (a result backend beside another
        broker) keeps its keys apart."""
        auth = f":{self.requirepass}@" if self.requirepass else ""
        if self.client_tls is None:
            return f"redis://{auth}{self.host}:{self.port}/{db}"
        files = self.client_tls
        query = urllib.parse.urlencode({"ssl_cert_reqs": "required", "ssl_ca_certs": files.ca,
                                        "ssl_certfile": files.cert, "ssl_keyfile": files.key})
        return f"rediss://{auth}{self.host}:{self.port}/{db}?{query}"

    def client(self) -> redis.Redis:
        """A client that fails at once: redis-py 8 otherwise retries refused or failed
        connections (AuthenticationError included) with backoff for ~4 s."""
        files = self.client_tls
        tls: dict[str, Any] = {} if files is None else {"ssl": True, "ssl_ca_certs": str(files.ca),
                                        "ssl_certfile": str(files.cert), "ssl_keyfile": str(files.key)}
        return redis.Redis(host=self.host, port=self.port, password=self.requirepass,
                           socket_timeout=1.0, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0), **tls)

    def start(self, timeout: float = 15.0) -> "RedisServer":
        """Start redis-server and wait until it answers PING; on failure clean up and raise ServiceError."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceError("redis-server not found: run `make deps` (Debian redis-server)")
        self.workdir = Path(tempfile.mkdtemp(prefix="esiprov-redis-"))
        self.port = free_port(self.host)
        # A config file (in a 0700 dir) rather than argv keeps requirepass out of `ps`.
        config = self.workdir / "redis.conf"
        config.write_text(f"bind {self.host}\nsave \"\"\nappendonly no\ndir {self.workdir}\ndaemonize no\n"
                          + (f"requirepass {self.requirepass}\n" if self.requirepass else "")
                          # protected mode refuses every non-loopback client of a server without a password
                          + ("" if self.host.startswith("127.") else "protected-mode no\n")
                          + self._listen())
        argv = [binary, str(config)]
        return self._launch("redis", argv, self._pong, timeout)

    def _listen(self) -> str:
        """The port lines of the config: plain, or TLS only with client certificates required."""
        if self.tls is None:
            return f"port {self.port}\n"
        server = self.tls.issue("redis-server", server=True)
        self.client_tls = self.tls.issue("redis-client")
        return (f"port 0\ntls-port {self.port}\ntls-cert-file {server.cert}\ntls-key-file {server.key}\n"
                f"tls-ca-cert-file {server.ca}\ntls-auth-clients yes\n")

    def _pong(self) -> bool:
        with self.client() as client:
            return client.ping()
