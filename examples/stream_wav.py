"""Stream a WAV file to the voice gateway and save (or play) the spoken reply.

    python examples/stream_wav.py question.wav --url ws://127.0.0.1:8080/v1/voice --out reply.wav

Any WAV works: it is mixed to mono and resampled to PCM16 16 kHz, then sent in 20 ms frames at
real time (`--fast`: as fast as the socket takes it). Transcripts are printed as they arrive; the
reply (PCM16 24 kHz) is written to `--out`, and played too with `--play` when the optional
`sounddevice` package is installed. Ends when the assistant finished answering after the file,
or after `--wait` seconds without anything new.

Needs only what the gateway already installs (numpy, soundfile, soxr) and its client library
`voice_gateway_client`. With `make run` (no keys) the simulated providers answer: DTMF digits
in the audio are the words, and speech-to-speech providers speak the digits back as tones; plain
English is transcribed offline and answered in synthesized speech (docs/demo.md).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import numpy as np
import soundfile
import soxr

from voice_gateway_client import (
    AudioChunk,
    Error,
    SessionEnded,
    SessionStarted,
    Transcript,
    TurnCompleted,
    TurnInterrupted,
    connect,
)

IN_RATE, OUT_RATE, FRAME_S = 16000, 24000, 0.020


def load_pcm16_16k(path: str) -> bytes:
    audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if rate != IN_RATE:
        mono = soxr.resample(mono, rate, IN_RATE)
    return (np.clip(mono, -1.0, 1.0) * 32767).astype("<i2").tobytes()


async def stream(args: argparse.Namespace) -> int:
    pcm = load_pcm16_16k(args.wav)
    frame = int(IN_RATE * FRAME_S) * 2
    reply = bytearray()
    async with connect(args.url, provider=args.provider, token=args.token, instructions=args.instructions) as call:

        async def send_file() -> None:
            for i in range(0, len(pcm), frame):
                await call.send_audio(pcm[i:i + frame])
                if not args.fast:
                    await asyncio.sleep(FRAME_S)
            silence = bytes(frame)  # a little silence so the provider hears the end of the turn
            for _ in range(int(1.0 / FRAME_S)):
                await call.send_audio(silence)
                if not args.fast:
                    await asyncio.sleep(FRAME_S)

        sender = asyncio.create_task(send_file())
        events = call.events()
        try:
            while True:
                try:
                    event = await asyncio.wait_for(anext(events), args.wait)
                except (TimeoutError, StopAsyncIteration):
                    break
                match event:
                    case SessionStarted(provider=provider):
                        print(f"call started with {provider}")
                    case Transcript(final=True, role=role, text=text):
                        print(f"{role}: {text}")
                    case AudioChunk(data=data):
                        reply.extend(data)
                    case TurnInterrupted():
                        print("(barge-in)")
                    case Error(code=code, message=message):
                        print(f"error {code}: {message}", file=sys.stderr)
                    case TurnCompleted(role="assistant") if sender.done():
                        break
                    case SessionEnded(reason=reason):
                        print(f"call ended: {reason}")
                        break
        finally:
            sender.cancel()
        await call.end()
    samples = np.frombuffer(bytes(reply), dtype="<i2")
    soundfile.write(args.out, samples, OUT_RATE, subtype="PCM_16")
    print(f"reply: {len(samples) / OUT_RATE:.2f} s of audio written to {args.out}")
    if args.play and len(samples):
        try:
            import sounddevice  # optional: pip install sounddevice
        except ImportError:
            print("--play needs the sounddevice package; the reply is in the file", file=sys.stderr)
        else:
            sounddevice.play(samples, OUT_RATE, blocking=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Stream a WAV to the voice gateway; save the spoken reply.")
    p.add_argument("wav", help="the audio to send (any WAV; mixed to mono, resampled to 16 kHz)")
    p.add_argument("--url", default="ws://127.0.0.1:8080/v1/voice", help="the gateway's /v1/voice URL")
    p.add_argument("--provider", default="auto", help="gemini, openai, deepgram or auto")
    p.add_argument("--token", help="client token (needed when the gateway requires one)")
    p.add_argument("--instructions", help="system prompt for the assistant")
    p.add_argument("--out", default="reply.wav", help="where to write the reply (PCM16 24 kHz WAV)")
    p.add_argument("--play", action="store_true", help="also play the reply (needs sounddevice)")
    p.add_argument("--fast", action="store_true", help="send faster than real time")
    p.add_argument("--wait", type=float, default=10.0, help="give up after this many quiet seconds")
    return asyncio.run(stream(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
