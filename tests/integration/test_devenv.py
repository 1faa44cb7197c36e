"""The devenv launchers start real, private services and clean up after themselves."""
from __future__ import annotations

import pyetcd
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from esiprov.devenv.etcd import EtcdServer
from esiprov.devenv.process import ServiceError, tcp_open
from esiprov.devenv.redis import RedisServer


def test_etcd_server_answers_put_and_get_at_its_endpoint(etcd_endpoint: str) -> None:
    host, port = etcd_endpoint.split(":")
    client = pyetcd.client(host, int(port))
    try:
        client.put("/devenv-test/key", "value")
        assert client.get("/devenv-test/key")[0] == b"value"
    finally:
        client.close()


def test_etcd_server_removes_its_data_dir_when_stopped() -> None:
    with EtcdServer() as server:
        workdir = server.workdir
        assert (workdir / "data").is_dir()
    assert not workdir.exists()


def test_a_missing_etcd_binary_is_a_ServiceError_that_says_how_to_fix_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETCD_BIN", "/nonexistent/etcd")
    with pytest.raises(ServiceError, match="ETCD_BIN"):
        EtcdServer().start()


def test_redis_server_runs_on_a_private_port_without_persistence(redis_server: RedisServer) -> None:
    assert redis_server.port != 6379
    with redis_server.client() as client:
        assert client.ping()
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}


def test_redis_server_with_requirepass_refuses_clients_without_it() -> None:
    with RedisServer(requirepass="devenv-secret") as server:
        assert server.url.startswith("redis://:devenv-secret@127.0.0.1:")
        with redis.Redis(host="127.0.0.1", port=server.port, retry=Retry(NoBackoff(), 0)) as anonymous:
            with pytest.raises(redis.AuthenticationError):
                anonymous.ping()


def test_a_server_started_before_its_with_block_is_not_started_twice() -> None:
    server = RedisServer().start()
    port, workdir = server.port, server.workdir
    with server as entered:
        assert entered.port == port and entered.workdir == workdir
    assert not tcp_open("127.0.0.1", port)
    assert not workdir.exists()
