"""Typed configuration, read from the environment in this one place.

Every setting is optional; the defaults run everything on loopback. Every value
is checked here, at start (URLs, ports, files), so a mistake stops the command
with a message naming the variable instead of surfacing later in a worker.
Secrets (etcd password, broker password, Heat token, Keystone password, SNMP
communities) live only here, in the process that needs them: they are never
task arguments, never logged (``repr=False``) and never written to etcd. Each
secret variable ``X`` may instead be given as ``X_FILE``, a file holding it.
"""
from __future__ import annotations

import os
import ssl
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from esiprov.errors import Permanent


class ConfigError(Permanent, ValueError):
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
class EtcdTls:
    """PEM files for etcd's client TLS; no ``ca`` means gRPC's default roots."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None


@dataclass(frozen=True)
class Settings:
    etcd_endpoints: tuple[Endpoint, ...] = (Endpoint("127.0.0.1", 2379),)
    #: TLS to etcd (ESIPROV_ETCD_CA/CERT/KEY); None: plain gRPC
    etcd_tls: EtcdTls | None = None
    #: etcd user and password (auth enabled); None: no authentication, or the client certificate's CN
    etcd_user: str | None = None
    etcd_password: str | None = field(default=None, repr=False)
    #: Celery URLs without ssl_* query parameters; they may carry the broker's (Redis or RabbitMQ)
    #: and the result backend's (always Redis) passwords
    broker_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    result_backend: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    #: Celery's broker_use_ssl (redis-py's options for rediss://, py-amqp's for amqps://) and
    #: redis_backend_use_ssl; None: no TLS
    broker_ssl: Mapping[str, Any] | None = None
    result_backend_ssl: Mapping[str, Any] | None = None
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
    #: seconds before a stack that is still building (or a referenced resource) is checked again the
    #: first time; the waits then grow (with the time a stack has been building), up to heat_poll_max
    heat_poll_interval: float = 0.1
    #: longest wait, in seconds, between two checks of a stack that is still building
    heat_poll_max: float = 10.0
    #: seconds a job may wait (for its stack, or a referenced resource's) before it fails
    wait_timeout: float = 900.0
    #: seconds between two periodic reconciles of every resource (celery beat)
    resync_interval: float = 300.0
    #: seconds after which a workflow still in flight is sent again by a reconcile (its broker
    #: messages may be lost: a flushed Redis, a killed worker); steps are idempotent
    resend_after: float = 600.0
    #: consecutive transient failures (Heat or etcd unreachable, Heat 5xx) a step retries before it fails
    retry_attempts: int = 6
    #: upper bound, in seconds, of the exponential backoff (with full jitter) between those retries
    retry_backoff_max: float = 60.0
    #: "text" lines for people, or "json": one object per line for a log pipeline (esiprov.logs)
    log_format: str = "text"
    #: where ``esiprov watch`` serves /metrics and /healthz; None: not served
    metrics_address: Endpoint | None = None
    #: base URL of an OpenTSDB HTTP API (``/api/put`` is appended) that every poll cycle pushes the
    #: ports' traffic counters to (esiprov.tsdb); None: not pushed
    tsdb_url: str | None = None

    @property
    def etcd_login(self) -> tuple[str, str] | None:
        """(user, password) for etcd's authentication; None without (from_env takes both or neither)."""
        if self.etcd_user is None or self.etcd_password is None:
            return None
        return self.etcd_user, self.etcd_password

    def community(self, token: str) -> str:
        """The real community for a template token; an unmapped token is the community itself."""
        return self.snmp_communities.get(token, token)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every configured secret, longest first (a secret that contains another is replaced whole)."""
        passwords = (urllib.parse.urlsplit(url).password for url in (self.broker_url, self.result_backend))
        found = {self.heat_token, self.etcd_password, self.keystone.password if self.keystone else None,
                 *self.snmp_communities.values(), *passwords}
        found |= {urllib.parse.unquote(secret) for secret in found if secret}
        return tuple(sorted(filter(None, found), key=len, reverse=True))

    def redact(self, text: str) -> str:
        """``text`` with every configured secret replaced by ``***``: for any message bound for a log or /state."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def _port(name: str, raw: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(f"{name}: {raw!r} is not a port (1-65535)")
    return int(raw)


