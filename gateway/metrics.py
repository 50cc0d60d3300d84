"""Every Prometheus metric of the gateway (docs/metrics.md), defined once, with bounded labels only.

Never a session id as a label. Code paths import the objects below and update them; `/metrics`
exposes `REGISTRY`. Tests read values with `sample()`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from functools import cache

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.metrics_core import Metric

from gateway import __version__
from providers.registry import BREAKER_NAMES

REGISTRY = CollectorRegistry(auto_describe=True)


# == per-frame tallies =============================================================================
# The audio path counts and times every frame (both ways, 50 a second per call). A Prometheus child's
# inc()/observe() takes a lock and walks Python code (0.36 / 0.67 µs); a tally is a plain int (or a
# bucket list) added to its child whenever the registry is read (/metrics, sample()): the values
# every reader sees are exact, the per-frame cost is an attribute add (0.03 µs) or a C bisect.
class Tally:
    """A counter child's per-frame increments, kept as an int until the registry is read."""

    __slots__ = ("n", "_child")

    def __init__(self, child: Counter) -> None:
        self.n = 0
        self._child = child

    def flush(self) -> None:
        n = self.n
        if n:
            self.n = 0
            self._child.inc(n)


class HistogramTally:
    """A histogram child's per-frame observations: per-bucket ints and a sum, until the registry is
    read. Same buckets as the child (`amount <= bound`, as prometheus_client places a value)."""

    __slots__ = ("_bounds", "_counts", "_sum", "_child")

    def __init__(self, child: Histogram) -> None:
        self._child = child
        self._bounds = tuple(child._upper_bounds)  # ends with +Inf
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0

    def observe(self, amount: float) -> None:
        self._counts[bisect_left(self._bounds, amount)] += 1
        self._sum += amount

    def flush(self) -> None:
        counts = self._counts
        if not any(counts):
            return
        buckets = self._child._buckets
        for i, n in enumerate(counts):
            if n:
                buckets[i].inc(n)
                counts[i] = 0
        self._child._sum.inc(self._sum)
        self._sum = 0.0


_TALLIES: list[Tally | HistogramTally] = []


class _FlushTallies:
    """Registered first, so the registry collects it before any metric: every read sees the tallies."""

    def describe(self) -> Iterable[Metric]:
        return ()

    def collect(self) -> Iterable[Metric]:
        for t in _TALLIES:
            t.flush()
        return ()


REGISTRY.register(_FlushTallies())

circuit_breaker_state = Gauge(
    "circuit_breaker_state", "Circuit breaker state: 0=CLOSED 1=HALF_OPEN 2=OPEN",
    ["name", "provider"], registry=REGISTRY)
circuit_breaker_calls = Counter(
    "circuit_breaker_calls", "Calls through a circuit breaker by outcome",
    ["name", "provider", "status"], registry=REGISTRY)
circuit_breaker_state_transitions = Counter(
    "circuit_breaker_state_transitions", "Circuit breaker state transitions",
    ["name", "provider", "from_state", "to_state"], registry=REGISTRY)
circuit_breaker_call_duration_seconds = Histogram(
    "circuit_breaker_call_duration_seconds", "Duration of calls through a circuit breaker",
    ["name", "provider", "status"], buckets=(0.1, 0.5, 1, 2, 5, 10), registry=REGISTRY)

ai_provider_requests = Counter(
    "ai_provider_requests", "Provider requests (link establishments and in-call requests)",
    ["provider", "endpoint", "status"], registry=REGISTRY)
ai_provider_latency_seconds = Histogram(
    "ai_provider_latency_seconds", "Provider latency (connect+setup; first reply audio after user turn end)",
    ["provider", "endpoint"], buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10), registry=REGISTRY)
ai_provider_errors = Counter(
    "ai_provider_errors", "Provider errors by type",
    ["provider", "error_type"], registry=REGISTRY)
ai_provider_active_sessions = Gauge(
    "ai_provider_active_sessions", "Calls currently bridged to each provider",
    ["provider"], registry=REGISTRY)
