"""Readiness-audit defects (issue 12) over real sockets: hang-up without an unhandled exception (5),
provider_options on the fakes' wire (6), the audit trail (7), key rotation (8), /readyz in
production (9), Deepgram STT-only text and tool results (11). Each failed on main before the fix.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp
import orjson
import pytest
import websockets

from audio.formats import PCM16_16K
from gateway.app import create_app
from gateway.config import Settings
from gateway.logs import JsonFormatter, set_environment
from gateway.runtime import Runtime
from gateway.serve import start_server
from providers.fakes.common import Fault, FaultScript
from tests.harness import FAKE_KEYS, Gateway, dtmf_utterance

pytestmark = pytest.mark.timeout(60)


def json_lines(caplog: pytest.LogCaptureFixture) -> list[dict]:
    fmt = JsonFormatter()
    return [orjson.loads(fmt.format(r)) for r in caplog.records]


async def until(cond: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Poll a condition the test cannot await directly (server-side state), with a deadline."""
    async with asyncio.timeout(timeout_s):
        while not cond():  # noqa: ASYNC110 - server state has no event to wait on
            await asyncio.sleep(0.01)
    assert cond(), what


# -- 5. hang-up right after session.end ---------------------------------------------------------------
async def test_session_end_then_immediate_close_logs_no_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with Gateway(fallback=("gemini",)) as gw:
        for _ in range(5):
            async with gw.client() as c:
                await c.start("gemini")
                await c.send({"type": "session.end"})
            # the client closed at once, without reading session.ended
        await until(lambda: not gw.runtime.sessions, "all sessions ended")
    # the server has stopped: every connection handler has finished and logged what it would
    assert not [r.getMessage() for r in caplog.records if r.name == "aiohttp.server"]  # no handler raised
    assert [(r.name, r.getMessage()) for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_malformed_provider_frame_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    faults = {"gemini": FaultScript().add(1, Fault(kind="malformed"))}
    async with Gateway(faults=faults, fallback=("gemini",)) as gw, gw.client() as c:
        await c.start("gemini")
        await gw.fakes["gemini"].fault_fired(1, "malformed")
        await until(lambda: any(x["event"] == "provider.error" for x in json_lines(caplog)), "provider.error log")
    line = next(x for x in json_lines(caplog) if x["event"] == "provider.error")
    assert (line["level"], line["provider"], line["error_type"]) == ("WARNING", "gemini", "protocol")


# -- 6. provider_options reach the providers ------------------------------------------------------------
@pytest.mark.parametrize(("provider", "options", "check"), [
    ("gemini", {"proactive_audio": True, "thinking_budget": 0},
     lambda r: r.messages[0]["setup"]["proactivity"] == {"proactiveAudio": True}),
    ("openai", {"noise_reduction": "near_field", "semantic_vad": "low"},
     lambda r: r.setup["audio"]["input"]["noise_reduction"] == {"type": "near_field"}
     and r.setup["audio"]["input"]["turn_detection"]["type"] == "semantic_vad"),
    ("deepgram", {"keyterm": ["Acme"], "smart_format": True},
     lambda r: r.query.get("smart_format") == "true"),
])
async def test_provider_options_arrive_and_unknown_ones_are_warned(provider: str, options: dict,
                                                                   check: Callable) -> None:
    async with Gateway(fallback=(provider,)) as gw, gw.client() as c:
        await c.start(provider, provider_options={provider: {**options, "frobnicate": 1}})
        warning = await c.wait_for("warning")
        assert warning["code"] == "unknown_option" and f"{provider}.frobnicate" in warning["message"]
        await until(lambda: gw.fakes[provider].connections and (
            gw.fakes[provider].connections[0].setup or gw.fakes[provider].connections[0].messages
            or gw.fakes[provider].connections[0].query), "setup recorded")
        if provider == "openai":
            await until(lambda: "noise_reduction" in str(gw.fakes[provider].connections[0].setup), "session.update")
        assert check(gw.fakes[provider].connections[0])
        assert not c.of_type("error")


# -- 7. audit trail -----------------------------------------------------------------------------------------
async def test_security_actions_leave_one_audit_line_each(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    client_token, admin_token = "client-token-0123456789", "admin-token-abcdefghij"
    async with Gateway(client_tokens=(client_token,), admin_token=admin_token,
                       keys={"deepgram": "dgWRONG-key-000000"}) as gw:
        with pytest.raises(websockets.InvalidStatus):  # refused upgrade: wrong token
            async with websockets.connect(gw.url + "/v1/voice",
                                          additional_headers={"Authorization": "Bearer not-the-token"}):
                pass
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{gw.http}/admin/circuits") as r:
                assert r.status == 401
            async with http.get(f"{gw.http}/admin/circuits", headers={"Authorization": "Bearer guess"}) as r:
                assert r.status == 403
            auth = {"Authorization": f"Bearer {admin_token}"}
            async with gw.client(headers={"Authorization": f"Bearer {client_token}"}) as c:
                started = await c.start("gemini")
                async with http.post(f"{gw.http}/admin/sessions/{started['session_id']}/switch", headers=auth,
                                     json={"provider": "openai"}) as r:
                    assert r.status == 200
                async with http.post(f"{gw.http}/admin/sessions/{started['session_id']}/switch", headers=auth,
                                     json={"provider": "deepgram"}) as r:  # the wrong deepgram key
                    assert r.status == 409
            async with http.post(f"{gw.http}/admin/circuits/deepgram/reset", headers=auth) as r:
                assert r.status == 200
    audit = [x for x in json_lines(caplog) if x["event"] == "audit"]
    by_action = {(x["action"], x["outcome"]): x for x in audit}
    refused = by_action[("native.upgrade", "refused")]
    assert refused["actor"].startswith("tok-") and refused["status"] == 403
    denied = [x for x in audit if x["action"] == "admin.access"]
    assert sorted(x["status"] for x in denied) == [401, 403] and {x["path"] for x in denied} == {"/admin/circuits"}
    assert {x["actor"] for x in audit if x["outcome"] == "denied"} >= {"anonymous"}
    assert by_action[("session.switch", "ok")]["target"] == "openai"
    assert by_action[("provider.key", "rejected")]["provider"] == "deepgram"
    assert by_action[("circuit.reset", "ok")]["provider"] == "deepgram"
    admin_actor = by_action[("circuit.reset", "ok")]["actor"]
    assert admin_actor == by_action[("session.switch", "ok")]["actor"] != "anonymous"
    for x in audit:
        assert x["remote_addr"] and x["actor"]
        if x["action"] != "provider.key":
            assert x["remote_addr"].startswith("127.0.0.1:")
    text = "\n".join(orjson.dumps(x).decode() for x in audit)
    assert client_token not in text and admin_token not in text and "not-the-token" not in text


# -- 8. key rotation ------------------------------------------------------------------------------------------
async def test_a_rotated_key_file_is_used_by_the_next_connection_and_the_call_goes_on(
        tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    new_key = "AIzaROTATED-gemini-key-5e6f7a8b9c0d"
    key_file = tmp_path / "gemini.key"
    key_file.write_text(FAKE_KEYS["gemini"] + "\n")
    drop = Fault(kind="drop", audio_bytes=16000)  # connection 1 dies 0.5 s into the digits
    async with Gateway(faults={"gemini": FaultScript().add(1, drop)}, fallback=("gemini",),
                       key_files={"gemini": str(key_file)}, key_watch_interval_s=0.05) as gw, gw.client() as c:
        await c.start("gemini", input_format=PCM16_16K)
        key_file.write_text(new_key + "\n")
        gw.fakes["gemini"].api_key = new_key  # the provider now accepts only the new key
        await until(lambda: gw.runtime.endpoints["gemini"].api_key == new_key, "key reloaded")
        await c.send_audio(dtmf_utterance("1234", PCM16_16K), PCM16_16K)
        await c.wait_for("connection.reconnected", timeout=10)
        final = await c.wait_for("transcript.final", lambda e: e["role"] == "user", timeout=10)
        assert final["text"] == "1234"
        assert not c.of_type("connection.failed") and not c.of_type("provider.switched")
        assert gw.runtime.reload_keys("sighup") == {"gemini": "unchanged"}  # the SIGHUP path
    reload = next(x for x in json_lines(caplog) if x["event"] == "audit" and x["action"] == "config.reload")
    assert (reload["outcome"], reload["trigger"], reload["key_source"]) == ("ok", "file_watch", f"file:{key_file}")
    assert new_key not in caplog.text


# -- 9. production with a simulated provider is not ready ---------------------------------------------------
async def test_readyz_fails_in_production_while_a_provider_is_simulated() -> None:
    rt = Runtime(Settings(environment="production"))
    await rt.start()
    runner, port = await start_server(create_app(rt.settings, runtime=rt), "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as r:
            body = await r.json()
            assert r.status == 503
        assert body["status"] == "not_ready" and body["environment"] == "production"
        assert "gemini, openai, deepgram" in body["reason"]
    finally:
        await runner.cleanup()
        await rt.stop()
        set_environment(None)


# -- 11. Deepgram is speech-to-text only ------------------------------------------------------------------
async def test_deepgram_answers_text_and_tool_results_with_an_explicit_error() -> None:
    async with Gateway(fallback=("deepgram",)) as gw, gw.client() as c:
        await c.start("deepgram")
        await c.send({"type": "text", "text": "hello"})
        first = await c.wait_for("error")
        await c.send({"type": "tool.result", "call_id": "call_1", "output": "42"})
        second = await c.wait_for("error", start=c.events.index(first) + 1)
        for e in (first, second):
            assert (e["code"], e["provider"]) == ("not_supported", "deepgram")
        assert "text input" in first["message"] and "tool.result" in second["message"]


# -- text input on the speech-to-speech providers ------------------------------------------------------------
@pytest.mark.parametrize("provider", ["gemini", "openai"])
async def test_text_input_gets_a_spoken_reply(provider: str) -> None:
    async with Gateway(fallback=(provider,)) as gw, gw.client() as c:
        await c.start(provider)
        await c.send({"type": "text", "text": "please say 42"})
        reply = await c.wait_for("transcript.final", lambda e: e["role"] == "assistant", timeout=10)
        assert "42" in reply["text"]
        await c.wait_until(lambda: len(c.audio) > 0, what="reply audio")
        assert not c.of_type("error")
