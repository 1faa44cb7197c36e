"""amqps:// as esiprov sets it up: RabbitMQ's certificate and host name are checked unless the URL says not to.

The machine's RabbitMQ speaks plain AMQP, so a small TLS front terminates TLS
for it, with a certificate of a throwaway CA (for 127.0.0.1 and localhost), and
requires a client certificate. Each connection is made as a worker makes it:
``tasks.app`` in a process of its own, configured by celeryconfig from ESIPROV_*
alone, so the options reach py-amqp through celeryconfig's ``broker_use_ssl``.
"""
from __future__ import annotations

import select
import socket
import ssl
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path
from typing import Iterator

import pytest

from esiprov.devenv.certs import CertificateAuthority, TlsFiles
from esiprov.devenv.pipeline import ROOT
from esiprov.devenv.rabbitmq import HOST, PORT, RabbitVhost
from tests.fixtures.services import running

#: connects the way a worker does, and prints what happened
CONNECT = """
from tasks import app
try:
    app.connection_for_write().connect()
except Exception as exc:
    print(f"refused: {exc}")
else:
    print("connected")
"""


class TlsFront:
    """TLS on ``host``:``port`` in front of the machine's RabbitMQ: one thread per connection, bytes copied."""

    def __init__(self, host: str, context: ssl.SSLContext) -> None:
        self.context = context
        self._listener = socket.create_server((host, 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            with self.context.wrap_socket(client, server_side=True) as tls, \
                    socket.create_connection((HOST, PORT)) as upstream:
                _relay(tls, upstream)
        except OSError:  # a refused handshake (ssl.SSLError) or a closed peer: the client sees it
            client.close()

    def close(self) -> None:
        self._listener.close()


def _relay(tls: ssl.SSLSocket, plain: socket.socket) -> None:
    """Copy bytes both ways in one thread (an SSL socket must not be read and written from two)."""
    while True:
        readable, _, _ = select.select([tls, plain], [], [], 30)
        if not readable:
            return
        for source in readable:
            data = source.recv(65536)
            while isinstance(source, ssl.SSLSocket) and source.pending():
                data += source.recv(source.pending())
            if not data:
                return
            (plain if source is tls else tls).sendall(data)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("amqps-ca"))


@pytest.fixture(scope="module")
def client_files(ca: CertificateAuthority) -> TlsFiles:
    return ca.issue("esiprov-worker")


def _front(ca: CertificateAuthority, host: str) -> Iterator[TlsFront]:
    server = ca.issue(f"rabbitmq-{host}", server=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(server.ca))
    context.load_cert_chain(str(server.cert), str(server.key))
    context.verify_mode = ssl.CERT_REQUIRED  # the client certificate (ssl_certfile/ssl_keyfile) must come through
    front = TlsFront(host, context)
    yield front
    front.close()


@pytest.fixture(scope="module")
def front(ca: CertificateAuthority) -> Iterator[TlsFront]:
    """The TLS front at 127.0.0.1, a name its certificate holds."""
    yield from _front(ca, "127.0.0.1")


@pytest.fixture(scope="module")
def misnamed_front(ca: CertificateAuthority) -> Iterator[TlsFront]:
    """The same certificate served at 127.0.0.2, a loopback address it does not name."""
    yield from _front(ca, "127.0.0.2")


@pytest.fixture(scope="module")
def vhost() -> Iterator[RabbitVhost]:
    with running(RabbitVhost()) as made:
        yield made


def connect(host: str, port: int, vhost: RabbitVhost, **query: str | Path) -> str:
    """What a worker configured with this amqps:// URL gets: ``connected`` or ``refused: <why>``."""
    url = f"amqps://guest:guest@{host}:{port}/{urllib.parse.quote(vhost.name, safe='')}"
    if query:
        url += f"?{urllib.parse.urlencode(query)}"
    env = {"PATH": "/usr/bin:/bin", "ESIPROV_BROKER_URL": url, "ESIPROV_RESULT_BACKEND": "redis://127.0.0.1:1/0"}
    done = subprocess.run([sys.executable, "-c", CONNECT], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_worker_connects_through_tls_with_the_ca_and_client_certificate_of_the_url(front, vhost, client_files):
    assert connect("127.0.0.1", front.port, vhost, ssl_ca_certs=client_files.ca, ssl_certfile=client_files.cert,
                   ssl_keyfile=client_files.key) == "connected"


def test_a_server_certificate_no_trusted_ca_signed_is_refused_by_default(front, vhost, client_files):
    refused = connect("127.0.0.1", front.port, vhost, ssl_certfile=client_files.cert, ssl_keyfile=client_files.key)
    assert refused.startswith("refused:") and "CERTIFICATE_VERIFY_FAILED" in refused, refused


def test_a_server_certificate_for_another_host_is_refused(misnamed_front, vhost, client_files):
    refused = connect("127.0.0.2", misnamed_front.port, vhost, ssl_ca_certs=client_files.ca,
                      ssl_certfile=client_files.cert, ssl_keyfile=client_files.key)
    assert refused.startswith("refused:") and "mismatch" in refused, refused


def test_ssl_cert_reqs_none_in_the_url_turns_verification_off(misnamed_front, vhost, client_files):
    assert connect("127.0.0.2", misnamed_front.port, vhost, ssl_cert_reqs="none", ssl_certfile=client_files.cert,
                   ssl_keyfile=client_files.key) == "connected"
