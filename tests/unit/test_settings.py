"""esiprov.settings: every value checked at start, with a message naming the variable, and no secret shown."""
from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from esiprov.settings import ConfigError, Endpoint, EtcdTls, Settings, from_env

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
SECRET = "s3cret-0123"


@pytest.fixture
def pem(tmp_path: Path) -> Path:
    """A file that looks like PEM (settings checks the form, TLS checks the content)."""
    path = tmp_path / "ca.pem"
    path.write_text(PEM)
    return path


def rejected(env: dict[str, str], match: str) -> ConfigError:
    with pytest.raises(ConfigError, match=match) as error:
        from_env(env)
    return error.value


def test_an_empty_environment_gives_plain_loopback_defaults() -> None:
    settings = from_env({})
    assert settings.etcd_endpoints == (Endpoint("127.0.0.1", 2379),)
    assert (settings.etcd_tls, settings.etcd_user, settings.etcd_password) == (None, None, None)
    assert settings.broker_url == settings.result_backend == "redis://127.0.0.1:6379/0"
    assert (settings.broker_ssl, settings.result_backend_ssl) == (None, None)


@pytest.mark.parametrize("endpoints", ["127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:x", "127.0.0.1",
                                       "http://127.0.0.1", "unix://127.0.0.1:2379", "grpc://127.0.0.1:2379",
                                       "http://127.0.0.1:2379/v3", "https://user@127.0.0.1:2379", "http://:2379",
                                       "https://"])
def test_an_etcd_endpoint_that_is_not_host_and_port_or_an_http_url_is_rejected_in_one_line(endpoints: str) -> None:
    error = rejected({"ESIPROV_ETCD_ENDPOINTS": endpoints}, "^ESIPROV_ETCD_ENDPOINTS")
    assert "\n" not in str(error)


def test_etcd_endpoints_take_the_forms_etcdctl_takes_several_comma_separated() -> None:
    cluster = [Endpoint("etcd-1.mgmt", 2379), Endpoint("10.0.0.2", 2379), Endpoint("etcd-3.mgmt", 12379)]
    for raw in ("etcd-1.mgmt:2379,10.0.0.2:2379,etcd-3.mgmt:12379",
                "http://etcd-1.mgmt:2379, http://10.0.0.2:2379/ ,HTTP://etcd-3.mgmt:12379",
                "https://etcd-1.mgmt:2379,https://10.0.0.2:2379,https://etcd-3.mgmt:12379,"):
        assert list(from_env({"ESIPROV_ETCD_ENDPOINTS": raw}).etcd_endpoints) == cluster, raw


def test_http_endpoints_are_plain_and_https_ones_are_tls_with_default_roots_unless_a_ca_is_given(pem: Path) -> None:
    assert from_env({"ESIPROV_ETCD_ENDPOINTS": "http://10.0.0.1:2379"}).etcd_tls is None
    assert from_env({"ESIPROV_ETCD_ENDPOINTS": "https://10.0.0.1:2379"}).etcd_tls == EtcdTls()
    with_ca = {"ESIPROV_ETCD_ENDPOINTS": "https://10.0.0.1:2379", "ESIPROV_ETCD_CA": str(pem)}
    assert from_env(with_ca).etcd_tls == EtcdTls(ca=pem)


def test_bare_endpoints_are_tls_exactly_when_tls_files_are_given(pem: Path) -> None:
    assert from_env({"ESIPROV_ETCD_ENDPOINTS": "10.0.0.1:2379"}).etcd_tls is None
    assert from_env({"ESIPROV_ETCD_ENDPOINTS": "10.0.0.1:2379", "ESIPROV_ETCD_CA": str(pem)}).etcd_tls == EtcdTls(ca=pem)


def test_http_endpoints_with_tls_files_are_a_contradiction_refused_in_one_line(pem: Path) -> None:
    error = rejected({"ESIPROV_ETCD_ENDPOINTS": "http://10.0.0.1:2379", "ESIPROV_ETCD_CA": str(pem)},
                     "^ESIPROV_ETCD_ENDPOINTS says http://")
    assert "\n" not in str(error)


@pytest.mark.parametrize("endpoints", ["http://a:2379,https://b:2379", "https://a:2379,b:2379"])
def test_endpoints_that_mix_schemes_are_refused_naming_the_variable(endpoints: str) -> None:
    rejected({"ESIPROV_ETCD_ENDPOINTS": endpoints}, "^ESIPROV_ETCD_ENDPOINTS mixes")


