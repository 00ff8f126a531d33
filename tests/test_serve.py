"""`m3analyst serve` on loopback (real HTTP through uvicorn) with a tiny random-weight model, and the openai backend
(engine/remote.py) and the `openai` client against it. No traffic leaves 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

TOKENIZER_FROM = Path.home() / ".cache" / "m3analyst" / "models" / "smollm2-135m-instruct" / "hf"
KEY = "s3cret-key"


@pytest.fixture(scope="module")
def tiny_engine(tmp_path_factory):
    """A 2-layer random Llama with SmolLM2's tokenizer and chat template, through the real load_engine."""
    if not (TOKENIZER_FROM / "tokenizer.json").is_file():
        pytest.skip(f"no tokenizer to borrow at {TOKENIZER_FROM} (pull smollm2-135m-instruct once)")
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from m3analyst.engine import load_engine
    from m3analyst.settings import EngineSettings

    folder = tmp_path_factory.mktemp("tiny")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (TOKENIZER_FROM / name).is_file():
            shutil.copy(TOKENIZER_FROM / name, folder / name)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=1024, eos_token_id=2, bos_token_id=1)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    return load_engine(EngineSettings(model=str(folder), threads=1, decode_threads=1), progress=lambda *a: None)


@pytest.fixture(scope="module")
def server(tiny_engine):
    """The app under uvicorn on 127.0.0.1, an OS-chosen port; yields the /v1 base URL."""
    from m3analyst.serve.app import ServeLimits, create_app

    app = create_app(tiny_engine, "tiny", ServeLimits(max_queue=32, max_prompt_tokens=700, default_max_tokens=8, max_body_bytes=64 << 10), KEY)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    srv = uvicorn.Server(uvicorn.Config(app, log_level="error"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    srv.should_exit = True
    thread.join(10)


def _post(url, body, key=KEY, raw: bytes | None = None):
    data = raw if raw is not None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _chat(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"Say the number {i}."}], "max_tokens": 6}


def test_models_and_auth(server):
    req = urllib.request.Request(server + "/models", headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        data = json.loads(r.read())
    assert data["data"][0]["id"] == "tiny" and data["data"][0]["max_model_len"] > 0
    status, body = _post(server + "/chat/completions", _chat(0), key="wrong")
    assert status == 401 and "API key" in json.loads(body)["error"]["message"]
    assert _post(server + "/chat/completions", _chat(0), key=None)[0] == 401


def test_twenty_concurrent_requests_all_answered_as_alone(server, tiny_engine):
    want = {i: tiny_engine.generate(_chat(i)["messages"], max_new_tokens=6).text for i in range(20)}
    with ThreadPoolExecutor(20) as pool:
        replies = list(pool.map(lambda i: _post(server + "/chat/completions", _chat(i)), range(20)))
    for i, (status, body) in enumerate(replies):
        assert status == 200
        reply = json.loads(body)
        assert reply["choices"][0]["message"]["content"] == want[i]  # greedy: the same text as a direct call
        assert reply["usage"]["completion_tokens"] >= 0 and reply["object"] == "chat.completion"


@pytest.mark.parametrize("raw,needle", [(b"{not json", "malformed JSON"), (b"[1, 2]", "JSON object"),
                                        (b'{"messages": []}', "messages"), (b'{"messages": [{"role": "x"}]}', "role"),
                                        (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": -1}',
                                         "max_tokens"),
                                        (b'{"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}', "stream")])
def test_malformed_requests_get_400_and_the_server_keeps_serving(server, raw, needle):
    status, body = _post(server + "/chat/completions", None, raw=raw)
    assert status == 400 and needle in json.loads(body)["error"]["message"]
    assert _post(server + "/chat/completions", _chat(1))[0] == 200


def test_oversize_prompt_and_body(server):
    status, body = _post(server + "/completions", {"prompt": "word " * 3000, "max_tokens": 4})
    assert status == 400 and "prompt too long" in json.loads(body)["error"]["message"]
    status, _ = _post(server + "/completions", None, raw=b'{"prompt": "' + b"a" * (80 << 10) + b'"}')
    assert status == 413
    assert _post(server + "/completions", {"prompt": "Hello", "max_tokens": 3})[0] == 200


def test_streaming_matches_the_whole_reply(server):
    body = {"prompt": "Once upon a time", "max_tokens": 8}
    whole = json.loads(_post(server + "/completions", body)[1])["choices"][0]["text"]
    status, raw = _post(server + "/completions", body | {"stream": True})
    events = [ln[6:] for ln in raw.decode().splitlines() if ln.startswith("data: ")]
    assert status == 200 and events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks) == whole
    assert chunks[-1]["choices"][0]["finish_reason"] in ("length", "stop")