ai_provider_reconnections = Counter(
    "ai_provider_reconnections", "Reconnect attempts by outcome",
    ["provider", "success"], registry=REGISTRY)
ai_provider_audio_chunks_sent = Counter(
    "ai_provider_audio_chunks_sent", "Input audio chunks sent to providers (replays included)",
    ["provider"], registry=REGISTRY)
ai_provider_audio_chunks_received = Counter(
    "ai_provider_audio_chunks_received", "Reply audio chunks received from providers",
    ["provider"], registry=REGISTRY)
deepgram_audio_buffer_size = Gauge(
    "deepgram_audio_buffer_size", "Largest replay-buffer depth (chunks) among Deepgram sessions",
    registry=REGISTRY)
voice_gateway_replay_buffer_chunks = Gauge(
    "voice_gateway_replay_buffer_chunks", "Largest replay-buffer depth (chunks) among sessions per provider",
    ["provider"], registry=REGISTRY)
voice_gateway_replay_dropped_chunks = Counter(
    "voice_gateway_replay_dropped_chunks", "Input chunks dropped because the replay buffer overflowed",
    ["provider"], registry=REGISTRY)
voice_gateway_replayed_chunks = Counter(
    "voice_gateway_replayed_chunks", "Input chunks replayed after a reconnect or switch",
    ["provider"], registry=REGISTRY)
voice_gateway_provider_switches = Counter(
    "voice_gateway_provider_switches", "Mid-call provider switches",
    ["from", "to", "reason"], registry=REGISTRY)
voice_gateway_planned_handovers = Counter(
    "voice_gateway_planned_handovers", "Planned reconnections (Gemini goAway, OpenAI rotation)",
    ["provider", "reason"], registry=REGISTRY)
voice_gateway_sessions_active = Gauge(
    "voice_gateway_sessions_active", "Active calls by client kind",
    ["client"], registry=REGISTRY)
voice_gateway_sessions_reconnecting = Gauge(
    "voice_gateway_sessions_reconnecting", "Calls whose provider link is reconnecting",
    ["provider"], registry=REGISTRY)
voice_gateway_no_provider_sessions = Gauge(
    "voice_gateway_no_provider_sessions", "Calls waiting with no usable provider", registry=REGISTRY)
voice_gateway_added_latency_seconds = Histogram(
    "voice_gateway_added_latency_seconds", "Time a frame spends inside the gateway",
    ["direction"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1),
    registry=REGISTRY)
# the audio path observes these per frame: tallies of pre-bound children (flushed when read)
UPLINK_LATENCY = HistogramTally(voice_gateway_added_latency_seconds.labels("uplink"))
DOWNLINK_LATENCY = HistogramTally(voice_gateway_added_latency_seconds.labels("downlink"))
_TALLIES += (UPLINK_LATENCY, DOWNLINK_LATENCY)
voice_gateway_event_loop_lag_seconds = Histogram(
    "voice_gateway_event_loop_lag_seconds",
    "How late the event loop ran a timer callback (sampled every 0.25 s; gateway/loop_lag.py)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY)
EVENT_LOOP_LAG = voice_gateway_event_loop_lag_seconds  # no labels: observed directly
voice_gateway_time_to_first_audio_seconds = Histogram(
    "voice_gateway_time_to_first_audio_seconds", "From end of user turn to first reply audio",
    ["provider"], buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10), registry=REGISTRY)
voice_gateway_provider_connect_seconds = Histogram(
    "voice_gateway_provider_connect_seconds", "Provider link establishment time (upgrade + setup ack)",
    ["provider"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10), registry=REGISTRY)
voice_gateway_switch_seconds = Histogram(
    "voice_gateway_switch_seconds", "From switch trigger to the new provider receiving audio",
    ["reason"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5), registry=REGISTRY)
voice_gateway_client_errors = Counter(
    "voice_gateway_client_errors", "Client protocol errors by code",
    ["client", "code"], registry=REGISTRY)