def test_etcd_tls_files_are_taken_when_they_exist_and_look_like_pem(pem: Path) -> None:
    env = {"ESIPROV_ETCD_CA": str(pem), "ESIPROV_ETCD_CERT": str(pem), "ESIPROV_ETCD_KEY": str(pem)}
    assert from_env(env).etcd_tls == EtcdTls(pem, pem, pem)
    assert from_env({"ESIPROV_ETCD_CA": str(pem)}).etcd_tls == EtcdTls(ca=pem)


@pytest.mark.parametrize("variable", ["ESIPROV_ETCD_CA", "ESIPROV_ETCD_CERT", "ESIPROV_ETCD_KEY"])
def test_a_missing_etcd_tls_file_is_named_with_its_variable(tmp_path: Path, pem: Path, variable: str) -> None:
    env = {"ESIPROV_ETCD_CERT": str(pem), "ESIPROV_ETCD_KEY": str(pem), variable: str(tmp_path / "nope.pem")}
    rejected(env, f"{variable}: .*nope.pem is not a file")


def test_a_directory_or_a_file_that_is_not_pem_is_rejected(tmp_path: Path) -> None:
    rejected({"ESIPROV_ETCD_CA": str(tmp_path)}, "ESIPROV_ETCD_CA: .* is not a file")
    (tmp_path / "ca.der").write_bytes(b"\x30\x82\x01\x0a")
    rejected({"ESIPROV_ETCD_CA": str(tmp_path / "ca.der")}, "ESIPROV_ETCD_CA: .* is not a PEM file")


def test_a_client_certificate_without_its_key_is_rejected(pem: Path) -> None:
    rejected({"ESIPROV_ETCD_CERT": str(pem)}, "ESIPROV_ETCD_CERT and ESIPROV_ETCD_KEY go together")


def test_an_etcd_user_needs_a_password_and_a_password_a_user() -> None:
    rejected({"ESIPROV_ETCD_USER": "esiprov"}, "ESIPROV_ETCD_USER and ESIPROV_ETCD_PASSWORD go together")
    error = rejected({"ESIPROV_ETCD_PASSWORD": SECRET}, "go together")
    assert SECRET not in str(error)


