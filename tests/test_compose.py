"""docker-compose.yml, Dockerfile and the configs they mount, checked statically (no Docker engine
here): every mounted file exists, ports and hostnames agree between services and configs, the
image's command is a real console script invocation, and Prometheus accepts its config.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml
from promtool import DEPLOY, REPO, promtool

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD")


def bind_mounts(service: str) -> dict[str, Path]:
    """Container path -> repo path for the service's `./host:container[:ro]` volumes."""
    mounts = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("./"):
            mounts[target] = REPO / source
    return mounts


def command_flag(service: str, flag: str) -> str:
    values = [arg.split("=", 1)[1] for arg in SERVICES[service]["command"] if arg.startswith(flag + "=")]
    assert len(values) == 1, f"{service}: expected one {flag}"
    return values[0]


def published_ports(service: str) -> list[tuple[int, int]]:
    pairs = []
    for spec in SERVICES[service].get("ports", []):
        host, container = str(spec).split(":")
        pairs.append((int(host), int(container)))
    return pairs


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def exec_form(argument: str) -> list[str]:
    value = json.loads(argument)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), argument
    return value


def test_services_and_images():
    assert set(SERVICES) == {"gateway", "prometheus", "grafana", "alertmanager"}
    assert SERVICES["gateway"]["build"] == "."
    assert SERVICES["prometheus"]["image"].startswith("prom/prometheus:")
    assert SERVICES["alertmanager"]["image"].startswith("prom/alertmanager:")
    assert SERVICES["grafana"]["image"].startswith("grafana/grafana:")


@pytest.mark.parametrize("service", ["gateway", "prometheus", "grafana", "alertmanager"])
def test_bind_mounted_files_exist(service):
    for target, source in bind_mounts(service).items():
        assert source.exists(), f"{service}: {source.relative_to(REPO)} does not exist"
        assert target.startswith("/"), f"{service}: mount target {target} is not absolute"


def test_ports_are_sane_and_unique():
    seen: dict[int, str] = {}
    for service in SERVICES:
        for host, container in published_ports(service):
            assert 1 <= host <= 65535 and 1 <= container <= 65535
            assert host not in seen, f"host port {host} published by {seen.get(host)} and {service}"
            seen[host] = service
    expected = {"gateway": 8080, "prometheus": 9090, "alertmanager": 9093, "grafana": 3000}
    for service, port in expected.items():
        assert (port, port) in published_ports(service), service


def test_gateway_environment_has_placeholders_not_secrets():
    from gateway.config_check import unknown_variables

    env = SERVICES["gateway"]["environment"]
    assert {"VG_CLIENT_TOKENS", "VG_ADMIN_TOKEN"} <= set(env), "non-loopback bind needs client and admin tokens"
    assert {"GEMINI_API_KEY", "OPENAI_API_KEY", "DEEPGRAM_API_KEY"} <= set(env)
    assert unknown_variables(env) == [], "compose sets VG_ variables the gateway does not read"
    for service in SERVICES.values():
        for name, value in (service.get("environment") or {}).items():
            if any(word in name for word in SECRET_WORDS):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+(:[-?][^}]*)?\}", str(value)), f"{name} must come from the environment"
    # Required, not defaulted: compose refuses to start without them instead of shipping a known token.
    assert env["VG_CLIENT_TOKENS"].startswith("${VG_CLIENT_TOKENS:?")
    assert env["VG_ADMIN_TOKEN"].startswith("${VG_ADMIN_TOKEN:?")


def test_gateway_receives_the_client_and_telephony_settings():
    # a deployed gateway needs these to take phone calls and browser clients (docs/deployment.md)
    env = SERVICES["gateway"]["environment"]
    for name in ("TWILIO_AUTH_TOKEN", "VG_PUBLIC_URL", "VG_ALLOWED_ORIGINS", "VG_CLIENT_TOKEN_SECRET",
                 "VONAGE_SIGNATURE_SECRET", "VG_LOG_FORMAT"):
        assert str(env.get(name, "")).startswith(f"${{{name}"), name


