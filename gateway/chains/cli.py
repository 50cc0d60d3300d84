"""`voice-gateway transcribe FILE` and `voice-gateway providers check`.

transcribe: against a running gateway (`--url`, POST /api/v1/transcribe) or in-process with the
configured providers (embedded fakes for those without key or base URL). Prints the text, then one
line with provider, model, cost and fallback; exit 1 when no provider answered, 2 on bad input/config.

providers check: one cheap authenticated request per configured provider (models list or equivalent),
printing reachability, auth result and latency; keys never printed. Exit 1 if a configured one fails;
simulated providers (no key, no base URL) are listed and not checked.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from gateway.chains.http import AiohttpExchange, ExchangeFailed
from gateway.chains.settings import rest_base_url
from gateway.config import Settings, load_settings
from gateway.errors import ClientError, ConfigError
from gateway.logs import configure_logging
from providers.chains.base import ChainEndpoint, HttpRequest
from providers.chains.health import gemini_health_request
from providers.chains.transcription import TranscriptionOptions, sniff_audio
from providers.registry import chain_translator

GEMINI_REST = "https://generativelanguage.googleapis.com"


def add_parsers(sub: Any) -> None:
    t = sub.add_parser("transcribe", help="transcribe an audio file through the transcription chain")
    t.add_argument("file")
    t.add_argument("--language", default="en")
    t.add_argument("--quality", default="standard", choices=["standard", "high"])
    t.add_argument("--url", help="a running gateway, e.g. http://127.0.0.1:8080 (default: in-process)")
    t.add_argument("--token", help="client token for --url (when the gateway requires one)")
    t.add_argument("--json", action="store_true", help="print the whole JSON answer")
    t.set_defaults(func=run_transcribe)
    p = sub.add_parser("providers", help="provider tools: `providers check`")
    p.add_argument("action", choices=["check"])
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per provider")
    p.set_defaults(func=run_providers_check)


# -- transcribe -----------------------------------------------------------------------------------
def run_transcribe(args: argparse.Namespace) -> int:
    try:
        audio = Path(args.file).read_bytes()
    except OSError as err:
        print(f"voice-gateway transcribe: cannot read {args.file}: {err.strerror}", file=sys.stderr)
        return 2
    try:
        status, body = asyncio.run(_remote(args, audio) if args.url else _local(args, audio))
    except (ClientError, ConfigError) as err:
        print(f"voice-gateway transcribe: {err.code}: {err.message}", file=sys.stderr)
        return 2
    except aiohttp.ClientError as err:
        print(f"voice-gateway transcribe: cannot reach {args.url} ({err.__class__.__name__})", file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif status == 200:
        print(body["text"])
        print(f"provider: {body['provider']}  model: {body['model']}  cost: ${body['cost_usd']:.6f}  "
              f"fallback: {'yes' if body['fallback_used'] else 'no'}")
    else:
        error = body.get("error", {})
        print(f"voice-gateway transcribe: {error.get('code')}: {error.get('message')}", file=sys.stderr)
        for a in body.get("attempts", []):
            detail = f"{a.get('code') or ''} {a.get('status') or ''}"
            print(f"  {a['provider']}: {a['outcome']} {detail}", file=sys.stderr)
    return 0 if status == 200 else (2 if 400 <= status < 500 else 1)


async def _remote(args: argparse.Namespace, audio: bytes) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/octet-stream"}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    params = {"language": args.language, "quality": args.quality}
    async with aiohttp.ClientSession() as http:
        async with http.post(args.url.rstrip("/") + "/api/v1/transcribe", data=audio, headers=headers,
                             params=params) as res:
            return res.status, await res.json(content_type=None)


async def _local(args: argparse.Namespace, audio: bytes) -> tuple[int, dict[str, Any]]:
    from gateway.chains.service import ChainService

    settings = load_settings()
    configure_logging(level="WARNING", stream=sys.stderr)
    service = ChainService(settings)
    try:
        options = TranscriptionOptions(audio=audio, kind=sniff_audio(audio), language=args.language,
                                       quality=args.quality)
        outcome = await service.transcribe(options)
    finally:
        await service.stop()
    attempts = [a.to_dict() for a in outcome.attempts]
    if not outcome.ok:
        return 502, {"error": {"code": outcome.code, "message": "every transcription provider failed"},
                     "attempts": attempts}
    return 200, {"text": outcome.result.text, "provider": outcome.provider, "model": outcome.model,
                 "fallback_used": outcome.fallback_used, "cost_usd": outcome.cost_usd, "attempts": attempts,
                 "duration_s": outcome.result.duration_s, "request_id": outcome.request_id}


# -- providers check ------------------------------------------------------------------------------
def _checks(settings: Settings) -> list[tuple[str, str, ChainEndpoint | None, HttpRequest | None]]:
    """(provider, mode, endpoint, request) for every provider, live-call and chain alike."""
    out: list[tuple[str, str, ChainEndpoint | None, HttpRequest | None]] = []
    gemini = settings.providers.get("gemini")
    if gemini is not None:
        if gemini.simulated:
            out.append(("gemini", "simulated", None, None))
        else:
            ep = ChainEndpoint(base_url=rest_base_url("GEMINI_BASE_URL", gemini.base_url) or GEMINI_REST,
                               api_key=gemini.api_key or "", key_env="GEMINI_API_KEY")
            out.append(("gemini", "live", ep, gemini_health_request(ep)))
    for name, ps in settings.chains.providers.items():
        if ps.simulated:
            out.append((name, "simulated", None, None))
            continue
        ep = ChainEndpoint(base_url=ps.live_base_url, api_key=ps.api_key or "", key_env=ps.key_env)
        out.append((name, "live", ep, chain_translator("transcription", name)().health_request(ep)))
    return out


async def _check_all(settings: Settings, timeout_s: float) -> list[dict[str, Any]]:
    exchange = AiohttpExchange()
    rows: list[dict[str, Any]] = []
    try:
        for name, mode, ep, request in _checks(settings):
            row: dict[str, Any] = {"provider": name, "mode": mode, "base_url": ep.base_url if ep else None,
                                   "reachable": None, "auth": None, "latency_ms": None, "ok": True}
            if ep is not None and request is not None:
                if not ep.api_key:
                    row.update(auth=f"no key ({ep.key_env} unset)", ok=False)
                started = time.perf_counter()
                try:
                    response = await exchange(request, timeout_s)
                    row["reachable"] = True
                    row["status"] = response.status
                    if response.status in (401, 402, 403):
                        row.update(auth=f"refused (HTTP {response.status}): check {ep.key_env}", ok=False)
                    elif 200 <= response.status < 300:
                        row["auth"] = row["auth"] or "ok"
                    else:
                        row.update(auth=row["auth"] or f"unknown (HTTP {response.status})", ok=False)
                except TimeoutError:
                    row.update(reachable=False, auth="timeout", ok=False)
                except ExchangeFailed as err:
                    row.update(reachable=False, auth=f"unreachable ({err})", ok=False)
                row["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
            rows.append(row)
    finally:
        await exchange.close()
    return rows


def run_providers_check(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
    except ConfigError as err:
        print(f"voice-gateway providers check: {err.message}", file=sys.stderr)
        return 2
    rows = asyncio.run(_check_all(settings, args.timeout))
    print(f"{'provider':<10} {'mode':<10} {'reachable':<10} {'latency':>9}  auth / base URL (keys masked)")
    for r in rows:
        reach = "-" if r["reachable"] is None else ("yes" if r["reachable"] else "no")
        latency = "-" if r["latency_ms"] is None else f"{r['latency_ms']:.0f} ms"
        detail = "not checked (embedded fake)" if r["mode"] == "simulated" else f"{r['auth']}  {r['base_url']}"
        print(f"{r['provider']:<10} {r['mode']:<10} {reach:<10} {latency:>9}  {detail}")
    return 0 if all(r["ok"] for r in rows) else 1