def test_a_secret_can_come_from_a_file_named_by_its_FILE_variable(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(SECRET + "\n")
    settings = from_env({"ESIPROV_ETCD_USER": "esiprov", "ESIPROV_ETCD_PASSWORD_FILE": str(tmp_path / "pw"),
                         "ESIPROV_HEAT_TOKEN_FILE": str(tmp_path / "pw")})
    assert (settings.etcd_user, settings.etcd_password, settings.heat_token) == ("esiprov", SECRET, SECRET)


def test_a_secret_given_twice_or_from_a_missing_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(SECRET)
    rejected({"ESIPROV_HEAT_TOKEN": "x", "ESIPROV_HEAT_TOKEN_FILE": str(tmp_path / "pw")},
             "ESIPROV_HEAT_TOKEN and ESIPROV_HEAT_TOKEN_FILE are both set")
    rejected({"ESIPROV_HEAT_TOKEN_FILE": str(tmp_path / "nope")}, "ESIPROV_HEAT_TOKEN_FILE: .* is not a file")


def test_a_rediss_url_gives_verified_tls_options_and_a_url_without_them(pem: Path) -> None:
    url = f"rediss://:{SECRET}@redis.example:6380/2?ssl_ca_certs={pem}&ssl_certfile={pem}&ssl_keyfile={pem}"
    settings = from_env({"ESIPROV_BROKER_URL": url})
    assert settings.broker_url == settings.result_backend == f"rediss://:{SECRET}@redis.example:6380/2"
    assert settings.broker_ssl == settings.result_backend_ssl == {
        "ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": str(pem), "ssl_certfile": str(pem),
        "ssl_keyfile": str(pem)}


def test_a_bare_rediss_url_still_verifies_the_server_certificate_unless_told_not_to() -> None:
    assert from_env({"ESIPROV_BROKER_URL": "rediss://h:6380/0"}).broker_ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    none = from_env({"ESIPROV_BROKER_URL": "rediss://h:6380/0?ssl_cert_reqs=CERT_NONE"})
    assert none.broker_ssl == {"ssl_cert_reqs": ssl.CERT_NONE}


def test_the_result_backend_has_its_own_tls_options() -> None:
    settings = from_env({"ESIPROV_BROKER_URL": "redis://h:6379/0", "ESIPROV_RESULT_BACKEND": "rediss://h:6380/1"})
    assert (settings.broker_ssl, settings.result_backend_ssl) == (None, {"ssl_cert_reqs": ssl.CERT_REQUIRED})


#: a result backend, which an amqp broker needs
BACKEND = {"ESIPROV_RESULT_BACKEND": "redis://r:6379/1"}


def test_an_amqp_url_is_taken_as_it_is_with_no_tls_and_the_result_backend_given() -> None:
    url = f"amqp://esiprov:{SECRET}@rabbit.example:5672/esiprov?heartbeat=30"
    settings = from_env({"ESIPROV_BROKER_URL": url, **BACKEND})
    assert (settings.broker_url, settings.broker_ssl) == (url, None)
    assert (settings.result_backend, settings.result_backend_ssl) == ("redis://r:6379/1", None)


def test_a_bare_amqps_url_verifies_the_certificate_and_the_host_name() -> None:
    settings = from_env({"ESIPROV_BROKER_URL": f"amqps://esiprov:{SECRET}@rabbit.example/esiprov", **BACKEND})
    assert settings.broker_url == f"amqps://esiprov:{SECRET}@rabbit.example/esiprov"
    assert settings.broker_ssl == {"cert_reqs": ssl.CERT_REQUIRED, "server_hostname": "rabbit.example"}


def test_an_amqps_url_gives_py_amqps_ssl_options_and_a_url_without_them(pem: Path) -> None:
    url = f"amqps://u:{SECRET}@rabbit.example:5671/v?ssl_ca_certs={pem}&ssl_certfile={pem}&ssl_keyfile={pem}&x=1"
    settings = from_env({"ESIPROV_BROKER_URL": url, **BACKEND})
    assert settings.broker_url == f"amqps://u:{SECRET}@rabbit.example:5671/v?x=1"
    assert settings.broker_ssl == {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": str(pem), "certfile": str(pem),
                                   "keyfile": str(pem), "server_hostname": "rabbit.example"}


def test_amqps_skips_verification_and_the_host_name_check_only_when_the_url_says_so() -> None:
    settings = from_env({"ESIPROV_BROKER_URL": "amqps://rabbit.example/v?ssl_cert_reqs=none", **BACKEND})
    assert settings.broker_ssl == {"cert_reqs": ssl.CERT_NONE}
    optional = from_env({"ESIPROV_BROKER_URL": "amqps://rabbit.example/v?ssl_cert_reqs=optional", **BACKEND})
    assert optional.broker_ssl == {"cert_reqs": ssl.CERT_OPTIONAL, "server_hostname": "rabbit.example"}


def test_ssl_options_are_checked_alike_for_rediss_and_amqps(tmp_path: Path) -> None:
    for scheme in ("rediss", "amqps"):
        env = {"ESIPROV_BROKER_URL": f"{scheme}://h/0?ssl_ca_certs={tmp_path / 'nope.pem'}", **BACKEND}
        rejected(env, "ESIPROV_BROKER_URL ssl_ca_certs: .*nope.pem is not a file")


def test_an_amqp_broker_needs_a_redis_result_backend_named_in_one_line() -> None:
    error = rejected({"ESIPROV_BROKER_URL": f"amqp://u:{SECRET}@h:5672/v"},
                     "ESIPROV_RESULT_BACKEND is required with an amqp:// or amqps:// broker")
    assert SECRET not in str(error) and "\n" not in str(error)
    rejected({"ESIPROV_BROKER_URL": "amqp://h/v", "ESIPROV_RESULT_BACKEND": f"amqp://u:{SECRET}@h/v"},
             "ESIPROV_RESULT_BACKEND: expected redis://")
    rejected({"ESIPROV_BROKER_URL": "amqp://h/v", "ESIPROV_RESULT_BACKEND": "rpc://"},
             "ESIPROV_RESULT_BACKEND: expected redis://")


def test_the_amqp_password_is_a_secret_that_redact_replaces() -> None:
    settings = from_env({"ESIPROV_BROKER_URL": "amqps://esiprov:r%40bbit-pw@h/v", **BACKEND})
    assert {"r%40bbit-pw", "r@bbit-pw"} <= set(settings.secrets)
    assert settings.redact("login r@bbit-pw refused for esiprov") == "login *** refused for esiprov"
    assert "bbit-pw" not in repr(settings)


@pytest.mark.parametrize("url, match", [
    (f"http://u:{SECRET}@h:5672//", "expected redis://.*, or amqp://"),
    (f"amqp://u:{SECRET}@/v", "expected amqp://"),
    (f"amqp://u:{SECRET}@h:0/v", "the port is not a number in 1-65535"),
    (f"amqp://u:{SECRET}@h/v?ssl_cert_reqs=required", "ssl_\\* parameters need an amqps:// URL"),
    (f"amqps://u:{SECRET}@h/v?ssl_cert_reqs=maybe", "ssl_cert_reqs must be required, optional or none"),
    (f"amqps://u:{SECRET}@h/v?ssl_server_hostname=x", "unknown parameter ssl_server_hostname"),
    (f"redis://:{SECRET}@h:99999/0", "the port is not a number in 1-65535"),
    (f"redis://:{SECRET}@h:6379/zero", "the database .* is not a number"),
    (f"redis://:{SECRET}@h:6379/0?ssl_cert_reqs=required", "ssl_\\* parameters need a rediss:// URL"),
    (f"rediss://:{SECRET}@h:6379/0?ssl_cert_reqs=maybe", "ssl_cert_reqs must be required, optional or none"),
    (f"rediss://:{SECRET}@h:6379/0?ssl_ca=/x", "unknown parameter ssl_ca"),
    (f"rediss://:{SECRET}@h:6379/0?ssl_ca_certs=/nope.pem", "ssl_ca_certs: /nope.pem is not a file"),
], ids=["http", "amqp-no-host", "amqp-port", "ssl-on-amqp", "amqps-cert-reqs", "amqps-unknown",
        "port", "db", "ssl-on-redis", "cert-reqs", "unknown", "missing-ca"])
def test_a_bad_broker_url_is_rejected_without_showing_its_password(url: str, match: str) -> None:
    error = rejected({"ESIPROV_BROKER_URL": url}, f"ESIPROV_BROKER_URL.*{match}")
    assert SECRET not in str(error)


@pytest.mark.parametrize("url, match", [
    ("http://127.0.0.1:8004/v1", "must contain {tenant_id}"),
    ("http://{tenant_id}.heat:8004/v1", "must contain {tenant_id}"),
    (f"http://admin:{SECRET}@127.0.0.1:8004/v1/{{tenant_id}}", "no credentials in the URL"),
    ("ftp://127.0.0.1/v1/{tenant_id}", "is not an http\\(s\\) URL"),
    ("http://127.0.0.1:0/v1/{tenant_id}", "the port is not a number"),
], ids=["no-tenant", "tenant-in-host", "credentials", "ftp", "port"])
def test_a_heat_url_must_be_http_with_the_tenant_in_its_path_and_no_credentials(url: str, match: str) -> None:
    error = rejected({"ESIPROV_HEAT_URL": url}, f"ESIPROV_HEAT_URL: .*{match}")
    assert SECRET not in str(error)


def test_a_heat_url_without_a_token_is_refused_at_start() -> None:
    rejected({"ESIPROV_HEAT_URL": "http://127.0.0.1:8004/v1/{tenant_id}"}, "ESIPROV_HEAT_URL needs ESIPROV_HEAT_TOKEN")


def test_a_keystone_url_must_be_http() -> None:
    rejected({"OS_AUTH_URL": "keystone:5000"}, "OS_AUTH_URL: .* is not an http")


@pytest.mark.parametrize("port", ["0", "65536", "snmp"])
def test_an_snmp_port_outside_1_to_65535_is_rejected(port: str) -> None:
    rejected({"ESIPROV_SNMP_PORT": port}, "ESIPROV_SNMP_PORT")


def test_no_secret_shows_in_the_settings_repr(tmp_path: Path) -> None:
    settings = from_env({
        "ESIPROV_ETCD_USER": "esiprov", "ESIPROV_ETCD_PASSWORD": f"etcd-{SECRET}",
        "ESIPROV_BROKER_URL": f"redis://:redis-{SECRET}@h:6379/0", "ESIPROV_HEAT_TOKEN": f"heat-{SECRET}",
        "ESIPROV_HEAT_URL": "http://h:8004/v1/{tenant_id}", "ESIPROV_SNMP_COMMUNITIES": f"TOKEN=snmp-{SECRET}",
        "OS_AUTH_URL": "http://k:5000/v3", "OS_PASSWORD": f"os-{SECRET}"})
    assert "esiprov" in repr(settings)
    assert SECRET not in repr(settings)


def test_settings_built_in_code_default_to_no_tls_and_no_login() -> None:
    assert (Settings().etcd_tls, Settings().etcd_user, Settings().broker_ssl) == (None, None, None)


def test_redact_replaces_every_configured_secret_and_nothing_else() -> None:
    settings = from_env({
        "ESIPROV_ETCD_USER": "esiprov", "ESIPROV_ETCD_PASSWORD": "etcd-pw",
        "ESIPROV_BROKER_URL": "redis://:br%40ker@h:6379/0", "ESIPROV_RESULT_BACKEND": "redis://:backend-pw@h:6379/1",
        "ESIPROV_HEAT_TOKEN": "heat-token", "ESIPROV_SNMP_COMMUNITIES": "TOKEN=snmp-community,OTHER=snmp",
        "OS_AUTH_URL": "http://k:5000/v3", "OS_PASSWORD": "os-pw"})
    text = "etcd-pw br%40ker br@ker backend-pw heat-token snmp-community snmp os-pw esiprov TOKEN"
    assert settings.redact(text) == "*** *** *** *** *** *** *** *** esiprov TOKEN"
    assert Settings().redact("nothing to hide") == "nothing to hide"


def test_metrics_are_not_served_unless_an_address_is_set() -> None:
    assert from_env({}).metrics_address is None
    assert from_env({"ESIPROV_METRICS_ADDRESS": ""}).metrics_address is None


@pytest.mark.parametrize("raw, host, port", [("127.0.0.1:9465", "127.0.0.1", 9465), ("0.0.0.0:9465", "0.0.0.0", 9465),
                                             ("localhost:80", "localhost", 80), ("[::]:9465", "::", 9465)])
def test_a_metrics_address_is_host_and_port_with_ipv6_in_brackets(raw: str, host: str, port: int) -> None:
    assert from_env({"ESIPROV_METRICS_ADDRESS": raw}).metrics_address == Endpoint(host, port)


@pytest.mark.parametrize("raw", ["9465", ":9465", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:http",
                                 "http://127.0.0.1:9465", "[::1:9465"])
def test_a_metrics_address_that_is_not_host_and_port_stops_with_one_line_naming_the_variable(raw: str) -> None:
    error = rejected({"ESIPROV_METRICS_ADDRESS": raw}, "^ESIPROV_METRICS_ADDRESS: ")
    assert "\n" not in str(error)


def test_traffic_counters_are_not_pushed_unless_a_tsdb_url_is_set() -> None:
    assert from_env({}).tsdb_url is None
    assert from_env({"ESIPROV_TSDB_URL": ""}).tsdb_url is None


@pytest.mark.parametrize("raw, url", [("http://127.0.0.1:4242", "http://127.0.0.1:4242"),
                                      ("https://tsdb.example:4242/", "https://tsdb.example:4242"),
                                      ("http://proxy/opentsdb/", "http://proxy/opentsdb")])
def test_a_tsdb_url_is_an_http_base_url_kept_without_its_trailing_slash(raw: str, url: str) -> None:
    assert from_env({"ESIPROV_TSDB_URL": raw}).tsdb_url == url


@pytest.mark.parametrize("raw, match", [
    ("127.0.0.1:4242", "is not an http\\(s\\) URL"),
    (f"http://ops:{SECRET}@127.0.0.1:4242", "no credentials in the URL"),
    ("http://127.0.0.1:4242/api/put?details", "give the base URL only"),
    ("http://127.0.0.1:0", "the port is not a number"),
], ids=["no-scheme", "credentials", "query", "port"])
def test_a_bad_tsdb_url_stops_with_one_line_naming_the_variable_and_no_password(raw: str, match: str) -> None:
    error = rejected({"ESIPROV_TSDB_URL": raw}, f"^ESIPROV_TSDB_URL: .*{match}")
    assert SECRET not in str(error) and "\n" not in str(error)