#: the URL schemes etcd's own tools take in an endpoint list, and whether each means TLS
ETCD_SCHEMES = {"http": False, "https": True}


def _endpoint(item: str) -> tuple[Endpoint, str | None]:
    """One endpoint, ``host:port`` or ``http(s)://host:port`` as etcdctl takes it, and its scheme (None: bare)."""
    prefix, sep, rest = item.partition("://")
    scheme, rest = (prefix.lower(), rest.removesuffix("/")) if sep else (None, item)
    host, colon, port = rest.rpartition(":")
    if (scheme is not None and scheme not in ETCD_SCHEMES) or not colon or not host or "/" in host or "@" in host:
        raise ConfigError(f"ESIPROV_ETCD_ENDPOINTS: {item!r} is not host:port, http://host:port or https://host:port")
    return Endpoint(host, _port("ESIPROV_ETCD_ENDPOINTS", port)), scheme


def _endpoints(raw: str) -> tuple[tuple[Endpoint, ...], bool | None]:
    """The comma-separated endpoints, and whether their scheme asks for TLS (None: bare host:port, no say).

    One client speaks to the whole cluster with one set of credentials, so the endpoints cannot mix
    http:// and https:// (nor a scheme and none).
    """
    parsed = [_endpoint(item) for item in filter(None, (part.strip() for part in raw.split(",")))]
    if not parsed:
        raise ConfigError("ESIPROV_ETCD_ENDPOINTS is empty")
    schemes = {scheme for _, scheme in parsed}
    if len(schemes) > 1:
        raise ConfigError("ESIPROV_ETCD_ENDPOINTS mixes " + " and ".join(sorted(f"{s}://" if s else "host:port"
                                                                              for s in schemes))
                          + ": one cluster, one form")
    scheme = schemes.pop()
    return tuple(endpoint for endpoint, _ in parsed), None if scheme is None else ETCD_SCHEMES[scheme]


def _listen_address(raw: str | None) -> Endpoint | None:
    """ESIPROV_METRICS_ADDRESS: ``host:port`` (``[v6 address]:port`` for IPv6) to listen on, or None when unset."""
    name = "ESIPROV_METRICS_ADDRESS"
    if not raw:
        return None
    host, sep, port = raw.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or any(c in host for c in "/[] "):
        raise ConfigError(f"{name}: {raw!r} is not host:port (e.g. 127.0.0.1:9465, 0.0.0.0:9465 or [::]:9465)")
    return Endpoint(host, _port(name, port))


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """``name``'s value, or the content of the file ``name_FILE`` names (one trailing newline dropped)."""
    path = env.get(f"{name}_FILE")
    if not path:
        return env.get(name) or None
    if env.get(name):
        raise ConfigError(f"{name} and {name}_FILE are both set; keep one")
    try:
        text = _readable(f"{name}_FILE", path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name}_FILE: cannot read {path}: {exc}") from None
    return text.removesuffix("\n") or None


def _readable(name: str, raw: str) -> Path:
    """A file that exists and this process can read."""
    path = Path(raw)
    if not path.is_file():
        raise ConfigError(f"{name}: {raw} is not a file")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{name}: {raw} is not readable by this process")
    return path


def _pem(name: str, raw: str | None) -> Path | None:
    """A readable PEM file (certificate or key), or None when the variable is unset."""
    if not raw:
        return None
    path = _readable(name, raw)
    try:
        is_pem = b"-----BEGIN " in path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {raw}: {exc}") from None
    if not is_pem:
        raise ConfigError(f"{name}: {raw} is not a PEM file")
    return path


