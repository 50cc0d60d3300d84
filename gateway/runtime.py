"""Process-wide state of a running gateway: settings, clock, one breaker per provider, the provider
connector, the provider endpoints (live or the embedded fakes) and the live call sessions.

Built once at start-up from `Settings`; nothing below reads the environment again.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from gateway import __version__, metrics
from gateway.audit import SYSTEM, audit
from gateway.breaker import AUTH_REASON, BreakerRegistry
from gateway.clock import Clock, MonotonicClock
from gateway.config import Settings, production_simulated, read_key_file
from gateway.costs import CostLedger
from gateway.errors import ConfigError
from gateway.events import SwitchReason
from gateway.logs import log_event, set_environment
from gateway.loop_lag import LoopLagMonitor
from gateway.provider_socket import ProviderConnector
from gateway.replay import ReplayBuffer
from gateway.session_config import SessionConfig
from gateway.sink import ClientSink
from gateway.states import SessionState
from providers.base import Endpoint, ProviderAdapter
from providers.deepgram_agent_wire import AgentEndpoint, think_providers
from providers.fakes import fake_class
from providers.registry import adapter_for, provider_entry

if TYPE_CHECKING:
    from providers.fakes.common import FakeServer
    from providers.fakes.speech import OfflineSpeech

log = logging.getLogger("gateway.runtime")
RECENTLY_ENDED = 20


def _mtime(path: str) -> tuple[int, int, int] | None:
    """What changes when a key file is rewritten or swapped (Kubernetes swaps a symlink: new inode)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_ino, st.st_size


class LiveCall(Protocol):
    """What the runtime and the admin API need of a live call (gateway/session.py CallSession); a
    protocol, so the runtime does not import the session that imports it."""

    id: str
    config: SessionConfig
    replay: ReplayBuffer
    client: str  # native / twilio / telnyx / vonage
    started_at: float  # on the runtime's clock
    sink: ClientSink  # the client's side of the call (an operator hang-up closes it)

    @property
    def state(self) -> SessionState: ...

    @property
    def provider(self) -> str | None: ...

    @property
    def switch_refusal(self) -> str | None: ...

    async def end(self, reason: str = "client_ended") -> None: ...

    async def switch(self, target: str | None, reason: SwitchReason) -> bool: ...

    def snapshot(self, *, detail: bool = False) -> dict[str, Any]: ...