def test_gateway_healthcheck_hits_a_served_path():
    from gateway.app import create_app, route_paths

    paths = route_paths(create_app())
    command = SERVICES["gateway"]["healthcheck"]["test"]
    assert command[0] == "CMD"
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", " ".join(command))
    assert url and int(url.group(1)) == 8080 and url.group(2) in paths


def test_prometheus_mounts_config_and_rules_where_the_config_expects_them():
    mounts = bind_mounts("prometheus")
    config_path = command_flag("prometheus", "--config.file")
    assert mounts[config_path] == PROMETHEUS_CONFIG
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    for rule_file in config["rule_files"]:
        # rule_files resolve relative to the config file, inside the container as in the repo.
        in_container = str(Path(config_path).parent / rule_file)
        assert mounts.get(in_container) == PROMETHEUS_CONFIG.parent / rule_file, in_container


def test_prometheus_targets_are_compose_services():
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    (gateway_target,) = jobs["voice-gateway"]["static_configs"][0]["targets"]
    assert gateway_target == "gateway:8080"
    (alertmanager_target,) = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    host, port = alertmanager_target.split(":")
    assert host in SERVICES and (int(port), int(port)) in published_ports(host)


def test_prometheus_config_passes_promtool():
    result = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_alertmanager_config_routes_to_defined_receivers_and_known_alerts():
    assert bind_mounts("alertmanager")[command_flag("alertmanager", "--config.file")] == ALERTMANAGER_CONFIG
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    receivers = {r["name"] for r in config["receivers"]}
    routes = [config["route"], *config["route"].get("routes", [])]
    assert all(route["receiver"] in receivers for route in routes if "receiver" in route)
    alerts = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
    names = {rule["alert"] for group in alerts for rule in group["rules"]}
    matcher = re.compile(r'^(\w+)(=~|!~|=|!=)"([^"]*)"$')
    for rule in config["inhibit_rules"]:
        for m in rule["source_matchers"] + rule["target_matchers"]:
            parsed = matcher.match(m)
            assert parsed, f"bad matcher {m!r}"
            label, _, value = parsed.groups()
            if label == "alertname":
                assert value in names, f"inhibit rule names unknown alert {value}"
            if label == "severity":
                assert value in {"critical", "warning"}


def test_grafana_provisioning_and_dashboard_mounts_line_up():
    mounts = bind_mounts("grafana")
    provisioning = DEPLOY / "grafana" / "provisioning"
    assert mounts["/etc/grafana/provisioning/datasources"] == provisioning / "datasources"
    assert mounts["/etc/grafana/provisioning/dashboards"] == provisioning / "dashboards"
    boards = yaml.safe_load((provisioning / "dashboards" / "voice-gateway.yml").read_text())
    folder = boards["providers"][0]["options"]["path"]
    dashboard_targets = [t for t, s in mounts.items() if s == DEPLOY / "grafana" / "voice-gateway.json"]
    assert [str(Path(t).parent) for t in dashboard_targets] == [folder]
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home in dashboard_targets
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    host_port = sources["datasources"][0]["url"].removeprefix("http://")
    assert host_port == "prometheus:9090" and "prometheus" in SERVICES


