"""Settings: the environment parsed once, at start-up, into frozen dataclasses (docs/configuration.md).

Nothing else reads os.environ. Every secret loaded here is registered with gateway.logs so it is
masked in all log output, and error messages name the variable, never its secret value.
`load_settings` is the entry point; the dataclasses live in gateway/settings.py, reading one
variable in gateway/config_env.py, the parser of each group of settings in
gateway/config_sections.py and `check-config` in gateway/config_check.py.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import gateway.config_sections as sections
from gateway.chains.settings import load_chain_settings
from gateway.config_env import Env, on_off
from gateway.config_env import read_key_file as read_key_file
from gateway.errors import ConfigError
from gateway.logs import LEVELS, register_secret
from gateway.settings import DEFAULT_FALLBACK, Settings
from gateway.settings import FleetSettings as FleetSettings
from gateway.settings import ProviderSettings as ProviderSettings
from gateway.settings import production_simulated as production_simulated
from providers.registry import PROVIDER_NAMES as PROVIDERS


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Parse `environ` (default os.environ) once. Raises ConfigError naming the bad variable."""
    env = Env(os.environ if environ is None else environ)
    providers = {name: sections.provider_settings(env, name) for name in PROVIDERS}
    default_provider = env.raw("VG_DEFAULT_PROVIDER") or "gemini"
    sections.check_providers("VG_DEFAULT_PROVIDER", (default_provider,), allow_auto=True)
    fallback_chain = env.names("VG_FALLBACK_CHAIN", DEFAULT_FALLBACK)
    if not fallback_chain:
        raise ConfigError("VG_FALLBACK_CHAIN must name at least one provider")
    sections.check_providers("VG_FALLBACK_CHAIN", fallback_chain)
    client_tokens = env.names("VG_CLIENT_TOKENS", ())
    for token in client_tokens:
        register_secret(token)
    log_level = (env.raw("VG_LOG_LEVEL") or "INFO").upper()
    if log_level not in LEVELS:
        raise ConfigError(f"VG_LOG_LEVEL must be one of {', '.join(LEVELS)}, got {log_level!r}")
    return Settings(
        host=env.raw("VG_HOST") or "127.0.0.1",
        port=env.parsed("VG_PORT", 8080, int, "a TCP port 0..65535", lambda v: 0 <= v <= 65535),
        providers=providers, default_provider=default_provider, fallback_chain=fallback_chain,
        client_tokens=client_tokens, client_token_secret=env.secret("VG_CLIENT_TOKEN_SECRET"),
        admin_token=env.secret("VG_ADMIN_TOKEN"), allowed_origins=sections.allowed_origins(env),
        log_level=log_level, reconnect=sections.reconnect(env), breaker=sections.breaker(env),
        replay_buffer_chunks=env.integer("VG_REPLAY_BUFFER_CHUNKS", 100),
        openai_rotate_after_s=env.seconds("VG_OPENAI_ROTATE_AFTER_S", 3300.0),
        return_to_primary_after_s=sections.return_to_primary(env),
        drain_timeout_s=env.seconds("VG_DRAIN_TIMEOUT_S", 30.0, allow_zero=True),
        idle_timeout_s=env.seconds("VG_IDLE_TIMEOUT_S", 60.0),
        max_frames_per_s=env.integer("VG_MAX_FRAMES_PER_S", 200),
        max_bytes_per_s=env.integer("VG_MAX_BYTES_PER_S", 0, minimum=0),
        twilio_auth_token=env.secret("TWILIO_AUTH_TOKEN"), public_url=sections.public_url(env),
        vonage_signature_secret=env.secret("VONAGE_SIGNATURE_SECRET"), log_format=sections.log_format(env),
        simulated_speech=env.parsed("VG_SIMULATED_SPEECH", True, on_off, "on or off"),
        environment=sections.environment(env),
        key_watch_interval_s=env.seconds("VG_KEY_WATCH_INTERVAL_S", 2.0),
        fleet=sections.fleet(env),
        chains=load_chain_settings(env, providers), **sections.deepgram_think(env))
