"""The fake Deepgram Voice Agent's own behaviour beyond the conformance suite: handshake forms, the
Error shape for unusable input, the idle timeout, refused injections and context recording."""

from __future__ import annotations

import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from audio.dtmf import generate_dtmf
from providers.fakes.deepgram_agent import FakeDeepgramAgent
from tests.fakes.test_fakes_conformance import DeepgramAgentDriver

KEY = "agent-key"
SETTINGS = DeepgramAgentDriver.settings


async def open_agent(fake: FakeDeepgramAgent, settings: dict | None = None, **kwargs):  # noqa: ANN201
    ws = await connect(f"{fake.url}/v1/agent/converse", additional_headers={"Authorization": f"Token {KEY}"},
                       **kwargs)
    assert json.loads(await ws.recv())["type"] == "Welcome"
    if settings is not None:
        await ws.send(json.dumps(settings))
    return ws


async def test_handshake_path_subprotocol_and_request_id() -> None:
    async with FakeDeepgramAgent(api_key=KEY) as fake:
        with pytest.raises(InvalidStatus) as err:
            await connect(f"{fake.url}/v1/agent/nope", additional_headers={"Authorization": f"Token {KEY}"})
        assert err.value.response.status_code == 404
        ws = await connect(f"{fake.url}/v1/agent/converse", subprotocols=["token", KEY])  # type: ignore[list-item]
        assert ws.subprotocol == "token" and ws.response.headers["dg-request-id"]
        assert json.loads(await ws.recv())["request_id"] == ws.response.headers["dg-request-id"]
        await ws.close()
        assert (await fake.connection_done(2)).auth == "subprotocol"


@pytest.mark.parametrize(("first", "field"), [
    (b"\x00" * 640, "Settings"),
    ({**SETTINGS, "audio": {"input": {"encoding": "mulaw", "sample_rate": 16000}}}, "audio.input.sample_rate"),
    ({**SETTINGS, "agent": {"think": {"provider": {"type": "groq"}}}}, "agent.think.endpoint"),
    ({**SETTINGS, "agent": {"context": {"messages": [{"type": "History", "role": "bot"}]}}}, "agent.context.messages"),
])
async def test_unusable_first_message_gets_the_real_error_shape_and_the_connection_ends(first, field) -> None:  # noqa: ANN001
    async with FakeDeepgramAgent(api_key=KEY) as fake:
        ws = await open_agent(fake)
        await ws.send(first if isinstance(first, bytes) else json.dumps(first))
        error = json.loads(await ws.recv())
        assert error == {"type": "Error", "code": "UNPARSABLE_CLIENT_MESSAGE",
                         "description": f"Error parsing client message. Check the {field} field against the API spec."}
        with pytest.raises(ConnectionClosed):
            await ws.recv()


async def test_unknown_text_is_an_error_but_the_session_goes_on() -> None:
    async with FakeDeepgramAgent(api_key=KEY) as fake:
        ws = await open_agent(fake, SETTINGS)
        assert json.loads(await ws.recv()) == {"type": "SettingsApplied"}
        await ws.send(json.dumps({"type": "Nope"}))
        assert json.loads(await ws.recv())["code"] == "UNPARSABLE_CLIENT_MESSAGE"
        await ws.send(json.dumps({"type": "FunctionCallResponse", "id": "x", "name": "n", "content": "c"}))
        assert json.loads(await ws.recv())["type"] == "Warning"
        await ws.send(generate_dtmf("1", 16000, lead_silence_ms=100)[:6400])  # mid-utterance
        assert json.loads(await ws.recv())["type"] == "UserStartedSpeaking"
        await ws.send(json.dumps({"type": "InjectUserMessage", "content": "2"}))
        assert json.loads(await ws.recv())["type"] == "InjectionRefused"
        await ws.close()


async def test_idle_timeout_sends_the_idle_error_then_closes() -> None:
    async with FakeDeepgramAgent(api_key=KEY, idle_timeout_s=0.2) as fake:
        ws = await open_agent(fake, SETTINGS)
        assert json.loads(await ws.recv()) == {"type": "SettingsApplied"}
        assert json.loads(await ws.recv())["code"] == "CLIENT_MESSAGE_TIMEOUT"
        with pytest.raises(ConnectionClosed) as err:
            await ws.recv()
        assert err.value.rcvd is not None and err.value.rcvd.code == 1000


async def test_context_and_greeting_are_recorded() -> None:
    history = [{"type": "History", "role": "user", "content": "12"},
               {"type": "History", "role": "assistant", "content": "12"}]
    settings = {**SETTINGS, "agent": {**SETTINGS["agent"], "context": {"messages": history}, "greeting": "Hi"}}
    async with FakeDeepgramAgent(api_key=KEY) as fake:
        ws = await open_agent(fake, settings)
        assert json.loads(await ws.recv()) == {"type": "SettingsApplied"}
        greeting = json.loads(await ws.recv())
        assert (greeting["type"], greeting["role"], greeting["content"]) == ("ConversationText", "assistant", "Hi")
        assert fake.connections[0].items == history
        await ws.close()
