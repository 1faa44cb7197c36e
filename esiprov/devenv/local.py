"""A whole local esiprov on loopback: etcd, Redis, real Heat, emulated switches, worker, watcher.

``make demo`` and the end-to-end tests use it; every process is stopped when
the ``with`` block ends, whatever happened inside.
"""
from __future__ import annotations

import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Iterable, Mapping

from esiprov import templates
from esiprov.devenv.etcd import EtcdServer
from esiprov.devenv.heatserver import HeatServer
from esiprov.devenv.pipeline import start_watcher, start_worker
from esiprov.devenv.process import Service
from esiprov.devenv.redis import RedisServer
from esiprov.devenv.switches import Switch, Switches
from esiprov.settings import from_env
from esiprov.store import Store

#: the community token the shipped monitoring templates name
COMMUNITY_TOKEN = "ESE_NODE_COMMUNITY"
#: the edge routers' token (edge_router, er_physical_interface); locally the emulated switches stand in for them
EDGE_ROUTER_TOKEN = "EDGE_ROUTER_COMMUNITY"
#: the heat token and community are local stand-ins; noauth Heat accepts any token
HEAT_TOKEN = "local-heat-token"


def esiprov_env(etcd: EtcdServer, redis: RedisServer, heat: HeatServer, switches: Switches,
                community: str) -> dict[str, str]:
    """The ESIPROV_* environment that points esiprov at these services."""
    return {
        "ESIPROV_ETCD_ENDPOINTS": etcd.endpoint,
        "ESIPROV_BROKER_URL": redis.url,
        "ESIPROV_HEAT_URL": heat.url,
        "ESIPROV_HEAT_TOKEN": HEAT_TOKEN,
        "ESIPROV_SNMP_PORT": str(switches.port),
        "ESIPROV_SNMP_COMMUNITIES": f"{COMMUNITY_TOKEN}={community},{EDGE_ROUTER_TOKEN}={community}",
        "ESIPROV_SNMP_TIMEOUT": "1",
    }


class LocalDeployment:
    """Start everything, load the shipped templates, run a worker and the watcher."""

    def __init__(self, switches: Iterable[Switch], work_dir: Path | None = None,
                 watcher_env: Mapping[str, str] | None = None) -> None:
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="esiprov-local-"))
        #: variables for the watcher alone (ESIPROV_METRICS_ADDRESS: one port, one watcher)
        self._watcher_env = dict(watcher_env or {})
        self._switches = list(switches)
        self._stack = ExitStack()
        self.env: dict[str, str] = {}
        #: connected by __enter__ (with the shipped templates loaded)
        self.store: Store
        self.worker: Service | None = None
        self.watcher: Service | None = None

    def __enter__(self) -> "LocalDeployment":
        stack = self._stack
        try:
            etcd = stack.enter_context(EtcdServer(log_dir=self.work_dir).start())
            redis = stack.enter_context(RedisServer(log_dir=self.work_dir).start())
            heat = stack.enter_context(HeatServer(self.work_dir / "heat").start())
            switches = stack.enter_context(Switches(self._switches, log_dir=self.work_dir).start())
            self.env = esiprov_env(etcd, redis, heat, switches, self._switches[0].community)
            self.store = Store.connect(from_env(self.env))
            stack.callback(self.store.close)
            templates.save(self.store, *templates.load_dir(templates.SHIPPED))
            self.worker = stack.enter_context(start_worker(self.env, self.work_dir))
            self.watcher = stack.enter_context(start_watcher({**self.env, **self._watcher_env}, self.work_dir))
        except BaseException:
            stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
