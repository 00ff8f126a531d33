"""`--backend openai` against llama.cpp's own OpenAI-compatible server (llama-cpp-python's `python -m
llama_cpp.server`), on loopback with the pulled SmolLM2-135M GGUF. Skips, saying why, where that server is not
installed: it is never a dependency. The interpreter is $M3ANALYST_LLAMACPP_PYTHON, else the benchmark venv
`$M3ANALYST_HOME/bench/llamacpp-venv` (benchmarks/bench_vs_llamacpp.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts a real model server


def _python() -> Path:
    from m3analyst.resources import home_dir

    env = os.environ.get("M3ANALYST_LLAMACPP_PYTHON")
    return Path(env) if env else home_dir() / "bench" / "llamacpp-venv" / "bin" / "python"


@pytest.fixture(scope="module")
def llamacpp_server():
    from m3analyst.engine.catalog import MODELS
    from m3analyst.engine.pull import gguf_path

    py, gguf = _python(), gguf_path(MODELS["smollm2-135m-instruct"])
    if not py.is_file():
        pytest.skip(f"no llama-cpp-python interpreter at {py} (set M3ANALYST_LLAMACPP_PYTHON)")
    probe = subprocess.run([str(py), "-c", "import llama_cpp.server.app, uvicorn"], capture_output=True, timeout=120)
    if probe.returncode:
        pytest.skip(f"{py} has no llama_cpp.server (pip install 'llama-cpp-python[server]' there)")
    if not gguf.is_file():
        pytest.skip(f"{gguf} not pulled (m3analyst models pull smollm2-135m-instruct)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(py), "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                             "--port", str(port), "--n_ctx", "4096", "--n_threads", "1", "--model_alias", "smollm2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(url + "/models", timeout=5).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"llama_cpp.server did not come up on {url} (exit {proc.poll()})")
                time.sleep(1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_remote_engine_and_memo_through_llamacpp_server(llamacpp_server, tmp_path):
    from m3analyst.engine import load_engine
    from m3analyst.ingest import load_document
    from m3analyst.memo import write_memo
    from m3analyst.settings import EngineSettings, Settings

    remote = load_engine(EngineSettings(backend="openai", base_url=llamacpp_server, max_new_tokens=8))
    assert "block provenance absent" in remote.name and remote.context_length >= 2048
    res = remote.generate([{"role": "user", "content": "Say the word hello."}], max_new_tokens=8)
    assert res.text.strip() and res.stats.new_tokens >= 1
    doc_path = tmp_path / "agreement.txt"
    doc_path.write_text("ACME SUPPLY AGREEMENT\n\nThis Agreement is governed by the laws of the State of Delaware.\n\n"
                        "Either party may terminate this Agreement on 30 days written notice.\n")
    s = Settings()
    s.engine.backend, s.engine.base_url, s.engine.max_new_tokens = "openai", llamacpp_server, 8
    memo = write_memo(load_document(doc_path), "legal", s)
    assert memo.mode == "engine" and "block provenance absent" in memo.engine["name"]
    g = memo.grounding
    assert g["generated_sentences"] >= g["verified_sentences"] and "time_budget" not in memo.engine  # no CPU budget
