"""Engine + MSA attention on tiny random-weight models (Llama, Qwen2, Gemma3) built from configs.

Reference: the same weights run by transformers' own "sdpa" attention over the whole sequence.
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from m3analyst.engine import attention
from m3analyst.engine.core import Engine
from m3analyst.errors import ContextTooLongError, ModelError, UsageError
from m3analyst.settings import AttentionSettings, EngineSettings

CHARS = list("abcdefghijklmnopqrstuvwxyz .,?!")


def _config(arch: str):
    from transformers import Gemma3TextConfig, LlamaConfig, Qwen2Config

    common = dict(vocab_size=3 + len(CHARS), hidden_size=64, intermediate_size=128, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, max_position_embeddings=512, bos_token_id=1, eos_token_id=2,
                  pad_token_id=0)
    return {
        "llama": lambda: LlamaConfig(num_hidden_layers=3, **common),
        "qwen2": lambda: Qwen2Config(num_hidden_layers=3, **common),
        "gemma3": lambda: Gemma3TextConfig(num_hidden_layers=3, sliding_window=16,
                                           layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                                           **common),
    }[arch]()


def _tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<unk>", "<s>", "</s>"] + CHARS)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tk.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


_MODELS: dict = {}


def _models(arch: str):
    """(reference model with sdpa, same weights with m3_msa), fp32, cached per arch."""
    if arch not in _MODELS:
        from transformers import AutoModelForCausalLM

        torch.manual_seed(0)
        cfg = _config(arch)
        ref = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa").eval()
        ours = AutoModelForCausalLM.from_config(cfg, attn_implementation=attention.register()).eval()
        ours.load_state_dict(ref.state_dict())
        _MODELS[arch] = (ref, ours)
    return _MODELS[arch]


def _engine(arch: str, context: int = 400, **attn) -> Engine:
    settings = EngineSettings(attention=AttentionSettings(**attn), max_new_tokens=16)
    return Engine(_models(arch)[1], _tokenizer(), settings, name=f"tiny-{arch}", context_length=context)


def _ids(n: int, seed: int = 0) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, 3 + len(CHARS), (n,), generator=g).tolist()


def _teacher_forced(eng: Engine, ids: list[int], n_prefill: int):
    """Prefill ids[:n_prefill], then feed the rest one token at a time (the decode path).
    Returns (logits [len(ids) - n_prefill + 1 - 1, V] for positions n_prefill-1 .. len-2, RunContext)."""
    cache = eng._new_cache(len(ids))
    ctx = eng._context(cache)
    rows = []
    with torch.inference_mode():
        rows.append(eng._prefill_ids(ids[:n_prefill], cache, ctx))
        for t in ids[n_prefill:-1]:
            ctx.begin_step()
            rows.append(eng._forward([t], cache, ctx)[-1])
    return torch.stack(rows), ctx


def _reference_logits(arch: str, ids: list[int], n_prefill: int) -> torch.Tensor:
    with torch.inference_mode():
        logits = _models(arch)[0](torch.tensor([ids])).logits[0].float()
    return logits[n_prefill - 1 : len(ids) - 1]


ARCHS = ["llama", "qwen2", "gemma3"]


@pytest.mark.parametrize("arch", ARCHS)
def test_msa_with_all_blocks_equals_dense(arch):
    ids = _ids(120)
    eng = _engine(arch, block_size=8, top_k=32, dense_layers=0, dense_below=8, sink_blocks=1, local_blocks=1)
    got, ctx = _teacher_forced(eng, ids, 95)
    torch.testing.assert_close(got, _reference_logits(arch, ids, 95), rtol=1e-4, atol=1e-4)
    global_layers = {0: 1, 1: 1, 2: 1} if arch != "gemma3" else {1: 1}  # gemma3 sliding layers stay windowed-dense
    assert ctx.selections and set(ctx.selections[-1]) == set(global_layers)  # the sparse path really ran


@pytest.mark.parametrize("arch", ARCHS)
def test_dense_backend_equals_reference(arch):
    ids = _ids(100, seed=1)
    got, _ = _teacher_forced(_engine(arch, backend="dense"), ids, 80)
    torch.testing.assert_close(got, _reference_logits(arch, ids, 80), rtol=1e-4, atol=1e-4)


def test_sparse_selection_is_really_sparse():
    """Few blocks: output differs from dense, sink + local blocks in every selection, stats consistent."""
    ids = _ids(180, seed=2)
    eng = _engine("llama", block_size=8, top_k=4, dense_layers=1, dense_below=8, sink_blocks=1, local_blocks=2)
    got, ctx = _teacher_forced(eng, ids, 150)
    ref = _reference_logits("llama", ids, 150)
    assert torch.isfinite(got).all()
    assert (got - ref).abs().max() > 1e-3
    for step_no, step in enumerate(ctx.selections):
        assert set(step) == {1, 2}  # layer 0 is dense
        n_valid = math.ceil((150 + step_no + 1) / 8)
        for idx in step.values():
            for group in idx[0].tolist():
                assert 0 in group and {n_valid - 1, n_valid - 2} <= set(group) and len(set(group)) == 4


def test_short_context_is_identical_to_dense():
    ids = _ids(90, seed=3)  # default settings: dense below top_k * block_size tokens
    got, ctx = _teacher_forced(_engine("qwen2"), ids, 60)
    dense, _ = _teacher_forced(_engine("qwen2", backend="dense"), ids, 60)
    assert torch.equal(got, dense)
    for i, step in enumerate(ctx.selections):  # every valid block counts as read (what top-K >= #blocks selects)
        n_valid = math.ceil((60 + i + 1) / AttentionSettings().block_size)
        first_sparse = AttentionSettings().dense_layers  # layers below it are dense: no selection recorded
        assert set(step) == set(range(first_sparse, 3))
        assert set(step[2][0, 0].tolist()) == set(range(n_valid)) | {-1}


def test_generate_stream_session_and_stats():
    eng = _engine("llama", block_size=8, top_k=4, dense_layers=1, dense_below=8)
    eng.eos_ids = set()  # random weights: run the whole budget
    prompt = "the quick brown fox jumps over the lazy dog. " * 4
    res = eng.generate(prompt, max_new_tokens=12)
    assert len(res.token_ids) == 12 and res.finish_reason == "length"
    st = res.stats
    assert st.prompt_tokens == eng.count_tokens(prompt) and st.new_tokens == 12 and st.backend == "msa"
    assert len(st.block_hits) == math.ceil(st.prompt_tokens / 8) and st.block_hits[0] > 0
    assert st.selections.shape == (11, 3, 2, 4) and (st.selections[:, 0] == -1).all()
    assert 0 < st.attention_share < 1 and st.decode_tok_s > 0
    pieces = list(eng.generate(prompt, max_new_tokens=12, stream=True))
    assert "".join(pieces) == res.text == eng.last_result.text
    # a prefill session gives the same tokens as the one-shot call, and its cache survives reuse
    sess = eng.prefill(prompt[:100])
    for _ in range(2):
        again = sess.generate(prompt[100:], max_new_tokens=12)
        assert again.token_ids == res.token_ids and again.stats.cached_tokens == sess.n_tokens
        assert sess.cache.length == sess.n_tokens


def test_sampling_seed_and_stop():
    eng = _engine("gemma3")
    eng.eos_ids = set()
    a = eng.generate("hello", max_new_tokens=10, temperature=1.0, seed=7)
    b = eng.generate("hello", max_new_tokens=10, temperature=1.0, seed=7)
    c = eng.generate("hello", max_new_tokens=10, temperature=1.0, seed=8)
    assert a.token_ids == b.token_ids and a.token_ids != c.token_ids
    stop = a.text[3:5]
    cut = eng.generate("hello", max_new_tokens=10, temperature=1.0, seed=7, stop=[stop])
    assert cut.finish_reason == "stop" and cut.text == a.text[: a.text.find(stop)]


def test_score_matches_reference_logprobs():
    eng = _engine("llama")
    prefix, cont = "abc def ghi", " jkl"
    ids = eng.encode(prefix + cont)[0]
    n = len(eng.encode(prefix)[0])
    logp = torch.log_softmax(_reference_logits("llama", ids, n), -1)
    expect = float(torch.stack([logp[i, t] for i, t in enumerate(ids[n:])]).mean())
    assert eng.score(prefix, cont) == pytest.approx(expect, abs=1e-4)
    sess = eng.prefill(prefix)
    assert sess.score(cont) == pytest.approx(expect, abs=1e-4) and sess.cache.length == n


def test_encode_offsets_and_too_long_prompt():
    eng = _engine("llama", context=50)
    ids, offsets = eng.encode("hello world")
    assert len(ids) == len(offsets) and offsets[-1] == (10, 11)
    with pytest.raises(ContextTooLongError, match=r"60 tokens; the model's context limit is 50"):
        eng.generate("x" * 60)
    with pytest.raises(ContextTooLongError):
        eng.prefill("y" * 55)
    with pytest.raises(UsageError, match="empty prompt"):
        eng.generate("")


# --- transformers-version robustness: the cache and the run context must reach every attention call ---------
SPARSE = dict(block_size=8, top_k=4, dense_layers=0, dense_below=8, sink_blocks=1, local_blocks=1)


class _OldSignature(torch.nn.Module):
    """A causal LM whose forward takes the cache as `past_key_values` (transformers before the `cache` rename)."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.config = inner, inner.config

    def forward(self, input_ids=None, position_ids=None, past_key_values=None, use_cache=None, logits_to_keep=0,
                **kwargs):
        inner_kw = "cache" if "cache" in inspect.signature(self.inner.forward).parameters else "past_key_values"
        return self.inner(input_ids=input_ids, position_ids=position_ids, use_cache=use_cache,
                          logits_to_keep=logits_to_keep, **{inner_kw: past_key_values}, **kwargs)