voice_gateway_rate_limited = Counter(
    "voice_gateway_rate_limited", "Client connections that hit a rate ceiling",
    ["client"], registry=REGISTRY)


# Pre-bound children for paths that can run per frame (every refused over-limit frame counts one):
# bounded label sets (client kinds × stable error codes), so the caches are bounded too.
@cache
def client_errors(client: str, code: str) -> Counter:
    return voice_gateway_client_errors.labels(client, code)


@cache
def rate_limited(client: str) -> Counter:
    return voice_gateway_rate_limited.labels(client)


@cache
def chunks_sent(provider: str) -> Tally:
    """Per-frame count of `ai_provider_audio_chunks_sent` (one tally per provider, bounded)."""
    t = Tally(ai_provider_audio_chunks_sent.labels(provider))
    _TALLIES.append(t)
    return t


@cache
def chunks_received(provider: str) -> Tally:
    """Per-frame count of `ai_provider_audio_chunks_received` (one tally per provider, bounded)."""
    t = Tally(ai_provider_audio_chunks_received.labels(provider))
    _TALLIES.append(t)
    return t


# -- one-shot provider chains (docs/chains.md) ------------------------------------------------------
voice_gateway_chain_requests = Counter(
    "voice_gateway_chain_requests", "Provider turns in chain requests by outcome (retries inside a turn: "
    "ai_provider_requests_total)", ["chain", "provider", "outcome"], registry=REGISTRY)
voice_gateway_chain_fallbacks = Counter(
    "voice_gateway_chain_fallbacks", "Chain fallbacks from one provider to the next",
    ["chain", "from", "to"], registry=REGISTRY)
voice_gateway_chain_latency_seconds = Histogram(
    "voice_gateway_chain_latency_seconds", "Latency of the answering attempt per chain provider",
    ["chain", "provider"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60), registry=REGISTRY)
voice_gateway_chain_runs = Counter(
    "voice_gateway_chain_runs", "Chain requests by result: primary (first usable provider answered), "
    "fallback (a later one did), failed (none did)", ["chain", "result"], registry=REGISTRY)
voice_gateway_chain_cost_usd = Counter(
    "voice_gateway_chain_cost_usd", "Estimated provider cost of answered chain requests, USD",
    ["chain", "provider"], registry=REGISTRY)
# -- the cost ledger and daily budget (docs/costs.md) -------------------------------------------------
voice_gateway_cost_usd = Counter(
    "voice_gateway_cost_usd", "Provider cost from the price table and the providers' usage fields, USD, per "
    "billed attempt (chain `live` for calls)", ["chain", "provider"], registry=REGISTRY)
voice_gateway_budget_used_ratio = Gauge(
    "voice_gateway_budget_used_ratio", "Today's (UTC) spend over DAILY_BUDGET_USD (0 when no budget is set)",
    registry=REGISTRY)
voice_gateway_cost_preservation_mode = Gauge(
    "voice_gateway_cost_preservation_mode", "1 while the daily budget is used up and chains use only their "
    "primary provider", registry=REGISTRY)
voice_gateway_state_transitions = Counter(
    "voice_gateway_state_transitions", "Moves of the link and session state machines (gateway/states.py)",
    ["machine", "from_state", "to_state"], registry=REGISTRY)
# fleet mode and operator controls (docs/fleet.md)
voice_gateway_fleet_registry_errors = Counter(
    "voice_gateway_fleet_registry_errors", "Failed Redis operations of the fleet registry (calls go on)",
    ["operation"], registry=REGISTRY)
voice_gateway_fleet_registry_up = Gauge(
    "voice_gateway_fleet_registry_up", "1 while the last fleet registry write succeeded (fleet mode only)",
    registry=REGISTRY)
voice_gateway_fleet_forwarded_commands = Counter(
    "voice_gateway_fleet_forwarded_commands", "Admin commands forwarded to the replica holding the call",
    ["command", "status"], registry=REGISTRY)
voice_gateway_operator_actions = Counter(
    "voice_gateway_operator_actions", "Audited operator actions",
    ["action"], registry=REGISTRY)
