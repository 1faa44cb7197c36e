"""A private vhost on the machine's RabbitMQ (127.0.0.1:5672, guest/guest), deleted afterwards.

RabbitMQ is a system service here (the machine starts it, and .ci/run starts it
when it is not running), not a child process as etcd and Redis are: a node of
our own would need its own Erlang distribution name and seconds to boot. A vhost
isolates just as well (its own exchanges, queues and messages), and deleting it
removes everything a test left in it, unacked messages and countdowns included.

The guest user may only log in from loopback, so the URL names 127.0.0.1.
Vhosts are managed with ``rabbitmqctl``, which needs the node's Erlang cookie:
run as root (as CI does) or as the rabbitmq user.
"""
from __future__ import annotations

import shutil
import subprocess
import urllib.parse
import uuid

import kombu

from esiprov.devenv.process import ServiceError, tcp_open

HOST, PORT = "127.0.0.1", 5672
USER = PASSWORD = "guest"
#: the prefix of every vhost made here: one left by a killed run is easy to find (``rabbitmqctl list_vhosts``)
PREFIX = "esiprov-"
#: seconds for one rabbitmqctl call (each boots a small Erlang VM: about 1 s)
CTL_TIMEOUT = 60.0


def rabbitmqctl(*args: str) -> str:
    """Run ``rabbitmqctl -q ARGS``; its output, or ServiceError with its own message."""
    binary = shutil.which("rabbitmqctl") or shutil.which("rabbitmqctl", path="/usr/sbin:/sbin")
    if binary is None:
        raise ServiceError("rabbitmqctl not found: run `make deps` (Debian rabbitmq-server)")
    try:
        done = subprocess.run([binary, "-q", *args], capture_output=True, text=True, timeout=CTL_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ServiceError(f"rabbitmqctl {args[0]} did not answer in {CTL_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        raise ServiceError(f"rabbitmqctl {args[0]} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}")
    return done.stdout


class RabbitVhost:
    """``with RabbitVhost() as vhost:`` gives a vhost guest may use, at ``vhost.url``."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or f"{PREFIX}{uuid.uuid4().hex[:12]}"
        self._created = False

    @property
    def url(self) -> str:
        """The broker URL of this vhost (it carries guest's well-known password)."""
        return f"amqp://{USER}:{PASSWORD}@{HOST}:{PORT}/{urllib.parse.quote(self.name, safe='')}"

    def start(self) -> "RabbitVhost":
        """Add the vhost, give guest every permission on it and check that an AMQP login works."""
        if not tcp_open(HOST, PORT):
            raise ServiceError(f"RabbitMQ is not listening on {HOST}:{PORT}: start it with "
                               "`rabbitmq-server -detached` (.ci/run does)")
        rabbitmqctl("add_vhost", self.name)
        self._created = True
        try:
            rabbitmqctl("set_permissions", "-p", self.name, USER, ".*", ".*", ".*")
            self._login()
        except BaseException:
            self.stop()
            raise
        return self

    def _login(self) -> None:
        """One AMQP connection to the vhost, so a refused login shows here and not in a worker's log."""
        with kombu.Connection(self.url, connect_timeout=5) as connection:
            try:
                connection.ensure_connection(max_retries=1)
            except Exception as exc:  # noqa: BLE001 - any failure to log in means the vhost is unusable
                raise ServiceError(f"cannot log in to vhost {self.name} as {USER}: {exc}") from None

    def stop(self) -> None:
        """Delete the vhost with every exchange, queue and message in it."""
        if self._created:
            self._created = False
            rabbitmqctl("delete_vhost", self.name)

    def __enter__(self) -> "RabbitVhost":
        return self if self._created else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