def test_cache_reaches_a_model_with_the_old_cache_keyword():
    ids = _ids(120, seed=4)
    settings = EngineSettings(attention=AttentionSettings(**{**SPARSE, "top_k": 32}))
    eng = Engine(_OldSignature(_models("llama")[1]), _tokenizer(), settings, name="old", context_length=400)
    got, ctx = _teacher_forced(eng, ids, 95)
    torch.testing.assert_close(got, _reference_logits("llama", ids, 95), rtol=1e-4, atol=1e-4)
    assert ctx.selections and ctx.selections[-1]


def test_context_reaches_attention_when_keywords_are_dropped(monkeypatch):
    """A transformers version that does not forward extra keywords to the attention function: same result."""
    ids = _ids(150, seed=5)
    expect, _ = _teacher_forced(_engine("llama", **SPARSE), ids, 120)
    from transformers import AttentionInterface

    def drop_keywords(module, q, k, v, mask, msa=None, **kwargs):
        return attention.msa_attention(module, q, k, v, mask, **kwargs)

    monkeypatch.setitem(AttentionInterface._global_mapping, attention.IMPLEMENTATION, drop_keywords)
    got, ctx = _teacher_forced(_engine("llama", **SPARSE), ids, 120)
    assert torch.equal(got, expect) and ctx.selections and set(ctx.selections[-1]) == {0, 1, 2}