voice_gateway_provider_disabled = Gauge(
    "voice_gateway_provider_disabled", "1 while an operator has disabled the provider",
    ["provider"], registry=REGISTRY)
voice_gateway_build = Info("voice_gateway_build", "Build information", registry=REGISTRY)
voice_gateway_build.info({"version": __version__})


def exposition() -> bytes:
    return generate_latest(REGISTRY)


def sample(name: str, labels: dict[str, str] | None = None) -> float | None:
    """Current value of one sample (tests and the admin API)."""
    return REGISTRY.get_sample_value(name, labels or {})


ERROR_TYPES = ("timeout", "auth", "rate_limit", "server", "protocol", "network")
SWITCH_REASONS = ("circuit_open", "reconnect_failed", "operator", "client", "fatal_error", "return_to_primary")
CLIENTS = ("native", "twilio", "telnyx", "vonage")
BREAKER_STATUSES = ("attempted", "success", "failure", "rejected")
# every move a breaker can make (natural, operator reset, forced open), as metric labels
BREAKER_TRANSITIONS = (("closed", "open"), ("open", "half_open"), ("half_open", "closed"), ("half_open", "open"),
                       ("open", "closed"))


def initialize(providers: tuple[str, ...] | list[str]) -> None:
    """Create every bounded label set at zero at start-up, so `increase()` sees the first event and
    dashboards show 0 rather than "No data" before anything happened."""
    for p in providers:
        for t in ERROR_TYPES:
            ai_provider_errors.labels(p, t)
        for ok in ("true", "false"):
            ai_provider_reconnections.labels(p, ok)
        voice_gateway_provider_disabled.labels(p)
        for series in (voice_gateway_replay_dropped_chunks, voice_gateway_replayed_chunks,
                       ai_provider_active_sessions, voice_gateway_sessions_reconnecting,
                       ai_provider_audio_chunks_sent, ai_provider_audio_chunks_received,
                       voice_gateway_replay_buffer_chunks):
            series.labels(p)
        for q in providers:
            if q != p:
                for reason in SWITCH_REASONS:
                    voice_gateway_provider_switches.labels(p, q, reason)
    for c in CLIENTS:
        voice_gateway_sessions_active.labels(c)
    for p in providers:
        labels = {"name": BREAKER_NAMES.get(p, f"{p}_provider"), "provider": p}
        for status in BREAKER_STATUSES:
            circuit_breaker_calls.labels(**labels, status=status)
        for status in ("success", "failure"):
            circuit_breaker_call_duration_seconds.labels(**labels, status=status)
        for src, dst in BREAKER_TRANSITIONS:
            circuit_breaker_state_transitions.labels(**labels, from_state=src, to_state=dst)


def initialize_chain(chain: str, providers: tuple[str, ...] | list[str], endpoint: str,
                     outcomes: tuple[str, ...], results: tuple[str, ...]) -> None:
    """The chain's bounded label sets at zero (see initialize())."""
    for p in providers:
        for o in outcomes:
            voice_gateway_chain_requests.labels(chain, p, o)
        for status in ("success", "failure"):
            ai_provider_requests.labels(p, endpoint, status)
        for t in ERROR_TYPES:
            ai_provider_errors.labels(p, t)
        voice_gateway_chain_cost_usd.labels(chain, p)
        voice_gateway_cost_usd.labels(chain, p)
        for q in providers:
            if q != p:
                voice_gateway_chain_fallbacks.labels(chain, p, q)
    for r in results:
        voice_gateway_chain_runs.labels(chain, r)
    for p in providers:  # the chain's breakers, named <provider>_<chain>
        labels = {"name": f"{p}_{chain}", "provider": p}
        for status in BREAKER_STATUSES:
            circuit_breaker_calls.labels(**labels, status=status)
        for status in ("success", "failure"):
            circuit_breaker_call_duration_seconds.labels(**labels, status=status)
        for src, dst in BREAKER_TRANSITIONS:
            circuit_breaker_state_transitions.labels(**labels, from_state=src, to_state=dst)
