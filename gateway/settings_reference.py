"""The configuration reference: every environment variable the gateway reads, its default and its
meaning, rendered to docs/configuration.md by `voice-gateway config-reference`.

It cannot drift from the code: defaults are read from the parsed settings of an empty
environment, and tests/test_settings_reference.py checks that the variables listed here are
exactly the ones `load_settings` reads (recorded while it parses) and that the committed
docs/configuration.md equals `render_markdown()`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.config import Settings, load_settings
from gateway.models import MODEL_SETTINGS
from providers.registry import ENTRIES, ProviderEntry


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    group: str
    meaning: str
    default: Callable[[Settings], object] | str = "unset"
    secret: bool = False  # also read from NAME_FILE (Docker/Kubernetes secrets)


def _provider_rows(name: str, title: str, base_url_meaning: str) -> list[Setting]:
    upper = name.upper()

    def live_base_url(s: Settings) -> object:
        return s.providers[name].live_base_url

    return [
        Setting(f"{upper}_API_KEY", "Providers", f"{title} API key. Without a key and without a base URL "
                "the provider is *simulated* by an in-process fake (the embedded default).", secret=True),
        Setting(f"{upper}_BASE_URL", "Providers", f"{title} endpoint override, {base_url_meaning}; "
                "`http(s)://` is read as `ws(s)://`, and `ws://` is accepted (a local fake or proxy). "
                "The default is the provider's official endpoint.",
                live_base_url),
        Setting(MODEL_SETTINGS.get(name, f"VG_{upper}_MODEL"), "Providers", f"{title} model; unset: the "
                "adapter's default model. `check-config` warns when it has an announced shutdown date.",
                "adapter default"),
    ]


def _entry_rows(entry: ProviderEntry) -> list[Setting]:
    """A provider reached with another one's key and base URL (GPT-Live: OpenAI's) has only its model."""
    if entry.credentials_of is None:
        return _provider_rows(entry.name, entry.title, entry.base_url_meaning)
    other = entry.credentials_of.upper()
    return [Setting(MODEL_SETTINGS.get(entry.name, f"VG_{entry.name.upper()}_MODEL"), "Providers",
                    f"{entry.title} model (provider `{entry.name}`, opt-in; reached with `{other}_API_KEY` at "
                    f"`{other}_BASE_URL`{entry.url_suffix}, see docs/providers/{entry.name.replace('_', '-')}.md); "
                    "unset: the adapter's default model. `check-config` warns when it has an announced "
                    "shutdown date.", "adapter default")]


SETTINGS: tuple[Setting, ...] = (
    *(row for e in ENTRIES for row in _entry_rows(e)),
    Setting("VG_OPENAI_MODEL", "Providers", "The older name of `VG_OPENAI_REALTIME_MODEL`, still read; "
            "the new name wins.", "unset"),
    Setting("VG_DEFAULT_PROVIDER", "Providers", "Provider of a call whose `session.start` names none: "
            "`gemini`, `openai`, `deepgram` or `auto` (the first admitting provider of the fallback chain).",
            lambda s: s.default_provider),
    Setting("VG_FALLBACK_CHAIN", "Providers", "Comma-separated order in which calls switch providers when "
            "theirs fails.", lambda s: ",".join(s.fallback_chain)),
    Setting("VG_HOST", "Server", "Address `voice-gateway serve` binds (`--host` wins). Any non-loopback "
            "address makes client tokens mandatory and disables the admin API without `VG_ADMIN_TOKEN`.",
            lambda s: s.host),
    Setting("VG_PORT", "Server", "TCP port `voice-gateway serve` listens on (`--port` wins).", lambda s: s.port),
    Setting("VG_LOG_LEVEL", "Server", "DEBUG, INFO, WARNING, ERROR or CRITICAL. At DEBUG, expected "
            "failures (a rejected key) also log their stack.", lambda s: s.log_level),
    Setting("VG_LOG_FORMAT", "Server", "`json` (one object per line, for containers) or `console` "
            "(readable lines for a terminal).", lambda s: s.log_format),
    Setting("VG_SIMULATED_SPEECH", "Server", "`on` or `off`. On: simulated providers recognise plain English "
            "speech offline (PocketSphinx) and answer in synthesized speech (eSpeak NG); off: they echo it "
            "back. Keypad (DTMF) tones work either way (docs/demo.md).",
            lambda s: "on" if s.simulated_speech else "off"),
    Setting("VG_ENV", "Server", "`development`, `staging` or `production`: stamped on every log line "
            "(`env`) and on `voice_gateway_build_info`; in `production` a provider without a key (simulated) "
            "makes `/readyz` answer 503 and `serve` says why.", lambda s: s.environment),
    Setting("VG_KEY_WATCH_INTERVAL_S", "Server", "How often the `*_API_KEY_FILE` files are checked for a "
            "rotated key; the next provider connection uses it, live calls keep theirs. `SIGHUP` re-reads "
            "them at once (`deploy/RUNBOOK.md#key-rotation`).", lambda s: s.key_watch_interval_s),
    Setting("VG_CLIENT_TOKENS", "Clients", "Comma-separated static client tokens (may switch providers).",
            secret=False),
    Setting("VG_CLIENT_TOKEN_SECRET", "Clients", "HMAC secret for short-lived signed client tokens "
            "(`voice-gateway token --ttl 600`).", secret=True),
    Setting("VG_ADMIN_TOKEN", "Clients", "Bearer token for `/admin/*` and the console. Unset: the admin "
            "API is open on a loopback bind and disabled on a public one.", secret=True),
    Setting("VG_ALLOWED_ORIGINS", "Clients", "Comma-separated browser origins (`https://host[:port]`, or "
            "`*`) allowed on `/v1/voice`. Empty: any origin on a loopback bind, only the gateway's own "
            "pages on a public bind.", "empty"),
    Setting("VG_MAX_FRAMES_PER_S", "Clients", "Messages per second a client connection may send.",
            lambda s: s.max_frames_per_s),
    Setting("VG_MAX_BYTES_PER_S", "Clients", "Bytes per second a client connection may send; 0: 8× the "
            "call's audio bitrate.", lambda s: s.max_bytes_per_s),
    Setting("VG_IDLE_TIMEOUT_S", "Clients", "Seconds without any client message before the call is ended "
            "(`session.ended` reason `idle_timeout`).", lambda s: s.idle_timeout_s),
    Setting("TWILIO_AUTH_TOKEN", "Telephony", "Twilio account Auth Token. Set: `/v1/twilio` requires a valid "
            "`X-Twilio-Signature` and that signature alone admits the stream (no client token).", secret=True),
    Setting("VG_PUBLIC_URL", "Telephony", "The gateway's root as vendors dial it: `wss://host[:port][/prefix]` "
            "(`https://` is read as `wss://`, `http://` as `ws://`). Twilio's signature is checked over this "
            "plus the request path and query; unset: `wss://` + the Host header (wrong behind a proxy that "
            "rewrites Host).", "unset"),
    Setting("VONAGE_SIGNATURE_SECRET", "Telephony", "Vonage account signature secret. Set: `/v1/vonage` requires "
            "the HS256 JWT Vonage sends with `authorization: {\"type\": \"vonage\"}` in the NCCO, and that "
            "JWT alone admits the stream.", secret=True),
    Setting("VG_RECONNECT_MAX_ATTEMPTS", "Resilience", "Reconnect attempts before a call switches provider.",
            lambda s: s.reconnect.max_attempts),
    Setting("VG_RECONNECT_INITIAL_BACKOFF_S", "Resilience", "First reconnect delay; it doubles each attempt.",
            lambda s: s.reconnect.initial_backoff_s),
    Setting("VG_RECONNECT_MAX_BACKOFF_S", "Resilience", "Ceiling of the reconnect delay.",
            lambda s: s.reconnect.max_backoff_s),
    Setting("VG_RECONNECT_JITTER", "Resilience", "Random extra delay, up to this many seconds (never "
            "shortens the schedule).", lambda s: s.reconnect.jitter_s),
    Setting("VG_CONNECT_TIMEOUT_S", "Resilience", "Deadline for opening a provider connection.",
            lambda s: s.reconnect.connect_timeout_s),
    Setting("VG_BREAKER_FAILURE_THRESHOLD", "Resilience", "Consecutive failures that open a provider's "
            "circuit.", lambda s: s.breaker.failure_threshold),
    Setting("VG_BREAKER_OPEN_TIMEOUT_S", "Resilience", "Seconds an open circuit waits before half-open.",
            lambda s: s.breaker.open_timeout_s),
    Setting("VG_BREAKER_HALF_OPEN_MAX_CALLS", "Resilience", "Trial calls allowed while half-open.",
            lambda s: s.breaker.half_open_max_calls),
    Setting("VG_BREAKER_SUCCESS_THRESHOLD", "Resilience", "Successful trials that close the circuit.",
            lambda s: s.breaker.success_threshold),
    Setting("VG_REPLAY_BUFFER_CHUNKS", "Resilience", "Unacknowledged input chunks kept per call for replay.",
            lambda s: s.replay_buffer_chunks),
    Setting("VG_OPENAI_ROTATE_AFTER_S", "Resilience", "Move an OpenAI call to a fresh session after this "
            "long (before the provider's session cap), carrying the conversation.",
            lambda s: s.openai_rotate_after_s),
    Setting("VG_RETURN_TO_PRIMARY_AFTER_S", "Resilience", "After a switch, return to the call's primary "
            "provider at a turn end once its circuit has been closed this long; `off` disables.",
            lambda s: "off" if s.return_to_primary_after_s is None else s.return_to_primary_after_s),
    Setting("VG_DRAIN_TIMEOUT_S", "Resilience", "On SIGTERM, seconds live calls may continue before they "
            "are ended (`server_draining`).", lambda s: s.drain_timeout_s),
    Setting("VG_REDIS_URL", "Fleet", "`redis://`, `rediss://` or `unix://` URL of the Redis the replicas "
            "share; set: fleet mode (docs/fleet.md), unset: one process, no Redis.", secret=True),
    Setting("VG_REPLICA_ID", "Fleet", "This replica's name in the fleet view.", "hostname-pid"),
    Setting("VG_REPLICA_URL", "Fleet", "`http(s)://` URL where the other replicas reach this one to forward "
            "switch/end commands for its calls.", "`http://HOST:PORT`"),
    Setting("VG_FLEET_TTL_S", "Fleet", "Seconds a call or replica key outlives its last heartbeat (a dead "
            "replica's calls leave the fleet view after this).", lambda s: s.fleet.ttl_s),
    Setting("VG_FLEET_HEARTBEAT_S", "Fleet", "Seconds between registry heartbeats (shorter than the TTL).",
            "TTL / 3"),
    Setting("VG_FLEET_FORWARD_TIMEOUT_S", "Fleet", "Seconds a forwarded command waits for the replica holding "
            "the call before answering 504.", lambda s: s.fleet.forward_timeout_s),
    Setting("VG_SHARED_BREAKER_ADVISORIES", "Fleet", "`1`: a circuit that opens on one replica stops the "
            "others starting calls on that provider until it would half-open.", "`0`"),
    # -- one-shot chains (docs/chains.md); DEEPGRAM_/OPENAI_ key and base URL are shared with live calls
    Setting("GROQ_API_KEY", "Chains", "Groq API key (transcription chain). Without a key and without a base "
            "URL Groq is *simulated* by an in-process fake.", secret=True),
    Setting("GROQ_BASE_URL", "Chains", "Groq endpoint override: the origin, as the groq SDK's base URL "
            "(`/openai/v1/…` is appended); `ws(s)://` is read as `http(s)://`.",
            lambda s: s.chains.providers["groq"].live_base_url),
    Setting("OPENAI_WHISPER_MODEL", "Chains", "OpenAI transcription model (`whisper-1`, `gpt-4o-transcribe`, "
            "`gpt-4o-mini-transcribe`, …); the REST base is `OPENAI_BASE_URL` read as `http(s)://`.", "whisper-1"),
    Setting("VG_DEEPGRAM_STT_MODEL", "Chains", "Pin Deepgram's pre-recorded model; unset: `nova-2`, or "
            "`nova-3` for `quality=high`.", "per quality"),
    Setting("VG_GROQ_STT_MODEL", "Chains", "Groq transcription model.", "whisper-large-v3"),
    *(Setting(f"{name.upper()}_MAX_UPLOAD_MB", "Chains", f"Largest upload sent to {title}; bigger files skip "
              "it (`skipped`, `upload_too_large`).", cap)
      for name, title, cap in (("deepgram", "Deepgram", "2000"), ("groq", "Groq", "25 (dev tier: 100)"),
                               ("openai", "OpenAI", "26.2144"))),
    Setting("VG_TRANSCRIPTION_CHAIN", "Chains", "Comma-separated order of the transcription chain "
            "(`deepgram`, `groq`, `openai`); reorder or shorten it.",
            lambda s: ",".join(s.chains.transcription_chain)),
    Setting("VG_CHAIN_ATTEMPT_TIMEOUT_S", "Chains", "Timeout of one HTTP attempt; a timeout's one retry gets "
            "twice this.", lambda s: s.chains.attempt_timeout_s),
    Setting("VG_CHAIN_DEADLINE_S", "Chains", "Deadline of a whole chain request, every attempt and backoff "
            "included.", lambda s: s.chains.deadline_s),
    Setting("VG_CHAIN_RETRY_BACKOFF_S", "Chains", "5xx retries wait this, then twice this.",
            lambda s: s.chains.retry_backoff_s),
    Setting("VG_CHAIN_RETRY_AFTER_MAX_S", "Chains", "Longest `Retry-After` honoured (a 429 from the last "
            "provider of a chain only).", lambda s: s.chains.retry_after_max_s),
)
GROUPS = ("Providers", "Server", "Clients", "Telephony", "Resilience", "Fleet", "Chains")


def documented_names() -> set[str]:
    names = {s.name for s in SETTINGS}
    return names | {f"{s.name}_FILE" for s in SETTINGS if s.secret}


class _Recorder(Mapping[str, str]):
    """An empty environment that remembers what the parser asked for."""

    def __init__(self) -> None:
        self.read: list[str] = []

    def __getitem__(self, name: str) -> str:
        self.read.append(name)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def names_read_by_the_parser() -> set[str]:
    recorder = _Recorder()
    load_settings(recorder)
    return set(recorder.read)


def _default(setting: Setting, defaults: Settings) -> str:
    value = setting.default(defaults) if callable(setting.default) else setting.default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`" if callable(setting.default) else str(value)


def render_markdown() -> str:
    defaults = load_settings({})
    out = ["# Configuration reference", "",
           "<!-- Generated by `voice-gateway config-reference > docs/configuration.md` from "
           "gateway/settings_reference.py; do not edit by hand (a test compares the two). -->", "",
           "The gateway reads its settings from the environment once, at start-up; nothing reads the "
           "environment later. `voice-gateway check-config` validates the effective configuration, lists "
           "**every** error (on stderr, exit status 2) and prints the settings with secrets masked. "
           "Blank values count as unset. Variables marked *secret* can also be given as a file: "
           "`NAME_FILE=/run/secrets/name` (not both). Secrets never appear in logs, events or metrics.", ""]
    for group in GROUPS:
        out += [f"## {group}", "", "| variable | default | meaning |", "|---|---|---|"]
        for s in SETTINGS:
            if s.group == group:
                name = f"`{s.name}` (secret; or `{s.name}_FILE`)" if s.secret else f"`{s.name}`"
                out.append(f"| {name} | {_default(s, defaults)} | {s.meaning} |")
        out.append("")
    out += ["## Command line", "",
            "`voice-gateway serve [--host H] [--port P] [--ssl-certfile PEM --ssl-keyfile PEM]`: "
            "`--host`/`--port` win over `VG_HOST`/`VG_PORT`; the TLS options serve `https://` and `wss://` "
            "directly (see deployment.md). `voice-gateway token --ttl S [--subject NAME] [--allow-switch]` "
            "mints a signed client token with `VG_CLIENT_TOKEN_SECRET`. `voice-gateway check-config`, "
            "`voice-gateway fake-provider --help`, `voice-gateway bench --help`.", ""]
    return "\n".join(out)


def run_config_reference(args: argparse.Namespace) -> int:
    text = render_markdown()
    if args.write:
        Path(args.write).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
