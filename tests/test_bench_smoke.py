"""The load benchmark keeps working: a few seconds, a handful of calls (benchmarks/load.py --smoke).

Structure and frame flow are asserted, never speed: figures depend on the machine.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from audio.convert import FormatConverter
from audio.formats import MULAW_8K, PCM16_8K, PCM16_16K, PCM16_24K, AudioFormat
from benchmarks.marker import GARBLED, MARKER, SILENCE, MarkerStream, marker_frame, silence_frame, tone_frames

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(60)
def test_smoke_run_prints_the_table_and_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    proc = subprocess.run([sys.executable, "benchmarks/load.py", "--smoke", "--json", str(out),
                           "--workdir", str(tmp_path / "work")], cwd=REPO, capture_output=True, text=True,
                          timeout=50)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "added up p99" in proc.stdout and "CPU s/call-min" in proc.stdout
    report = orjson.loads(out.read_bytes())
    rows = {(r["path"], r["target"]): r for r in report["runs"]}
    assert set(rows) == {("gemini (baseline)", "direct"), ("gemini (baseline)", "relay"),
                         ("gemini (baseline)", "stack"), ("native", "gateway")}
    for row in rows.values():
        assert row["calls"] == 4 and row["calls_failed"] == 0
        assert row["frames_sent"] > 0 and row["frames_echoed"] > 0  # frames flowed, and came back matched
        assert row["frames_echoed"] + row["frames_lost"] == row["frames_sent"]
        for direction in ("uplink_ms", "downlink_ms", "round_trip_ms"):
            assert set(row[direction]) == {"p50", "p95", "p99", "max"}
            assert row[direction]["p50"] is not None
    gateway = rows[("native", "gateway")]
    for key in ("cpu_s_per_call_minute", "cpu_us_per_frame", "peak_rss_kib_per_call", "cpu_vs_relay", "cpu_vs_stack"):
        assert key in gateway
    assert set(gateway["added"]) == {"uplink_ms", "downlink_ms"}
    assert "cpu_s_per_call_minute" in rows[("gemini (baseline)", "relay")]
    assert "cpu_vs_relay" in rows[("gemini (baseline)", "stack")]
    assert "cpu_s_per_call_minute" not in rows[("gemini (baseline)", "direct")]


@pytest.mark.timeout(60)
def test_the_floor_relay_relays_every_frame_both_ways(tmp_path: Path) -> None:
    """benchmarks/relay_floor.py relays in aiohttp's parser callback: every frame still arrives, once,
    matched, and its row is compared with the bare relay's."""
    out = tmp_path / "load.json"
    proc = subprocess.run([sys.executable, "benchmarks/load.py", "--smoke", "--targets", "relay,floor", "--json",
                           str(out), "--workdir", str(tmp_path / "work")], cwd=REPO, capture_output=True,
                          text=True, timeout=50)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = {r["target"]: r for r in orjson.loads(out.read_bytes())["runs"]}
    floor = rows["floor"]
    assert floor["calls"] == 4 and floor["calls_failed"] == 0
    assert floor["frames_sent"] > 0 and floor["frames_echoed"] == floor["frames_sent"] and floor["frames_lost"] == 0
    assert floor["duplicates_client"] == 0
    assert "cpu_vs_relay" in floor


