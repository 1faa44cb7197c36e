"""Typed configuration, read from the environment in this one place.

Every setting is optional; the defaults run everything on loopback. Secrets
(the Heat token, Keystone password, SNMP communities) live only here, in the
worker process: they are never task arguments, never logged and never written
to etcd.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class KeystoneAuth:
    """The standard OS_* variables, used when no ESIPROV_HEAT_URL is set."""

    auth_url: str
    username: str
    password: str = field(repr=False)
    project_name: str
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"
    region_name: str | None = None


@dataclass(frozen=True)
class Settings:
    etcd_endpoints: tuple[Endpoint, ...] = (Endpoint("127.0.0.1", 2379),)
    broker_url: str = "redis://127.0.0.1:6379/0"
    result_backend: str = "redis://127.0.0.1:6379/0"
    #: Heat API base with a ``{tenant_id}`` placeholder, e.g. http://127.0.0.1:8004/v1/{tenant_id}
    heat_url: str | None = None
    heat_token: str | None = field(default=None, repr=False)
    keystone: KeystoneAuth | None = None
    snmp_port: int = 161
    #: token (as written in templates) -> real community string
    snmp_communities: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: seconds per SNMP request before it counts as unanswered
    snmp_timeout: float = 2.0
    #: seconds between two polls of every monitoring target
    monitor_interval: float = 60.0
    #: seconds between two checks of a stack that is still building
    heat_poll_interval: float = 1.0
    #: seconds a job may wait (for its stack, or a referenced resource's) before it fails
    wait_timeout: float = 900.0

    def community(self, token: str) -> str:
        """The real community for a template token; an unmapped token is the community itself."""
        return self.snmp_communities.get(token, token)


def _endpoints(raw: str) -> tuple[Endpoint, ...]:
    endpoints = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(f"ESIPROV_ETCD_ENDPOINTS: {item!r} is not host:port")
        endpoints.append(Endpoint(host, int(port)))
    if not endpoints:
        raise ConfigError("ESIPROV_ETCD_ENDPOINTS is empty")
    return tuple(endpoints)


def _communities(raw: str) -> dict[str, str]:
    mapping = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        token, sep, community = item.partition("=")
        if not sep or not token:
            raise ConfigError("ESIPROV_SNMP_COMMUNITIES: entries must be TOKEN=community")
        mapping[token] = community
    return mapping


def _number(env: Mapping[str, str], name: str, default: float, kind: type = float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not a number") from None
    if value <= 0:
        raise ConfigError(f"{name}: must be positive, got {raw!r}")
    return value


def _keystone(env: Mapping[str, str]) -> KeystoneAuth | None:
    if not env.get("OS_AUTH_URL"):
        return None
    return KeystoneAuth(
        auth_url=env["OS_AUTH_URL"],
        username=env.get("OS_USERNAME", ""),
        password=env.get("OS_PASSWORD", ""),
        project_name=env.get("OS_PROJECT_NAME", env.get("OS_TENANT_NAME", "")),
        user_domain_name=env.get("OS_USER_DOMAIN_NAME", "Default"),
        project_domain_name=env.get("OS_PROJECT_DOMAIN_NAME", "Default"),
        region_name=env.get("OS_REGION_NAME") or None,
    )


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from ESIPROV_* (and OS_*) variables; raise ConfigError naming a bad one."""
    env = os.environ if env is None else env
    broker = env.get("ESIPROV_BROKER_URL") or Settings.broker_url
    heat_url = env.get("ESIPROV_HEAT_URL") or None
    if heat_url and not heat_url.startswith(("http://", "https://")):
        raise ConfigError(f"ESIPROV_HEAT_URL: {heat_url!r} is not an http(s) URL")
    return Settings(
        etcd_endpoints=_endpoints(env.get("ESIPROV_ETCD_ENDPOINTS", "127.0.0.1:2379")),
        broker_url=broker,
        result_backend=env.get("ESIPROV_RESULT_BACKEND") or broker,
        heat_url=heat_url,
        heat_token=env.get("ESIPROV_HEAT_TOKEN") or None,
        keystone=_keystone(env),
        snmp_port=int(_number(env, "ESIPROV_SNMP_PORT", 161, int)),
        snmp_communities=_communities(env.get("ESIPROV_SNMP_COMMUNITIES", "")),
        snmp_timeout=_number(env, "ESIPROV_SNMP_TIMEOUT", 2.0),
        monitor_interval=_number(env, "ESIPROV_MONITOR_INTERVAL", 60.0),
        heat_poll_interval=_number(env, "ESIPROV_HEAT_POLL_INTERVAL", 1.0),
        wait_timeout=_number(env, "ESIPROV_WAIT_TIMEOUT", 900.0),
    )


_current: Settings | None = None


def current() -> Settings:
    """The process's settings, read once from the environment."""
    global _current
    if _current is None:
        _current = from_env()
    return _current
