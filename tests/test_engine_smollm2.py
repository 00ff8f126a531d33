"""Integration: the real default model (SmolLM2-135M-Instruct), pulled once into $M3ANALYST_HOME and cached."""

from __future__ import annotations

import pytest

from m3analyst.errors import ModelError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def smollm2():
    from m3analyst.engine import load_engine
    from m3analyst.settings import EngineSettings

    try:
        # named, not "auto": auto picks a larger pulled model where one is (this file is about SmolLM2's shapes)
        return load_engine(EngineSettings(model="smollm2-135m-instruct"), progress=lambda *a: None)
    except ModelError as e:
        pytest.skip(f"default model unavailable (pull impossible here?): {e}")


def test_chat_answer_and_stats(smollm2):
    res = smollm2.generate([{"role": "user", "content": "What is the capital of France?"}], max_new_tokens=16)
    assert "Paris" in res.text
    assert res.stats.prompt_tokens > 10 and res.stats.new_tokens >= 3 and res.finish_reason in ("eos", "length")


def test_msa_session_on_a_real_contract(smollm2, corpus):
    text = sorted((corpus / "legal" / "contracts_txt").glob("*.txt"))[0].read_text(errors="ignore")
    ids = smollm2.encode(text)[0][:3000]  # past dense_below (top_k * block_size = 2,304 tokens): sparse steps
    sess = smollm2.prefill(smollm2.tokenizer.decode(ids))
    res = sess.generate("\n\nThe parties to this agreement are", max_new_tokens=8)
    assert res.stats.backend == "msa" and res.stats.cached_tokens == sess.n_tokens
    bs = smollm2.settings.attention.block_size
    assert len(res.stats.block_hits) == -(-res.stats.prompt_tokens // bs) and res.stats.block_hits.sum() > 0
    top_k = smollm2.settings.attention.top_k
    assert res.stats.selections is not None and res.stats.selections.shape[1:] == (30, 3, top_k)
    assert (res.stats.selections[:, :, :, -1] >= 0).all()  # every slot used: more blocks than top_k
    assert sess.cache.length == sess.n_tokens
