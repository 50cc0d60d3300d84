"""Figures of a benchmark run from what the load generators and the echo fake recorded, and the
table printed at the end.

Latency per frame (all stamps are CLOCK_MONOTONIC of processes on one machine):
uplink = fake received − client sent; downlink = client received − fake sent. "Added" latency of a
path = its percentile minus the direct baseline's at the same call count (percentiles of the two
distributions, not of paired frames: the runs are separate).
"""

from __future__ import annotations

import difflib
import io
from pathlib import Path
from typing import Any

import numpy as np
import orjson

PERCENTILES = (50, 95, 99)


def _pcts(values_ns: np.ndarray) -> dict[str, float | None]:
    if values_ns.size == 0:
        return {f"p{p}": None for p in PERCENTILES} | {"max": None}
    ms = values_ns / 1e6
    out: dict[str, float | None] = {f"p{p}": round(float(np.percentile(ms, p)), 3) for p in PERCENTILES}
    out["max"] = round(float(ms.max()), 3)
    return out


def load_fake_stats(blob: bytes) -> dict[str, Any]:
    with np.load(io.BytesIO(blob)) as z:
        return {k: z[k] for k in z.files}


def analyse(loadgen_files: list[Path], fake: dict[str, Any]) -> dict[str, Any]:
    """Frame accounting and latency for one run."""
    fake_index = {str(t): i for i, t in enumerate(fake["tags"])}
    up: list[np.ndarray] = []
    down: list[np.ndarray] = []
    rtt: list[np.ndarray] = []
    late: list[np.ndarray] = []
    totals = dict(calls=0, calls_failed=0, frames_sent=0, frames_echoed=0, frames_lost=0, duplicates_client=0,
                  reordered=0, garbled=0, realignments=0, never_reached_provider=0)
    events: dict[str, int] = {}
    digits = dict(sent=0, lost=0, duplicated=0)
    for path in loadgen_files:
        with np.load(path) as z:
            lg = {k: z[k] for k in z.files}
        n = lg["send_ns"].shape[1]
        for k, v in orjson.loads(str(lg["events"])).items():
            events[k] = events.get(k, 0) + v
        for i, tag in enumerate(lg["tags"]):
            totals["calls"] += 1
            if not lg["opened"][i]:
                totals["calls_failed"] += 1
                continue
            send, recv = lg["send_ns"][i], lg["recv_ns"][i]
            sent = send >= 0
            echoed = sent & (recv >= 0)
            totals["frames_sent"] += int(sent.sum())
            totals["frames_echoed"] += int(echoed.sum())
            totals["frames_lost"] += int((sent & (recv < 0)).sum())
            totals["duplicates_client"] += int(lg["duplicates"][i])
            totals["reordered"] += int(lg["reordered"][i])
            totals["garbled"] += int(lg["garbled"][i])
            totals["realignments"] += int(lg["realignments"][i])
            rtt.append(recv[echoed] - send[echoed])
            lat = lg["late_ns"][i]
            late.append(lat[lat >= 0])
            j = fake_index.get(str(tag))
            if j is None:
                continue
            rx, tx = fake["rx_ns"][j][:n], fake["tx_ns"][j][:n]
            at_fake = sent & (rx >= 0)
            totals["never_reached_provider"] += int((sent & (rx < 0)).sum())
            up.append(rx[at_fake] - send[at_fake])
            both = echoed & (tx >= 0)
            down.append(recv[both] - tx[both])
            sent_digits = str(lg["digits_sent"])
            if sent_digits:
                _count_digits(sent_digits, str(fake["digits"][j]), digits)
    fake_calls = [str(t) for t in fake["tags"]]
    out: dict[str, Any] = {
        **totals,
        "uplink_ms": _pcts(np.concatenate(up) if up else np.zeros(0)),
        "downlink_ms": _pcts(np.concatenate(down) if down else np.zeros(0)),
        "round_trip_ms": _pcts(np.concatenate(rtt) if rtt else np.zeros(0)),
        "send_lateness_ms": _pcts(np.concatenate(late) if late else np.zeros(0)),
        "provider_connections": int(fake["connections"].sum()) if fake_calls else 0,
        "provider_duplicates": int(fake["duplicates"].sum()) if fake_calls else 0,
        "client_events": events,
    }
    if digits["sent"]:
        out["digits"] = digits
    return out