class UsableProviders:
    """The providers a new link may open: configured (an endpoint) and not disabled by an operator
    (gateway/fleet/controls.py). A live view: a disable or enable holds for the next lookup."""

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def __contains__(self, name: object) -> bool:
        return name in self._rt.endpoints and name not in self._rt.disabled_providers

    def __iter__(self) -> Iterator[str]:
        return (n for n in self._rt.endpoints if n not in self._rt.disabled_providers)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Runtime:
    def __init__(self, settings: Settings, *, clock: Clock | None = None,
                 connector: ProviderConnector | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or MonotonicClock()
        self.breakers = BreakerRegistry(self.clock, settings.breaker)
        # one cost ledger for chain requests and live calls (gateway/costs.py)
        self.costs = CostLedger(settings.chains.prices, daily_budget_usd=settings.chains.daily_budget_usd)
        self.connector = connector or ProviderConnector()
        self.endpoints: dict[str, Endpoint] = {}
        self.sessions: dict[str, LiveCall] = {}
        self.fakes: dict[str, FakeServer] = {}
        self.speech: OfflineSpeech | None = None  # the simulated providers' shared speech engine
        self.draining = False
        self.loop_lag = LoopLagMonitor()  # voice_gateway_event_loop_lag_seconds, from start() to stop()
        # Operator controls (gateway/fleet/controls.py): providers no new call may start on.
        self.disabled_providers: dict[str, dict[str, Any]] = {}
        # Hooks for the fleet registry and operator controls: called with (session, wire event) for
        # every non-audio event a session emits; `fleet_status` adds the registry to /readyz.
        self.session_observers: list[Callable[[LiveCall, dict[str, Any]], None]] = []
        self.fleet_status: Callable[[], dict[str, Any]] | None = None
        self.usable_providers = UsableProviders(self)
        # the newest ended calls' detail snapshots, for the console (bounded: no growth over a long run)
        self.recently_ended: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENTLY_ENDED)
        self._key_files: dict[str, tuple[str, tuple[int, int, int] | None]] = {}  # provider → (path, last mtime seen)
        self._watcher: asyncio.Task[None] | None = None
        for name in settings.providers:
            self.breakers.get(name)  # gauges exist from the start
        metrics.initialize(list(settings.providers))
        set_environment(settings.environment)
        metrics.voice_gateway_build.info({"version": __version__, "env": settings.environment})

    def remember_ended(self, snapshot: dict[str, Any]) -> None:
        self.recently_ended.appendleft(snapshot)

    def ended_session(self, session_id: str) -> dict[str, Any] | None:
        return next((s for s in self.recently_ended if s["id"] == session_id), None)

    def provider_enabled(self, provider: str) -> bool:
        """False while an operator has disabled `provider`: new calls and switches skip it."""
        return provider not in self.disabled_providers

    def notify_session_event(self, session: LiveCall, wire: dict[str, Any]) -> None:
        for observer in self.session_observers:
            try:
                observer(session, wire)
            except Exception:  # an observer's bug must never reach the call
                log.exception("session observer failed")

    def adapter_class(self, provider: str) -> type[ProviderAdapter]:
        return adapter_for(provider)

    def _endpoint(self, name: str, **kwargs: Any) -> Endpoint:
        """A provider's endpoint; the Deepgram agent's also carries how it thinks (settings → think list)."""
        if name != "deepgram_agent":
            return Endpoint(**kwargs)
        s = self.settings
        gemini = s.providers.get("gemini")
        think = think_providers(s.deepgram_think_providers, model=s.deepgram_think_model,
                                gemini_api_key=gemini.api_key if gemini is not None else None,
                                gateway_url=s.deepgram_think_gateway_url,
                                gateway_token=s.deepgram_think_gateway_token)
        return AgentEndpoint(think=think, **kwargs)

    def rotate_after_s(self, provider: str) -> float | None:
        """When a link to `provider` hands over to a fresh connection ahead of the provider's session
        cap (registry `max_session_s`); VG_OPENAI_ROTATE_AFTER_S sets it for OpenAI."""
        default = provider_entry(provider).rotate_after_s
        if default is None:
            return None
        return {"openai": self.settings.openai_rotate_after_s}.get(provider, default)

    @staticmethod
    def wall_time() -> float:
        return time.time()

    async def start(self) -> None:
        """Resolve every provider's endpoint; start an in-process fake for each simulated one."""
        self.loop_lag.start()
        if self.settings.simulated_speech and any(ps.simulated for ps in self.settings.providers.values()):
            from providers.fakes.speech import OfflineSpeech

            self.speech = OfflineSpeech()  # its worker process starts on the first plain-speech utterance
            log_event(log, logging.INFO, "speech.simulated", "simulated providers recognise English speech "
                      "(PocketSphinx) and answer in synthesized speech (eSpeak NG); VG_SIMULATED_SPEECH=off "
                      "turns it off")
        for name, ps in self.settings.providers.items():
            if ps.simulated:
                # a long-lived process: bounded recording (the fakes keep everything for tests)
                fake = fake_class(name)(record_limit_bytes=320_000, keep_connections=64, speech=self.speech)
                await fake.start()
                self.fakes[name] = fake
                base = fake.url + provider_entry(name).base_path
                # any non-empty key is accepted by a fake started without one; this one is random
                self.endpoints[name] = self._endpoint(name, base_url=base, api_key="sim-" + secrets.token_hex(8),
                                                      model=ps.model, simulated=True)
            else:
                self.endpoints[name] = self._endpoint(name, base_url=ps.live_base_url, api_key=ps.api_key or "",
                                                      model=ps.model, simulated=False)
                if ps.api_key_file:
                    self._key_files[name] = (ps.api_key_file, _mtime(ps.api_key_file))
            log_event(log, logging.INFO, "provider.configured",
                      f"{name}: {'simulated (embedded fake)' if ps.simulated else 'live'}",
                      provider=name, mode=ps.mode, key_source=ps.key_source)
        not_ready = production_simulated(self.settings)
        if not_ready:
            log_event(log, logging.ERROR, "gateway.not_ready",
                      f"VG_ENV=production but {', '.join(not_ready)} has no API key and would be simulated: "
                      f"/readyz fails until {', '.join(sorted({provider_entry(p).key_setting for p in not_ready}))} is set",
                      providers=not_ready)
        if self._key_files:
            self._watcher = asyncio.create_task(self._watch_key_files(), name="key-file-watcher")

    # -- key rotation -------------------------------------------------------------------------------
    async def _watch_key_files(self) -> None:
        """Poll the *_API_KEY_FILE paths (a stat per file every few seconds: cheaper and more portable
        than inotify, and it sees Kubernetes' symlink-swapped secret volumes)."""
        while True:
            await self.clock.sleep(self.settings.key_watch_interval_s)
            changed = [p for p, (path, seen) in self._key_files.items() if _mtime(path) != seen]
            if changed:
                self.reload_keys("file_watch", only=changed)

    def reload_keys(self, trigger: str = "sighup", *, only: list[str] | None = None) -> dict[str, str]:
        """Re-read the key files; the next connection of each changed provider uses the new key,
        live links keep theirs. A provider whose breaker was forced OPEN by an auth failure is reset
        (the key it refused is gone). Returns provider → outcome (rotated | unchanged | failed)."""
        outcomes: dict[str, str] = {}
        for name, (path, _seen) in list(self._key_files.items()):
            if only is not None and name not in only:
                continue
            self._key_files[name] = (path, _mtime(path))
            var = f"{provider_entry(name).key_setting}_FILE"
            try:
                key = read_key_file(var, path)
            except ConfigError as e:
                outcomes[name] = "failed"
                audit("config.reload", "failed", remote="local", actor=SYSTEM, level=logging.ERROR,
                      provider=name, trigger=trigger, key_source=f"file:{path}", reason=e.message)
                continue
            endpoint = self.endpoints.get(name)
            if endpoint is None or endpoint.api_key == key:
                outcomes[name] = "unchanged"
                audit("config.reload", "unchanged", remote="local", actor=SYSTEM, provider=name, trigger=trigger,
                      key_source=f"file:{path}")
                continue
            self.endpoints[name] = dataclasses.replace(endpoint, api_key=key)
            outcomes[name] = "rotated"
            breaker = self.breakers.get(name)
            reset = breaker.opened_reason == AUTH_REASON
            if reset:
                breaker.reset()
            audit("config.reload", "ok", remote="local", actor=SYSTEM, provider=name, trigger=trigger,
                  key_source=f"file:{path}", key_rotated=True, circuit_reset=reset)
        return outcomes

    async def stop(self) -> None:
        self.loop_lag.stop()
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        for s in list(self.sessions.values()):
            await s.end("server_shutdown")
        for fake in self.fakes.values():
            await fake.stop()
        self.fakes.clear()
        if self.speech is not None:
            await self.speech.close()
            self.speech = None
        await self.connector.close()

    def refresh_gauges(self) -> None:
        """Replay-depth gauges are the largest depth per provider (no per-session labels); computed at
        scrape time so the audio path does no metrics work for them."""
        deepest: dict[str, int] = {p: 0 for p in self.settings.providers}
        for s in self.sessions.values():
            p = s.provider or s.config.provider
            if p in deepest:
                deepest[p] = max(deepest[p], len(s.replay))
        for p, depth in deepest.items():
            metrics.voice_gateway_replay_buffer_chunks.labels(p).set(depth)
        metrics.deepgram_audio_buffer_size.set(max(deepest.get("deepgram", 0), deepest.get("deepgram_agent", 0)))

    @property
    def ready(self) -> bool:
        return not self.draining and not production_simulated(self.settings)

    def readiness(self) -> dict[str, Any]:
        simulated_in_production = production_simulated(self.settings)
        status = "draining" if self.draining else "not_ready" if simulated_in_production else "ready"
        body: dict[str, Any] = {
            "status": status,
            "environment": self.settings.environment,
            **({"reason": f"VG_ENV=production with simulated providers: {', '.join(simulated_in_production)}"}
               if simulated_in_production else {}),
            "providers": {
                name: {"mode": ("simulated" if ep.simulated else "live"),
                       "circuit": self.breakers.get(name).state.name,
                       "status": "enabled" if self.provider_enabled(name) else "disabled"}
                for name, ep in self.endpoints.items()
            },
            "sessions": len(self.sessions),
        }
        if self.fleet_status is not None:
            body["fleet"] = self.fleet_status()
        return body