def test_attention_without_context_fails_loudly(monkeypatch):
    """If the registered function never sees the run context (e.g. replaced), MSA must raise, not run dense."""
    from transformers import AttentionInterface

    sdpa = AttentionInterface._global_mapping["sdpa"]
    monkeypatch.setitem(AttentionInterface._global_mapping, attention.IMPLEMENTATION, sdpa)
    eng = _engine("llama", **SPARSE)
    with pytest.raises(ModelError, match="did not receive its run context"):
        eng.generate("the quick brown fox jumps over the lazy dog. " * 3, max_new_tokens=4)


def test_thread_rule_leaves_busy_cores_to_other_tasks(monkeypatch):
    import os
    import threading
    from pathlib import Path

    from m3analyst.engine import host as eng_mod

    cores = os.cpu_count() or 1
    monkeypatch.setattr(eng_mod, "_other_runnable_tasks", lambda: 0)
    assert eng_mod.pick_threads(None) == cores
    monkeypatch.setattr(eng_mod, "_other_runnable_tasks", lambda: cores + 5)
    assert eng_mod.pick_threads(None) == 1
    assert eng_mod.pick_threads(3) == 3  # an explicit setting wins
    monkeypatch.undo()
    others = eng_mod._other_runnable_tasks(samples=2, gap_s=0.0)
    assert others is None or others >= 0
    me = Path("/proc/self/task") / str(threading.get_native_id())
    if me.exists():  # this thread is running while it reads its own state: it counts as this process's own
        assert eng_mod._task_running(me)


def test_cpu_kernels_report_matches_what_was_built():
    from m3analyst.engine.host import cpu_kernels
    from m3analyst.kernels import attn_amx, int8_cpu, norm_cpu
    from m3analyst.kernels.msa import cpu as msa_cpu

    report = cpu_kernels()
    assert report == {"msa_decode": msa_cpu.available(), "int8_linear": int8_cpu.library() is not None,
                      "amx_prefill_attention": attn_amx.library() is not None,
                      "fused_norm_mlp": norm_cpu.library() is not None}


def test_decode_thread_guard_follows_a_competing_process(monkeypatch):
    """A step 4x slower than the run's fastest re-asks the thread rule (a competitor arrived: 2 -> 1 thread); on
    fewer threads than cores it asks again every RECHECK_STEPS steps and takes the cores back once free."""
    from types import SimpleNamespace

    from m3analyst.engine import host as engine_mod

    free = {"cores": 2}
    asked = []
    monkeypatch.setattr(engine_mod, "pick_threads", lambda setting: asked.append(setting) or free["cores"])
    eng = SimpleNamespace(settings=EngineSettings(), _decode_threads=2)
    guard = engine_mod.DecodeThreadGuard(eng, cores=2)
    for _ in range(5):
        guard.step_done(0.025)
    assert eng._decode_threads == 2 and not asked  # steady: the rule is not asked
    free["cores"] = 1  # a competitor starts
    guard.step_done(0.4)
    assert eng._decode_threads == 1 and len(asked) == 1
    for _ in range(guard.RECHECK_STEPS - guard.steps % guard.RECHECK_STEPS - 1):
        guard.step_done(0.03)
    assert eng._decode_threads == 1
    free["cores"] = 2  # the competitor is gone: the next periodic check restores both threads
    guard.step_done(0.03)
    assert eng._decode_threads == 2 and len(asked) == 2


def test_decode_thread_guard_is_off_with_fixed_threads(monkeypatch):
    from types import SimpleNamespace

    from m3analyst.engine import host as engine_mod

    monkeypatch.setattr(engine_mod, "pick_threads", lambda setting: pytest.fail("the rule must not be asked"))
    eng = SimpleNamespace(settings=EngineSettings(decode_threads=2), _decode_threads=2)
    guard = engine_mod.DecodeThreadGuard(eng, cores=2)
    for t in (0.02, 0.02, 1.0, 1.0):
        guard.step_done(t)
    assert eng._decode_threads == 2