def test_unknown_path_is_refused_without_starting_anything() -> None:
    proc = subprocess.run([sys.executable, "benchmarks/load.py", "--paths", "carrier-pigeon"], cwd=REPO,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "unknown path(s): carrier-pigeon" in proc.stderr


@pytest.mark.parametrize(("src", "dst"), [(PCM16_16K, PCM16_24K), (MULAW_8K, PCM16_16K), (PCM16_24K, MULAW_8K),
                                          (PCM16_8K, PCM16_16K), (PCM16_24K, PCM16_8K), (MULAW_8K, MULAW_8K)])
def test_markers_survive_the_gateway_converters_in_any_chunking(src: AudioFormat, dst: AudioFormat) -> None:
    """What the benchmark's frame matching rests on: through the gateway's own resamplers and G.711
    codec, cut at arbitrary places, every frame decodes to the number it was sent with."""
    conv, stream = FormatConverter(src, dst), MarkerStream(dst)
    sent = [seq if seq % 9 else None for seq in range(4000, 4200)]  # wraps past 4095; some silence
    out = b"".join(conv.convert(marker_frame(s, src) if s is not None else silence_frame(src)) for s in sent)
    decoded = []
    for i in range(0, len(out), 77):  # odd cuts: mid-sample, mid-frame
        decoded += stream.feed(out[i:i + 77])
    assert [d.seq if d.kind == MARKER else None for d in decoded] == [s % 4096 if s is not None else None for s in sent]
    assert all(d.kind in (MARKER, SILENCE) for d in decoded)


def test_a_dtmf_tone_is_never_read_as_a_marker() -> None:
    stream = MarkerStream(PCM16_16K)
    kinds = [d.kind for f in tone_frames("5", PCM16_16K) for d in stream.feed(f)]
    assert kinds and set(kinds) == {GARBLED}


def test_the_client_decoder_realigns_after_the_gateway_drops_a_few_samples() -> None:
    """A provider switch discards the old resampler's held-back tail (≤ 1.7 ms): the frames after it
    must still be matched, not counted as lost."""
    fmt = PCM16_8K
    stream = MarkerStream(fmt, resync=True)
    audio = b"".join(marker_frame(s, fmt) for s in range(0, 40))
    cut = 20 * fmt.frame_bytes(20) + 2 * 13  # frame 20 loses its first 13 samples (1.6 ms)
    decoded = stream.feed(audio[:20 * fmt.frame_bytes(20)] + audio[cut:])
    assert [d.seq for d in decoded] == list(range(40))  # only the 13 lost samples are missing
    assert stream.realignments == 1


def test_frames_decoded_before_decode_the_same_and_a_cut_after_them_still_realigns() -> None:
    """The load side remembers each whole frame it decoded (its per-frame cost must stay far below
    the gateway's): a remembered frame must give the same numbers, and keep what a realignment needs."""
    fmt = MULAW_8K
    step = fmt.frame_bytes(20)
    audio = b"".join(marker_frame(s, fmt) for s in range(1000, 1030))
    first = MarkerStream(fmt, resync=True)
    assert [d.seq for i in range(30) for d in first.feed(audio[i * step:(i + 1) * step])] == list(range(1000, 1030))
    again = MarkerStream(fmt, resync=True)  # the same frames, now remembered
    decoded = [d for i in range(20) for d in again.feed(audio[i * step:(i + 1) * step])]
    decoded += again.feed(audio[20 * step + 13:])  # frame 20 loses its first 13 samples
    assert [d.seq for d in decoded] == list(range(1000, 1030))
    assert again.realignments == 1


def test_a_native_profile_is_split_into_syscalls_idle_and_user_space(tmp_path: Path) -> None:
    """benchmarks/profile_summary.py --native: what the gap to the bare relay was measured with."""
    from benchmarks.profile_summary import native_split

    root = "_run_module_as_main (<frozen runpy>:198);Runner.run (asyncio/runners.py:118);uv_run (core.c:452)"
    writer = "WebSocketWriter._write_websocket_frame (aiohttp/_websocket/writer.py:171)"
    profile = tmp_path / "p.txt"
    profile.write_text("\n".join([
        f"{root};epoll_pwait (libc.so.6) 30",
        f"{root};read (libc.so.6) 10",
        f"{root};push_audio (gateway/session.py:170);{writer};write (libc.so.6) 20",
        f"{root};push_audio (gateway/session.py:170);{writer};s_pack (_struct.c:1910) 3",
        f"{root};push_audio (gateway/session.py:166) 7",
        "garbage line without a count",
    ]))
    syscalls, by_module, by_function, total = native_split(profile)
    assert total == 70
    assert syscalls["epoll_pwait ← Runner.run (asyncio/runners.py)"] == 30
    assert syscalls["read ← Runner.run (asyncio/runners.py)"] == 10
    assert syscalls["write ← WebSocketWriter._write_websocket_frame (aiohttp/_websocket/writer.py)"] == 20
    assert by_module == {"gateway/session.py": 7, "aiohttp/_websocket/writer.py": 3}  # C charged to its caller
    assert by_function["push_audio (gateway/session.py)"] == 7


@pytest.mark.timeout(60)
@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="reads CPython 3.11's specialised instructions")
def test_the_specialisation_check_reports_each_path_and_finds_the_link_sink_sender_and_limiter_specialised() -> None:
    proc = subprocess.run([sys.executable, "benchmarks/specialisation.py", "--n", "300"], cwd=REPO,
                          capture_output=True, text=True, timeout=50)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for case in ("twilio-pcmu up:", "twilio-pcmu down:", "native up:", "native down:"):
        assert case in proc.stdout
    # attribute and method lookups it found generic, by function: none in the link's send, the sink's,
    # the sender's or the link's bookkeeping (float-int arithmetic, with no specialised form on 3.11, may be)
    lookups = [line for line in proc.stdout.splitlines()
               if any(f" {op} " in line for op in ("LOAD_ATTR", "LOAD_METHOD", "STORE_ATTR"))]
    assert any("CallSession.push_audio_now" in line for line in lookups)  # (`a and b`: b is not run per frame)
    for specialised in ("ProviderLink.send_audio_now", "frame_sender", "LinkConnection._sent",
                        "TelephonySink.send_audio_now", "FrameRateLimiter.check"):
        assert not [line for line in lookups if specialised in line], proc.stdout


def test_rounds_merge_into_the_median_round_with_median_ratios_and_every_loss_counted() -> None:
    from benchmarks import report

    def rnd(relay_us: float, gateway_us: float, lost: int) -> list[dict[str, object]]:
        base = {"relay": {"cpu_us_per_frame": relay_us}}
        figures = {"cpu_us_per_frame": gateway_us, "frames_lost": lost, "duplicates_client": 0}
        return [report.row({"cpu_us_per_frame": relay_us, "frames_lost": 0, "duplicates_client": 0}, "gemini",
                           "relay", base), report.row(figures, "native", "gateway", base)]

    # the machine drifts: the gateway's slowest round is also the relay's, so ratios are steadier
    merged = report.median_of_rounds([rnd(30.0, 45.0, 0), rnd(40.0, 52.0, 2), rnd(33.0, 40.0, 0)])
    relay, gateway = merged
    assert relay["cpu_us_per_frame"] == 33.0 and relay["rounds"] == 3
    assert gateway["cpu_us_per_frame"] == 45.0  # the median round's own figures
    assert gateway["cpu_vs_relay_by_round"] == [1.5, 1.3, 1.21]
    assert gateway["cpu_vs_relay"] == 1.3  # the median of the rounds' ratios, not 45 / 33
    assert gateway["frames_lost"] == 2  # a loss in any round shows