def test_remote_backend_against_serve(server, tiny_engine, monkeypatch):
    from m3analyst.engine import load_engine
    from m3analyst.settings import EngineSettings

    monkeypatch.setenv("M3_TEST_KEY", KEY)
    s = EngineSettings(backend="openai", base_url=server, api_key_env="M3_TEST_KEY", max_new_tokens=6)
    remote = load_engine(s)
    assert "block provenance absent" in remote.name and remote.context_length == tiny_engine.context_length
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]
    chat = remote.render_chat(messages)
    prefix, suffix = chat[: len(chat) // 2], chat[len(chat) // 2 :]
    got = remote.prefill(prefix).generate(suffix, max_new_tokens=6).text
    assert got == tiny_engine.generate(messages, max_new_tokens=6).text
    assert remote.prefill(prefix).score("anything") == 0.0
    monkeypatch.setenv("M3_TEST_KEY", "wrong")
    from m3analyst.errors import ModelError

    with pytest.raises(ModelError, match="HTTP 401"):
        load_engine(s)


def test_openai_client_talks_to_serve(server):
    openai = pytest.importorskip("openai", reason="the openai package is not installed")
    client = openai.OpenAI(base_url=server, api_key=KEY, max_retries=0)
    reply = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=5)
    assert reply.choices[0].message.content is not None
    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=5, stream=True)]
    assert "".join(pieces) == reply.choices[0].message.content
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="tiny", prompt="x " * 3000, max_tokens=5)


def test_memo_and_ask_through_the_openai_backend(server, monkeypatch, tmp_path):
    """The whole memo writer and ask run against the server: the verifier applies, provenance is said absent."""
    from m3analyst.ingest import load_document
    from m3analyst.memo import answer_questions, write_memo
    from m3analyst.memo.render_md import render_markdown
    from m3analyst.settings import Settings

    monkeypatch.setenv("M3_TEST_KEY", KEY)
    doc_path = tmp_path / "agreement.txt"
    doc_path.write_text("ACME SUPPLY AGREEMENT\n\nThis Agreement is governed by the laws of the State of Delaware.\n\n"
                        "Either party may terminate this Agreement on 30 days written notice.\n")
    s = Settings()
    s.engine.backend, s.engine.base_url, s.engine.api_key_env = "openai", server, "M3_TEST_KEY"
    s.engine.max_new_tokens = 6
    doc = load_document(doc_path)
    memo = write_memo(doc, "legal", s)
    assert "block provenance absent" in memo.engine["name"] and memo.mode == "engine"
    assert memo.grounding["generated_sentences"] >= memo.grounding["verified_sentences"]
    assert "block provenance absent" in render_markdown(memo)
    answers = answer_questions(doc, ["Which law governs this agreement?"], s)
    assert answers and answers[0].text


def test_serve_command_usage_errors(cli, monkeypatch):
    monkeypatch.delenv("M3_NO_SUCH_KEY", raising=False)
    r = cli("serve", "--api-key-env", "M3_NO_SUCH_KEY", "--model", "none")
    assert r.exit_code == 2 and "M3_NO_SUCH_KEY" in r.stderr and "Traceback" not in r.stderr
    r = cli("serve", "--port", "0")
    assert r.exit_code == 2 and "--port" in r.stderr


def test_a_prefix_kv_cache_kept_on_disk_gives_the_same_generation(tiny_engine, tmp_path, monkeypatch):
    from m3analyst.engine import prefixcache

    monkeypatch.setenv("M3ANALYST_HOME", str(tmp_path))
    prefix = "A shared instruction that every short prompt starts with. " * 4
    assert not prefixcache.is_cached(tiny_engine, prefix)
    first = prefixcache.prefill_cached(tiny_engine, prefix, reserve=32)
    assert prefixcache.is_cached(tiny_engine, prefix) and len(list((tmp_path / prefixcache.FOLDER).iterdir())) == 1
    again = prefixcache.prefill_cached(tiny_engine, prefix, reserve=32)
    assert again.prefill_s == 0.0 and again.prefix_ids == first.prefix_ids
    a = first.generate(" Then", max_new_tokens=6)
    b = again.generate(" Then", max_new_tokens=6)
    assert a.token_ids == b.token_ids
    assert not prefixcache.is_cached(tiny_engine, prefix + "x")  # another text, another entry
    next((tmp_path / prefixcache.FOLDER).iterdir()).write_bytes(b"damaged")
    assert prefixcache.prefill_cached(tiny_engine, prefix, reserve=32).prefix_ids == first.prefix_ids  # recomputed


def test_a_deadline_stops_decoding(tiny_engine):
    import time as _time

    sess = tiny_engine.prefill("Some prompt text to continue from.", reserve=64)
    res = sess.generate(" and", max_new_tokens=40, deadline=_time.monotonic())
    assert res.finish_reason == "deadline" and len(res.token_ids) == 1  # the first token, then the deadline
    assert sess.generate(" and", max_new_tokens=5, deadline=_time.monotonic() + 600).finish_reason in ("length", "eos")