def test_dockerfile_builds_from_existing_sources_as_non_root():
    steps = dockerfile_instructions()
    froms = [arg for op, arg in steps if op == "FROM"]
    assert froms and all(arg.split()[0] == "python:3.11-slim" for arg in froms)
    ignored = [p.strip() for p in (REPO / ".dockerignore").read_text().splitlines()
               if p.strip() and not p.startswith("#")]
    for op, arg in steps:
        if op == "COPY" and not arg.startswith("--from"):
            *sources, _ = arg.split()
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: missing"
                assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), f"{source} is dockerignored"
    installs = [arg for op, arg in steps if op == "RUN" and re.search(r"\bpip install\b", arg)]
    assert installs and re.search(r"""\s["']?\.(\[[a-z,]+\])?["']?$""", installs[-1]), "no `pip install .`"
    users = [arg for op, arg in steps if op == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must run as a non-root user"
    user_step = max(i for i, (op, _) in enumerate(steps) if op == "USER")
    cmd_step = max(i for i, (op, _) in enumerate(steps) if op == "CMD")
    assert user_step < cmd_step
    assert ("EXPOSE", "8080") in steps


def dockerfile_env() -> dict[str, str]:
    """The ENV of the image's last stage (`ENV A=1 B=2` lines)."""
    steps = dockerfile_instructions()
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    env: dict[str, str] = {}
    for op, arg in steps[last_from:]:
        if op == "ENV":
            env.update(part.split("=", 1) for part in shlex.split(arg))
    return env


def container_bind(extra_env: dict[str, str]) -> tuple[str, int]:
    """Where `serve` in the container binds: the image's ENV plus `docker run -e`, then the CMD's flags."""
    from gateway.cli import build_parser
    from gateway.config import load_settings

    command = exec_form(dict(dockerfile_instructions())["CMD"])
    args = build_parser().parse_args(command[1:])
    settings = load_settings({**dockerfile_env(), **extra_env})
    return (args.host or settings.host, args.port or settings.port)


def test_dockerfile_command_is_our_console_script_serving_on_8080():
    from gateway.cli import build_parser

    steps = dict(dockerfile_instructions())
    command = exec_form(steps["CMD"])
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert command[0] in scripts
    assert build_parser().parse_args(command[1:]).command == "serve"
    assert container_bind({}) == ("0.0.0.0", 8080)
    health = steps["HEALTHCHECK"]
    probe = exec_form(health.split("CMD", 1)[1].strip())
    assert probe[:2] == ["python", "-c"] and "/healthz" in probe[2]
    # The probe must be valid Python: a typo here would mark every container unhealthy.
    compile(probe[2], "<healthcheck>", "exec")
    assert shlex.split(health)[0].startswith("--interval=")


def test_container_port_and_host_follow_the_settings():
    """`docker run -e VG_PORT=9000 -e VG_HOST=127.0.0.1`: the gateway binds there (a --host/--port in
    the image's command would silently win over both)."""
    assert container_bind({"VG_PORT": "9000"}) == ("0.0.0.0", 9000)
    assert container_bind({"VG_HOST": "127.0.0.1"}) == ("127.0.0.1", 8080)


def test_container_healthcheck_probes_the_configured_port(monkeypatch):
    """A container moved to another VG_PORT stays healthy: the probe asks the port the gateway listens on."""
    import http.server
    import threading

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        probe = exec_form(dict(dockerfile_instructions())["HEALTHCHECK"].split("CMD", 1)[1].strip())[2]
        monkeypatch.setenv("VG_PORT", str(server.server_address[1]))
        exec(compile(probe, "<healthcheck>", "exec"), {})  # raises (unhealthy) if it probes another port
    finally:
        server.shutdown()
        server.server_close()


def test_image_installs_the_opus_extra_for_compressed_browser_upload():
    """Without PyAV the container refuses `audio.input.encoding: opus|webm` (the browser demo's
    compressed upload); the image installs the extra that brings it."""
    steps = dockerfile_instructions()
    install = [arg for op, arg in steps if op == "RUN" and "pip install" in arg][-1]
    extras = re.search(r"\.\[([a-z,]+)\]", install)
    assert extras and "opus" in extras.group(1).split(","), f"the image runs {install!r}: no [opus] extra"
    optional = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(dep.startswith("av") for dep in optional["opus"])  # PyAV: gateway/session_config.py looks for `av`


def test_image_runs_the_allocator_settings_the_soak_measured():
    """benchmarks/soak.py measures RSS with the image's malloc settings (docs/soak.md): the two agree."""
    from benchmarks.soak import DEPLOYED_MALLOC_ENV

    env = dockerfile_env()
    assert {k: v for k, v in env.items() if k.startswith("MALLOC_")} == DEPLOYED_MALLOC_ENV
