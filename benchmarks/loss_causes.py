"""Why a long-run call lost words, from what its client saw (benchmarks/calls.py CallResult): when
each word was sent, and when the events that interrupt a call arrived.

A call is *down* from the first `connection.reconnecting` of an outage (or an `error`
provider_unavailable: no provider admits it) until `connection.reconnected` or `provider.switched`;
how each outage ended is its outcome (`outage_outcomes`). A lost word (sent, never in a user
`transcript.final`) is put down to the first cause that fits, in this order:

- `outage_beyond_replay_bound`: sent while the call was down and the gateway reported dropped
  audio for the call (`session.ended` totals: the replay buffer keeps the newest 100 chunks, 2 s);
- `outage`: sent while down, nothing dropped (would be a defect: the buffer should replay it);
- `before_cut_beyond_replay_bound`: sent in the `PRE_CUT_S` before an outage began or the call
  switched away, on a connection that then died or was left (a stall is noticed 7.5 s, Gemini 9 s,
  after the provider's last byte: audio sent meanwhile that overflowed the replay buffer is gone),
  with dropped audio reported for the call;
- `before_cut`: the same with nothing dropped (would be a defect);
- `around_switch`: sent within `SWITCH_BEFORE_S`/`SWITCH_AFTER_S` of a `provider.switched`;
- `call_end`: sent in the last `END_S` before `session.end` (the provider had not finalized it);
- `unexplained`: none of these (a defect, or the recognizer).

Before the timing causes: `split_in_two_turns`, every digit heard but in two user transcripts (the
word's two parts are among the call's misheard words): a segmentation error, no audio lost.

Heard words that were never sent are `misheard` (a garbled recognition); a sent word heard more
often than sent is `duplicated`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

PRE_CUT_S = 10.0
SWITCH_BEFORE_S, SWITCH_AFTER_S = 3.0, 1.0
END_S = 3.0


@dataclass(frozen=True, slots=True)
class Outage:
    start: float
    end: float
    began: str  # "reconnecting" | "no_provider"
    outcome: str  # reconnected | switched_<reason> | gave_up | call_ended


def outages(timeline: list[tuple[float, str, str]], ended_at: float) -> list[Outage]:
    out: list[Outage] = []
    start: float | None = None
    began, failed = "", False
    for t, kind, detail in sorted(timeline):
        if kind == "connection.reconnecting" and start is None:
            start, began, failed = t, "reconnecting", False
        elif kind == "error" and detail == "provider_unavailable" and start is None:
            start, began, failed = t, "no_provider", False
        elif kind == "connection.failed" and start is not None:
            failed = True
        elif kind in ("connection.reconnected", "provider.switched") and start is not None:
            outcome = "reconnected" if kind == "connection.reconnected" else f"switched_{detail}"
            out.append(Outage(start, t, began, outcome))
            start = None
    if start is not None:
        out.append(Outage(start, max(ended_at, start), began, "gave_up" if failed else "call_ended"))
    return out


def lost_word_times(result: Any) -> list[float]:
    """Send times of the lost words (for a word sent n times and heard m < n times: its last n - m)."""
    deficit = result.sent - result.heard
    times: list[float] = []
    for t, word in reversed(result.word_times):
        if deficit[word] > 0:
            deficit[word] -= 1
            times.append(t)
    return times


def cause_of(t: float, result: Any, downs: list[Outage]) -> str:
    dropped = result.dropped_chunks > 0
    for o in downs:
        if o.start <= t <= o.end:
            return "outage_beyond_replay_bound" if dropped else "outage"
    # a cut: an outage began, or the call switched away (from a connection that may have stalled unnoticed)
    cuts = [o.start for o in downs] + [st for st, kind, _ in result.timeline if kind == "provider.switched"]
    if any(c - PRE_CUT_S <= t < c for c in cuts) and dropped:
        return "before_cut_beyond_replay_bound"
    if any(c - PRE_CUT_S <= t < c for c in [o.start for o in downs]):
        return "before_cut"
    for st, kind, _ in result.timeline:
        if kind == "provider.switched" and st - SWITCH_BEFORE_S <= t <= st + SWITCH_AFTER_S:
            return "around_switch"
    if result.ended_at and result.ended_at - END_S <= t:
        return "call_end"
    return "unexplained"


EXPECTED = frozenset({"outage_beyond_replay_bound", "before_cut_beyond_replay_bound"})


def _split(word: str, fragments: Counter[str]) -> bool:
    """`word` was heard as two user turns (every digit arrived, in two transcripts): its two parts
    are among the call's misheard words (they are used up)."""
    for i in range(1, len(word)):
        a, b = word[:i], word[i:]
        if fragments[a] > 0 and fragments[b] > (a == b):
            fragments[a] -= 1
            fragments[b] -= 1
            return True
    return False


def attribute(results: list[Any]) -> dict[str, Any]:
    causes: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    misheard = duplicated = 0
    details: list[dict[str, Any]] = []  # every loss not explained by the replay bound, to look into
    for r in results:
        downs = outages(r.timeline, r.ended_at or (r.word_times[-1][0] if r.word_times else 0.0))
        for o in downs:
            outcomes[f"{o.began}:{o.outcome}"] += 1
        extra = r.heard - r.sent
        wrong = sorted(w for w in extra if w not in r.sent)
        t0 = r.word_times[0][0] if r.word_times else 0.0
        fragments = Counter({w: extra[w] for w in wrong})
        for t in lost_word_times(r):
            word = next(w for wt, w in r.word_times if wt == t)
            cause = "split_in_two_turns" if _split(word, fragments) else cause_of(t, r, downs)
            causes[cause] += 1
            if cause not in EXPECTED:
                details.append({"call": r.provider, "session_id": r.session_id, "cause": cause, "word": word,
                                "sent_at_s": round(t - t0, 2), "misheard_in_call": wrong,
                                "events": [f"{round(et - t0, 2)}:{k}:{d}" for et, k, d in r.timeline
                                           if abs(et - t) < 15]})
        misheard += sum(extra[w] for w in wrong)
        duplicated += sum(n for w, n in extra.items() if w in r.sent)
    return {"words_lost_by_cause": dict(sorted(causes.items())), "outage_outcomes": dict(sorted(outcomes.items())),
            "words_misheard": misheard, "words_duplicated_exact": duplicated,
            "dropped_audio_chunks": sum(r.dropped_chunks for r in results), "losses_to_look_into": details}