def _count_digits(sent: str, heard: str, acc: dict[str, int]) -> None:
    """Digits the provider heard vs sent, aligned in order: lost = sent but not heard, duplicated =
    heard more than once (a replay the provider had already consumed)."""
    matched = sum(b.size for b in difflib.SequenceMatcher(None, sent, heard, autojunk=False).get_matching_blocks())
    acc["sent"] += len(sent)
    acc["lost"] += len(sent) - matched
    acc["duplicated"] += len(heard) - matched


def added(path: dict[str, Any], direct: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Per direction and percentile: the path's latency minus the direct baseline's (ms)."""
    out: dict[str, dict[str, float | None]] = {}
    for d in ("uplink_ms", "downlink_ms"):
        out[d] = {}
        for p in PERCENTILES:
            a, b = path[d].get(f"p{p}"), direct[d].get(f"p{p}")
            out[d][f"p{p}"] = None if a is None or b is None else round(a - b, 3)
    return out


# -- the table --------------------------------------------------------------------------------------
def row(figures: dict[str, Any], path: str, target: str, base: dict[str, dict[str, Any]],
        before: dict[str, Any] | None = None) -> dict[str, Any]:
    """A table row: a run's figures, with its added latency over the direct baseline and its CPU
    per frame as ratios to the relays of the same round (`base`: figures by baseline target) and to
    the checkout before the change (`before`)."""
    out = {"path": path, "target": target, **figures}
    per_frame = figures.get("cpu_us_per_frame")
    if before is not None and per_frame and before.get("cpu_us_per_frame"):
        out["cpu_vs_base"] = round(per_frame / before["cpu_us_per_frame"], 2)
    if "direct" in base and target != "direct":
        out["added"] = added(figures, base["direct"])
    for ref in ("relay", "stack", "floor"):
        ref_frame = base.get(ref, {}).get("cpu_us_per_frame")
        if target in ("gateway", "gateway-base", "stack", "floor") and target != ref and per_frame and ref_frame:
            out[f"cpu_vs_{ref}"] = round(per_frame / ref_frame, 2)
    return out


def median_of_rounds(rounds: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rows measured in several rounds (each round the same targets, in the same order) as one row
    each: the round with the median CPU per frame, its ratios replaced by the medians of the rounds'
    ratios (each taken within its round), every round's ratio kept beside it, frames lost and
    duplicated summed over the rounds."""
    merged = []
    for same in zip(*rounds, strict=True):
        ranked = sorted(same, key=lambda r: r.get("cpu_us_per_frame") or 0.0)
        out = dict(ranked[(len(ranked) - 1) // 2])
        for key in [k for k in out if k.startswith("cpu_vs_")]:
            ratios = [r[key] for r in same if key in r]
            out[key], out[f"{key}_by_round"] = float(np.median(ratios)), ratios
        out["frames_lost"] = sum(r["frames_lost"] for r in same)
        out["duplicates_client"] = sum(r["duplicates_client"] for r in same)
        out["rounds"] = len(same)
        merged.append(out)
    return merged


def _f(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


COLUMNS = ("path", "target", "N", "up p50/p95/p99 ms", "down p50/p95/p99 ms", "added up p99", "added down p99",
           "CPU s/call-min", "µs/frame", "×relay", "×stack", "×floor", "RSS KiB/call", "lost", "dup", "notes")


def table(rows: list[dict[str, Any]]) -> str:
    lines = [[*COLUMNS]]
    for r in rows:
        u, d = r["uplink_ms"], r["downlink_ms"]
        add = r.get("added") or {}
        lines.append([
            r["path"], r["target"], str(r["calls"]),
            f"{_f(u['p50'])}/{_f(u['p95'])}/{_f(u['p99'])}", f"{_f(d['p50'])}/{_f(d['p95'])}/{_f(d['p99'])}",
            _f((add.get("uplink_ms") or {}).get("p99")), _f((add.get("downlink_ms") or {}).get("p99")),
            _f(r.get("cpu_s_per_call_minute"), 3), _f(r.get("cpu_us_per_frame"), 1), _f(r.get("cpu_vs_relay"), 2),
            _f(r.get("cpu_vs_stack"), 2), _f(r.get("cpu_vs_floor"), 2),
            _f(r.get("peak_rss_kib_per_call"), 0), str(r["frames_lost"]), str(r["duplicates_client"]),
            "; ".join(r.get("notes", [])),
        ])
    widths = [max(len(row[i]) for row in lines) for i in range(len(COLUMNS))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)