def _etcd_tls(env: Mapping[str, str], secure: bool | None) -> EtcdTls | None:
    """TLS to etcd: on when an endpoint says https:// or when ESIPROV_ETCD_CA/CERT/KEY name a file.

    https:// without files means gRPC's default roots (as etcdctl uses the system's); http:// with
    files is a contradiction, refused rather than guessed: either the files or the scheme is a mistake.
    """
    tls = EtcdTls(*(_pem(f"ESIPROV_ETCD_{part}", env.get(f"ESIPROV_ETCD_{part}")) for part in ("CA", "CERT", "KEY")))
    if (tls.cert is None) != (tls.key is None):
        raise ConfigError("ESIPROV_ETCD_CERT and ESIPROV_ETCD_KEY go together: set both or neither")
    if secure is False and tls != EtcdTls():
        raise ConfigError("ESIPROV_ETCD_ENDPOINTS says http:// (plain) but ESIPROV_ETCD_CA/CERT/KEY ask for TLS: "
                          "use https:// or unset the files")
    return tls if secure or tls != EtcdTls() else None


def _etcd_login(env: Mapping[str, str]) -> tuple[str | None, str | None]:
    user, password = env.get("ESIPROV_ETCD_USER") or None, _secret(env, "ESIPROV_ETCD_PASSWORD")
    if (user is None) != (password is None):
        raise ConfigError("ESIPROV_ETCD_USER and ESIPROV_ETCD_PASSWORD go together: set both or neither")
    return user, password


