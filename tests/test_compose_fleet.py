"""docker-compose.fleet.yml and deploy/nginx/fleet.conf, checked statically (no Docker engine here):
two gateway replicas share the compose Redis and reach each other by service name, the proxy's
upstreams are exactly those replicas, WebSocket upgrades pass, a draining replica's 503 sends the
upgrade to the other one, and secrets come from the environment."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import yaml
from promtool import REPO

from gateway.config import load_settings
from gateway.config_check import unknown_variables

COMPOSE = yaml.safe_load((REPO / "docker-compose.fleet.yml").read_text())
SERVICES = COMPOSE["services"]
GATEWAYS = sorted(name for name in SERVICES if name.startswith("gateway-"))
NGINX = (REPO / "deploy" / "nginx" / "fleet.conf").read_text()


def env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[service]["environment"].items()}


def resolved(value: str) -> str:
    """${NAME:-default} → default; ${NAME:?msg} → a stand-in (compose requires it to be set)."""
    return re.sub(r"\$\{[A-Z0-9_]+(?::-([^}]*)|:\?[^}]*)\}", lambda m: m.group(1) or "set-in-env", value)


def test_services() -> None:
    assert set(SERVICES) == {"gateway-a", "gateway-b", "redis", "proxy"}
    assert SERVICES["redis"]["image"].startswith("redis:7")
    assert SERVICES["proxy"]["image"].startswith("nginx:")
    assert all(SERVICES[g]["build"] == "." for g in GATEWAYS)


def test_replicas_share_redis_and_reach_each_other_by_name() -> None:
    ids = set()
    for name in GATEWAYS:
        e = env(name)
        settings = load_settings({k: resolved(v) for k, v in e.items()}).fleet
        assert settings.enabled
        redis = urlsplit(settings.redis_url or "")
        assert redis.hostname in SERVICES and redis.port == 6379
        replica = urlsplit(settings.replica_url or "")
        assert (replica.hostname, replica.port) == (name, 8080)
        ids.add(settings.replica_id)
        assert unknown_variables(e) == []
        for key, value in e.items():
            if any(word in key for word in ("KEY", "TOKEN", "SECRET", "PASSWORD")):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+(:[-?][^}]*)?\}", value), f"{key} must come from the environment"
        assert e["VG_ADMIN_TOKEN"].startswith("${VG_ADMIN_TOKEN:?")
    assert len(ids) == len(GATEWAYS), "replica ids must differ"


def test_stop_grace_outlasts_the_drain_and_healthcheck_is_readiness() -> None:
    from gateway.app import create_app, route_paths

    paths = route_paths(create_app())
    for name in GATEWAYS:
        drain = float(resolved(env(name)["VG_DRAIN_TIMEOUT_S"]))
        assert int(SERVICES[name]["stop_grace_period"].rstrip("s")) > drain
        url = re.search(r"http://127\.0\.0\.1:8080(/\w+)", " ".join(SERVICES[name]["healthcheck"]["test"]))
        assert url and url.group(1) == "/readyz" and url.group(1) in paths


def test_proxy_config_is_mounted_and_balances_the_replicas() -> None:
    source, target, *_ = SERVICES["proxy"]["volumes"][0].split(":")
    assert (REPO / source).resolve() == (REPO / "deploy" / "nginx" / "fleet.conf").resolve()
    assert target.startswith("/etc/nginx/conf.d/")
    upstream = re.search(r"upstream voice_gateway \{(.*?)\}", NGINX, re.S)
    assert upstream
    servers = re.findall(r"server ([\w-]+):(\d+)", upstream.group(1))
    assert sorted(host for host, _ in servers) == GATEWAYS and {port for _, port in servers} == {"8080"}
    listen = int(re.search(r"listen (\d+);", NGINX).group(1))
    assert [str(p) for p in SERVICES["proxy"]["ports"]] == [f"8080:{listen}"]


def test_proxy_passes_websockets_and_retries_a_draining_replica() -> None:
    assert "proxy_pass http://voice_gateway;" in NGINX
    assert "proxy_http_version 1.1;" in NGINX
    assert "proxy_set_header Upgrade $http_upgrade;" in NGINX
    assert "proxy_set_header Connection $connection_upgrade;" in NGINX
    assert "proxy_set_header Host $http_host;" in NGINX  # the admin API compares Origin with it
    next_upstream = re.search(r"proxy_next_upstream ([^;]+);", NGINX).group(1).split()
    assert "http_503" in next_upstream  # a draining replica refuses upgrades with 503
    read_timeout = int(re.search(r"proxy_read_timeout (\d+)s;", NGINX).group(1))
    assert read_timeout >= 3600  # a call is one long WebSocket
    assert NGINX.count("{") == NGINX.count("}")
