"""One cost ledger for the gateway: chain attempts and live calls, per UTC day, chain and provider; and the
daily budget with its cost preservation mode (docs/costs.md).

Every attempt a provider bills reaches `record()` (the chain runner's cost hook; a live call's provider
minutes at a switch or at its end). The ledger adds it to today's totals and to
`voice_gateway_cost_usd_total{chain,provider}`, then checks the budget: at 80 % of DAILY_BUDGET_USD a
WARNING (once a day), at 100 % cost preservation mode (chains use only their primary provider) until
the next UTC midnight or an operator's `POST /admin/costs/reset-mode` (which holds for the rest of that
day). Days are UTC dates from an injectable `today()` so tests move midnight without waiting.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from gateway import metrics
from gateway.logs import log_event
from providers.chains.base import Price, Usage
from providers.chains.prices import PriceTable

log = logging.getLogger("gateway.costs")
WARN_RATIO = 0.8
HISTORY_DAYS = 7
LIVE = "live"


def utc_today() -> date:
    return datetime.now(UTC).date()


@dataclass(slots=True)
class Line:
    """One (chain, provider) of one day."""

    cost_usd: float = 0.0
    billed_attempts: int = 0
    minutes: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    # what the same usage would have cost on the chain's most expensive provider (the design's baseline)
    baseline_usd: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"cost_usd": round(self.cost_usd, 6), "billed_attempts": self.billed_attempts,
                "minutes": round(self.minutes, 4), "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens}


@dataclass(slots=True)
class ChainDay:
    requests: int = 0
    fallbacks: int = 0
    failed: int = 0


@dataclass(slots=True)
class Day:
    lines: dict[tuple[str, str], Line] = field(default_factory=lambda: defaultdict(Line))
    chains: dict[str, ChainDay] = field(default_factory=lambda: defaultdict(ChainDay))

    @property
    def cost_usd(self) -> float:
        return sum(line.cost_usd for line in self.lines.values())


class CostLedger:
    def __init__(self, prices: PriceTable, *, daily_budget_usd: float | None = None,
                 today: Callable[[], date] = utc_today) -> None:
        self.prices = prices
        self.daily_budget_usd = daily_budget_usd
        self._today = today
        self.days: dict[date, Day] = {}
        self.chain_prices: dict[str, list[tuple[str, str]]] = {}  # chain → [(provider, model)] for the baseline
        self._warned_day: date | None = None
        self._mode_day: date | None = None  # cost preservation mode is on for this day
        self._reset_day: date | None = None  # an operator ended the mode for this day
        # read at scrape time, so both gauges drop at UTC midnight without waiting for a request
        metrics.voice_gateway_budget_used_ratio.set_function(self.used_ratio)
        metrics.voice_gateway_cost_preservation_mode.set_function(lambda: 1.0 if self.preserving else 0.0)

    # -- recording ----------------------------------------------------------------------------------
    def price_for(self, chain: str, provider: str, model: str) -> Price | None:
        return self.prices.for_attempt(chain, provider, model)

    def record(self, chain: str, provider: str, cost_usd: float, usage: Usage, *, model: str = "",
               request_id: str = "") -> None:
        day = self._day()
        line = day.lines[(chain, provider)]
        line.cost_usd += cost_usd
        line.billed_attempts += 1
        line.minutes += (usage.audio_seconds or 0.0) / 60.0
        line.input_tokens += usage.input_tokens or 0
        line.output_tokens += usage.output_tokens or 0
        line.baseline_usd += max([cost_usd, *(p.cost_usd(usage) for p in self._chain_prices(chain))])
        metrics.voice_gateway_cost_usd.labels(chain, provider).inc(cost_usd)
        log_event(log, logging.DEBUG, "cost.recorded", f"{chain}/{provider}: ${cost_usd:.6f}", chain=chain,
                  provider=provider, model=model, cost_usd=round(cost_usd, 8), request_id=request_id)
        self._check_budget()

    def record_live(self, provider: str, seconds: float, *, session_id: str = "") -> float:
        """A live call's time on one provider; priced per minute when the table has `provider/live`."""
        price = self.prices.for_live(provider)
        if price is None or seconds <= 0:
            return 0.0
        usage = Usage(audio_seconds=seconds)
        cost = price.cost_usd(usage)
        self.record(LIVE, provider, cost, usage, request_id=session_id)
        return cost

    def record_request(self, chain: str, *, fallback: bool, failed: bool) -> None:
        c = self._day().chains[chain]
        c.requests += 1
        c.fallbacks += int(fallback)
        c.failed += int(failed)

    def _chain_prices(self, chain: str) -> list[Price]:
        out = []
        for provider, model in self.chain_prices.get(chain, []):
            price = self.prices.for_attempt(chain, provider, model)
            if price is not None:
                out.append(price)
        return out

    def _day(self) -> Day:
        today = self._today()
        if today not in self.days:
            self.days[today] = Day()
            for old in sorted(self.days)[:-HISTORY_DAYS]:
                del self.days[old]
        return self.days[today]

    # -- the budget ---------------------------------------------------------------------------------
    def spent_today(self) -> float:
        day = self.days.get(self._today())
        return day.cost_usd if day else 0.0

    def used_ratio(self) -> float:
        if not self.daily_budget_usd:
            return 0.0
        return self.spent_today() / self.daily_budget_usd

    @property
    def preserving(self) -> bool:
        """Cost preservation mode: on for the day the budget was used up (ends at UTC midnight)."""
        on = self._mode_day is not None and self._mode_day == self._today()
        if not on and self._mode_day is not None:  # midnight passed
            self._end_mode("utc_midnight")
        return on

    def _check_budget(self) -> None:
        ratio = self.used_ratio()
        if not self.daily_budget_usd:
            return
        today = self._today()
        if ratio >= WARN_RATIO and self._warned_day != today:
            self._warned_day = today
            log_event(log, logging.WARNING, "budget.warning",
                      f"{ratio:.0%} of the daily budget (${self.daily_budget_usd:g}) is spent", used_ratio=round(ratio, 4),
                      spent_usd=round(self.spent_today(), 6), budget_usd=self.daily_budget_usd)
        if ratio >= 1.0 and self._mode_day != today and self._reset_day != today:
            self._mode_day = today
            log_event(log, logging.ERROR, "budget.cost_preservation",
                      "the daily budget is used up: cost preservation mode (primary providers only, no fallbacks) "
                      "until UTC midnight", used_ratio=round(ratio, 4), spent_usd=round(self.spent_today(), 6),
                      budget_usd=self.daily_budget_usd)

    def reset_mode(self) -> bool:
        """The operator ends the mode for the rest of the UTC day. True if it was on."""
        was = self.preserving
        self._reset_day = self._today()
        self._end_mode("operator")
        return was

    def _end_mode(self, reason: str) -> None:
        if self._mode_day is None:
            return
        self._mode_day = None
        log_event(log, logging.WARNING, "budget.mode_ended", f"cost preservation mode ended ({reason})",
                  reason=reason)

    def budget_dict(self) -> dict[str, Any]:
        today = self._today()
        midnight = datetime.combine(today + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        return {"daily_budget_usd": self.daily_budget_usd, "spent_today_usd": round(self.spent_today(), 6),
                "used_ratio": round(self.used_ratio(), 6),
                "mode": "cost_preservation" if self.preserving else "normal",
                "mode_ends_at": midnight.isoformat().replace("+00:00", "Z") if self.preserving else None}

    # -- the report ---------------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        today = self._today()
        days = []
        for offset in range(HISTORY_DAYS):
            d = today - timedelta(days=offset)
            day = self.days.get(d, Day())
            by_chain: dict[str, dict[str, Any]] = {}
            for (chain, provider), line in sorted(day.lines.items()):
                entry = by_chain.setdefault(chain, {"cost_usd": 0.0, "baseline_usd": 0.0, "minutes": 0.0,
                                                    "providers": {}})
                entry["providers"][provider] = line.to_dict()
                entry["cost_usd"] += line.cost_usd
                entry["baseline_usd"] += line.baseline_usd
                entry["minutes"] += line.minutes
            for chain in day.chains:
                by_chain.setdefault(chain, {"cost_usd": 0.0, "baseline_usd": 0.0, "minutes": 0.0, "providers": {}})
            for chain, entry in by_chain.items():
                counts = day.chains.get(chain, ChainDay())
                entry["requests"] = counts.requests
                entry["fallbacks"] = counts.fallbacks
                entry["failed"] = counts.failed
                entry["fallback_rate"] = round(counts.fallbacks / counts.requests, 4) if counts.requests else 0.0
                entry["avg_cost_per_request_usd"] = (round(entry["cost_usd"] / counts.requests, 8)
                                                     if counts.requests else None)
                entry["avg_cost_per_minute_usd"] = (round(entry["cost_usd"] / entry["minutes"], 8)
                                                    if entry["minutes"] else None)
                entry["all_on_most_expensive_usd"] = round(entry.pop("baseline_usd"), 6)
                entry["savings_usd"] = round(entry["all_on_most_expensive_usd"] - entry["cost_usd"], 6)
                entry["cost_usd"] = round(entry["cost_usd"], 6)
                entry["minutes"] = round(entry["minutes"], 4)
            days.append({"date": d.isoformat(), "cost_usd": round(day.cost_usd, 6), "chains": by_chain})
        return {"today": days[0], "last_7_days": days, "budget": self.budget_dict(),
                "prices": {"source": self.prices.source, "entries": self.prices.to_public_dict()}}
