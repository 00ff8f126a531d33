"""The OpenAI protocol checks and the openai backend's pieces that need no server (fast, no model)."""

from __future__ import annotations

import pytest

from m3analyst.engine.remote import RemoteEngine, load_remote, messages_of
from m3analyst.errors import ModelError, UsageError
from m3analyst.serve.protocol import RequestError, parse_json, parse_request
from m3analyst.settings import EngineSettings


def test_render_chat_round_trips_through_a_split():
    eng = RemoteEngine.__new__(RemoteEngine)
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Doc...\nTASK here"}]
    text = eng.render_chat(messages)
    prefix, tail = text.split("TASK", 1)
    assert messages_of(prefix + "TASK" + tail) == messages
    assert messages_of("plain text") == [{"role": "user", "content": "plain text"}]


def test_backend_settings_errors(monkeypatch):
    with pytest.raises(UsageError, match="--base-url"):
        load_remote(EngineSettings(backend="openai"))
    with pytest.raises(UsageError, match="http"):
        load_remote(EngineSettings(backend="openai", base_url="ftp://x"))
    monkeypatch.delenv("M3_UNSET_KEY", raising=False)
    with pytest.raises(UsageError, match="M3_UNSET_KEY"):
        load_remote(EngineSettings(backend="openai", base_url="http://127.0.0.1:9/v1", api_key_env="M3_UNSET_KEY"))
    with pytest.raises(ModelError, match="127.0.0.1:9"):  # nothing listens on the discard port
        load_remote(EngineSettings(backend="openai", base_url="http://127.0.0.1:9/v1"))


@pytest.mark.parametrize("body,field", [({"messages": "hi"}, "messages"), ({"messages": [{"role": "user", "content": 3}]},
                                        "messages"), ({"messages": [{"role": "user", "content": "x"}], "stop": [1]}, "stop"),
                                        ({"messages": [{"role": "user", "content": "x"}], "temperature": 9}, "temperature"),
                                        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": True}, "max_tokens")])
def test_bad_fields_name_themselves(body, field):
    with pytest.raises(RequestError) as e:
        parse_request(body, chat=True, default_max_tokens=16)
    assert e.value.status == 400 and e.value.param == field


def test_good_requests_parse():
    r = parse_request(parse_json(b'{"prompt": ["Hi"], "stop": "\\n", "max_tokens": 3}'), chat=False, default_max_tokens=16)
    assert (r.prompt, r.stop, r.max_tokens, r.stream) == ("Hi", ("\n",), 3, False)
    r = parse_request({"messages": [{"role": "developer", "content": [{"type": "text", "text": "a"}]}]}, True, 16)
    assert r.messages == [{"role": "system", "content": "a"}] and r.max_tokens == 16