def _split(name: str, url: str) -> urllib.parse.SplitResult:
    """The URL's parts, its port (when given) checked; messages never repeat the URL, which may hold a password."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ConfigError(f"{name}: the port is not a number in 1-65535")
    return parts


_CERT_REQS = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}
_SSL_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
_REDIS_SCHEMES, _AMQP_SCHEMES = ("redis", "rediss"), ("amqp", "amqps")
#: each plain scheme, and its TLS scheme as a message names it
_TLS_SCHEME = {"redis": "a rediss://", "amqp": "an amqps://"}
_REDIS_FORM = "redis://[:password@]host[:port][/db] or rediss://..."
_AMQP_FORM = "amqp://[user:password@]host[:port][/vhost] or amqps://..."


def _tls_options(name: str, parts: urllib.parse.SplitResult) -> tuple[str, dict[str, Any] | None]:
    """(the URL without ssl_* parameters, its checked ssl_* options or None for a plain scheme).

    The options keep their URL names, ``ssl_cert_reqs`` as an ``ssl`` constant: the
    server certificate is verified unless ``ssl_cert_reqs=none`` says otherwise.
    Other query parameters stay in the URL for Celery.
    """
    query = urllib.parse.parse_qsl(parts.query)
    options = {k: v for k, v in query if k.startswith("ssl_")}
    plain = urllib.parse.urlunsplit(
        parts._replace(query=urllib.parse.urlencode([(k, v) for k, v in query if not k.startswith("ssl_")])))
    if parts.scheme in _TLS_SCHEME:
        if options:
            raise ConfigError(f"{name}: ssl_* parameters need {_TLS_SCHEME[parts.scheme]} URL")
        return plain, None
    unknown = set(options) - {"ssl_cert_reqs", *_SSL_FILES}
    if unknown:
        raise ConfigError(f"{name}: unknown parameter {', '.join(sorted(unknown))}")
    reqs = options.get("ssl_cert_reqs", "required").lower().removeprefix("cert_")
    if reqs not in _CERT_REQS:
        raise ConfigError(f"{name}: ssl_cert_reqs must be required, optional or none")
    checked: dict[str, Any] = {"ssl_cert_reqs": _CERT_REQS[reqs]}
    checked.update({k: str(_pem(f"{name} {k}", options[k])) for k in _SSL_FILES if options.get(k)})
    return plain, checked


def _redis(name: str, url: str) -> tuple[str, dict[str, Any] | None]:
    """(the URL without ssl_* parameters, Celery's ssl options for a rediss:// URL or None).

    Unlike kombu, which silently skips certificate checks for a bare rediss://,
    the server certificate is verified unless ``ssl_cert_reqs=none`` says otherwise.
    """
    parts = _split(name, url)
    if parts.scheme not in _REDIS_SCHEMES or not parts.hostname:
        raise ConfigError(f"{name}: expected {_REDIS_FORM}")
    if parts.path.strip("/") and not parts.path.strip("/").isdigit():
        raise ConfigError(f"{name}: the database ({parts.path}) is not a number")
    return _tls_options(name, parts)


def _amqp(name: str, url: str) -> tuple[str, dict[str, Any] | None]:
    """(the URL without ssl_* parameters, py-amqp's ssl options for an amqps:// URL or None).

    py-amqp takes ssl.wrap_socket's names (cert_reqs, ca_certs, certfile, keyfile).
    Given alone (``ssl=True``) it checks the chain but not the host name, so
    ``server_hostname`` is always set when certificates are verified: that turns
    the host name check (and SNI) on. With ``ssl_cert_reqs=none`` it is left out,
    since Python refuses a host name check without verification.
    """
    parts = _split(name, url)
    if parts.scheme not in _AMQP_SCHEMES or not parts.hostname:
        raise ConfigError(f"{name}: expected {_AMQP_FORM}")
    plain, options = _tls_options(name, parts)
    if options is None:
        return plain, None
    wrap = {key.removeprefix("ssl_"): value for key, value in options.items()}
    if wrap["cert_reqs"] != ssl.CERT_NONE:
        wrap["server_hostname"] = parts.hostname
    return plain, wrap


def _broker(url: str) -> tuple[str, dict[str, Any] | None]:
    """The broker: Redis or RabbitMQ, by the URL's scheme."""
    name = "ESIPROV_BROKER_URL"
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme in _AMQP_SCHEMES:
        return _amqp(name, url)
    if scheme in _REDIS_SCHEMES:
        return _redis(name, url)
    raise ConfigError(f"{name}: expected {_REDIS_FORM}, or {_AMQP_FORM}")


def _result_backend(env: Mapping[str, str], broker: str) -> tuple[str, dict[str, Any] | None]:
    """Results always go to Redis: by default the broker's, so a RabbitMQ broker needs one named."""
    name = "ESIPROV_RESULT_BACKEND"
    url = _secret(env, name)
    if not url and urllib.parse.urlsplit(broker).scheme in _AMQP_SCHEMES:
        raise ConfigError(f"{name} is required with an amqp:// or amqps:// broker (results are kept in Redis): "
                          f"set {_REDIS_FORM}")
    return _redis(name, url or broker)


def _http_url(name: str, url: str) -> urllib.parse.SplitResult:
    parts = _split(name, url)
    if parts.username or parts.password:  # checked first: the message below shows the URL
        raise ConfigError(f"{name}: no credentials in the URL (they would show in logs)")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name}: {url!r} is not an http(s) URL")
    return parts


def _heat(env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(Heat URL, token). ``{tenant_id}`` in the URL's path keeps each stack in its resource's tenant;
    a URL without a token would fail every resource with "no valid authentication", so it stops here."""
    url, token = env.get("ESIPROV_HEAT_URL") or None, _secret(env, "ESIPROV_HEAT_TOKEN")
    if url and "{tenant_id}" not in _http_url("ESIPROV_HEAT_URL", url).path:
        raise ConfigError("ESIPROV_HEAT_URL: the path must contain {tenant_id}, replaced by each "
                          "resource's tenant (e.g. http://heat:8004/v1/{tenant_id})")
    if url and not token:
        raise ConfigError("ESIPROV_HEAT_URL needs ESIPROV_HEAT_TOKEN (or ESIPROV_HEAT_TOKEN_FILE): Heat "
                          "refuses requests without a token")
    return url, token


def _tsdb(env: Mapping[str, str]) -> str | None:
    """ESIPROV_TSDB_URL: an http(s) base URL without credentials, query or fragment (its own path kept,
    for a TSDB behind a proxy), or None when unset."""
    name = "ESIPROV_TSDB_URL"
    url = env.get(name) or None
    if url is None:
        return None
    parts = _http_url(name, url)
    if parts.query or parts.fragment:
        raise ConfigError(f"{name}: give the base URL only (e.g. http://opentsdb:4242); /api/put is appended")
    return url.rstrip("/")


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


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (the first when unset)."""
    value = (env.get(name) or choices[0]).lower()
    if value not in choices:
        raise ConfigError(f"{name}: {env.get(name)!r} is not one of {', '.join(choices)}")
    return value


def _keystone(env: Mapping[str, str]) -> KeystoneAuth | None:
    if not env.get("OS_AUTH_URL"):
        return None
    _http_url("OS_AUTH_URL", env["OS_AUTH_URL"])
    return KeystoneAuth(
        auth_url=env["OS_AUTH_URL"],
        username=env.get("OS_USERNAME", ""),
        password=_secret(env, "OS_PASSWORD") or "",
        project_name=env.get("OS_PROJECT_NAME", env.get("OS_TENANT_NAME", "")),
        user_domain_name=env.get("OS_USER_DOMAIN_NAME", "Default"),
        project_domain_name=env.get("OS_PROJECT_DOMAIN_NAME", "Default"),
        region_name=env.get("OS_REGION_NAME") or None,
    )


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from ESIPROV_* (and OS_*) variables; raise ConfigError naming a bad one."""
    env = os.environ if env is None else env
    broker = _secret(env, "ESIPROV_BROKER_URL") or Settings.broker_url
    broker_url, broker_ssl = _broker(broker)
    backend_url, backend_ssl = _result_backend(env, broker)
    etcd_user, etcd_password = _etcd_login(env)
    etcd_endpoints, etcd_secure = _endpoints(env.get("ESIPROV_ETCD_ENDPOINTS", "127.0.0.1:2379"))
    heat_url, heat_token = _heat(env)
    return Settings(
        etcd_endpoints=etcd_endpoints,
        etcd_tls=_etcd_tls(env, etcd_secure),
        etcd_user=etcd_user,
        etcd_password=etcd_password,
        broker_url=broker_url,
        result_backend=backend_url,
        broker_ssl=broker_ssl,
        result_backend_ssl=backend_ssl,
        heat_url=heat_url,
        heat_token=heat_token,
        keystone=_keystone(env),
        snmp_port=_port("ESIPROV_SNMP_PORT", env.get("ESIPROV_SNMP_PORT") or str(Settings.snmp_port)),
        snmp_communities=_communities(_secret(env, "ESIPROV_SNMP_COMMUNITIES") or ""),
        snmp_timeout=_number(env, "ESIPROV_SNMP_TIMEOUT", Settings.snmp_timeout),
        monitor_interval=_number(env, "ESIPROV_MONITOR_INTERVAL", Settings.monitor_interval),
        heat_poll_interval=_number(env, "ESIPROV_HEAT_POLL_INTERVAL", Settings.heat_poll_interval),
        heat_poll_max=_number(env, "ESIPROV_HEAT_POLL_MAX", Settings.heat_poll_max),
        wait_timeout=_number(env, "ESIPROV_WAIT_TIMEOUT", Settings.wait_timeout),
        resync_interval=_number(env, "ESIPROV_RESYNC_INTERVAL", Settings.resync_interval),
        resend_after=_number(env, "ESIPROV_RESEND_AFTER", Settings.resend_after),
        retry_attempts=int(_number(env, "ESIPROV_RETRY_ATTEMPTS", Settings.retry_attempts, int)),
        retry_backoff_max=_number(env, "ESIPROV_RETRY_BACKOFF_MAX", Settings.retry_backoff_max),
        log_format=_choice(env, "ESIPROV_LOG_FORMAT", ("text", "json")),
        metrics_address=_listen_address(env.get("ESIPROV_METRICS_ADDRESS")),
        tsdb_url=_tsdb(env),
    )


_current: Settings | None = None


def current() -> Settings:
    """The process's settings, read once from the environment."""
    global _current
    if _current is None:
        _current = from_env()
    return _current
