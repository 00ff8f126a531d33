"""Triton MSA kernels (kernels/msa/triton_*.py) vs the plain-PyTorch reference (kernels/msa/naive.py).

Without a GPU the kernels run on the CPU under Triton's interpreter. TRITON_INTERPRET=1 must be set
before the kernels are *defined*, and pytest imports every test module into one process, so this
module does not touch triton in the parent process: `test_kernels_in_interpreter` re-runs this file in
a child pytest with TRITON_INTERPRET=1, where the kernel cases below run. On a CUDA machine the cases
run directly on the GPU (and the child is skipped).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
ON_GPU = torch.cuda.is_available() and not INTERPRETED
RUN_CASES = INTERPRETED or ON_GPU
DEVICE = "cuda" if ON_GPU else "cpu"

cases = pytest.mark.skipif(not RUN_CASES, reason="kernel cases run in the TRITON_INTERPRET=1 child (test_kernels_in_interpreter) or on CUDA")


@pytest.mark.slow
def test_kernels_in_interpreter():
    """Parent process: run this module's kernel cases in a child with TRITON_INTERPRET=1."""
    if RUN_CASES:
        pytest.skip("already running the kernel cases in this process")
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONUNBUFFERED="1")
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", str(Path(__file__))],
        env=env, capture_output=True, text=True, timeout=1800,  # interpreted Triton: ~10 min on a busy 2-core VM
    )
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]


# ----------------------------------------------------------------------------------------------
# helpers (only used in the child / on GPU)
# ----------------------------------------------------------------------------------------------
@pytest.fixture
def kernels(monkeypatch):
    from types import SimpleNamespace

    from m3analyst.kernels.msa import naive as msa_naive
    from m3analyst.kernels.msa import triton_common, triton_decode, triton_select, triton_summary

    def nan_empty(*shape, dtype=None, device=None, **kw):
        t = torch.empty(*shape, dtype=dtype, device=device, **kw)
        return t.fill_(float("nan")) if t.is_floating_point() else t.fill_(-7777)

    monkeypatch.setattr(triton_common, "_empty", nan_empty)
    K = SimpleNamespace(TUNING=triton_common.TUNING, update_summaries=triton_summary.update_summaries,
                        select_blocks=triton_select.select_blocks, sparse_decode=triton_decode.sparse_decode,
                        decode_step=triton_decode.decode_step, select_and_decode=triton_decode.select_and_decode,
                        _Step3Plan=triton_decode._Step3Plan, _pdl_on=triton_decode._pdl_on)
    return msa_naive, K


def _gen(seed: int):
    return torch.Generator().manual_seed(seed)


def make_problem(B, hkv, G, D, S, dtype, seed=0, strided=False):
    """q [B, Hq, D]; k, v [B, Hkv, S, D]; with strided=True k/v are non-contiguous views of a
    [B, S + 5, Hkv, D] buffer (another layout's cache), read through their strides."""
    g = _gen(seed)
    q = torch.randn(B, hkv * G, D, generator=g).to(dtype)
    if strided:
        kb = torch.randn(B, S + 5, hkv, D, generator=g).to(dtype)
        vb = torch.randn(B, S + 5, hkv, D, generator=g).to(dtype)
        k, v = kb.permute(0, 2, 1, 3)[:, :, 2 : S + 2], vb.permute(0, 2, 1, 3)[:, :, 2 : S + 2]
    else:
        k = torch.randn(B, hkv, S, D, generator=g).to(dtype)
        v = torch.randn(B, hkv, S, D, generator=g).to(dtype)
    return q.to(DEVICE), k.to(DEVICE), v.to(DEVICE)


def summaries_for(R, k, block_size, minmax=True):
    B, hkv, S, D = k.shape
    nb = math.ceil(S / block_size)
    ksum = torch.zeros(B, hkv, nb, D, device=k.device)
    kmin, kmax = (torch.zeros_like(ksum), torch.zeros_like(ksum)) if minmax else (None, None)
    R.update_summaries(ksum, kmin, kmax, k, 0, block_size)
    return ksum, kmin, kmax


def assert_same_selection(R, idx_k, idx_r, q, ksum, seq_lens, block_size, scorer, kmin, kmax, sink, local):
    """Exact match up to ties: same shape/padding/order rules, and the kernel's picks have the same
    (forced / masked) reference scores as the reference's picks."""
    assert idx_k.dtype == torch.int32 and idx_k.shape == idx_r.shape
    nb = ksum.shape[2]
    scores = R.block_scores(q, ksum, seq_lens, block_size, scorer, kmin, kmax)
    forced, valid = R.forced_and_valid(seq_lens, nb, block_size, sink, local)
    scores = scores.masked_fill(forced[:, None], 1e30).masked_fill(~valid[:, None], -1e30)
    for b in range(idx_k.shape[0]):
        for h in range(idx_k.shape[1]):
            ik, ir = idx_k[b, h].cpu(), idx_r[b, h].cpu()
            assert (ik >= 0).sum() == (ir >= 0).sum(), (ik, ir)
            n = int((ir >= 0).sum())
            assert (ik[n:] == -1).all() and (torch.diff(ik[:n]) > 0).all(), ik  # ascending, -1 padded
            if torch.equal(ik, ir):
                continue
            sk = scores[b, h, ik[:n].long()].sort().values
            sr = scores[b, h, ir[:n].long()].sort().values
            torch.testing.assert_close(sk, sr, rtol=1e-4, atol=1e-4 * (1 + sr.abs().max().item()))


# ----------------------------------------------------------------------------------------------
# update_summaries
# ----------------------------------------------------------------------------------------------
@cases
@pytest.mark.parametrize("D", [64, 128], ids=lambda d: f"D{d}")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("minmax", [True, False], ids=["minmax", "sum"])
def test_update_summaries(kernels, D, dtype, minmax):
    R, K = kernels
    B, hkv, S, bs = 2, 2, 150, 32
    _, k, _ = make_problem(B, hkv, 1, D, S, dtype, seed=1, strided=True)
    nb = math.ceil(S / bs)
    seq_lens = torch.tensor([S, 101], device=DEVICE)

    def fresh():  # NaN-filled: blocks must start afresh when first touched
        t = [torch.full((B, hkv, nb, D), float("nan"), device=DEVICE) for _ in range(3)]
        return (t[0], t[1], t[2]) if minmax else (t[0], None, None)

    ref, got = fresh(), fresh()
    steps = [(0, 45), (45, 1), (46, 30), (76, 1), (77, 73)]  # prefill chunk, decode tokens, chunks across blocks
    for start, T in steps:
        R.update_summaries(*ref, k[:, :, start : start + T], start, bs, seq_lens=seq_lens)
        K.update_summaries(*got, k[:, :, start : start + T], start, bs, seq_lens=seq_lens)
    for r, g in zip(ref, got):
        if r is not None:
            torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-4)


# ----------------------------------------------------------------------------------------------
# select_blocks
# ----------------------------------------------------------------------------------------------
GROUP_DIMS = [(1, 64), (3, 128), (4, 64), (4, 128), (8, 128)]  # GQA group sizes x head dims


@cases
@pytest.mark.parametrize("G,D", GROUP_DIMS, ids=lambda x: str(x))
def test_select_blocks_mean(kernels, G, D):
    R, K = kernels
    B, hkv, S, bs, top_k = 3, 2, 500, 16, 8
    q, k, _ = make_problem(B, hkv, G, D, S, torch.bfloat16, seed=G + D)
    seq_lens = torch.tensor([500, 333, 40], device=DEVICE)  # ragged; the last has fewer blocks than top_k
    ksum, _, _ = summaries_for(R, k, bs, minmax=False)
    ir = R.select_blocks(q, ksum, seq_lens, bs, top_k, 1, 2)
    ik = K.select_blocks(q, ksum, seq_lens, bs, top_k, 1, 2)
    assert_same_selection(R, ik, ir, q, ksum, seq_lens, bs, "mean", None, None, 1, 2)


@cases
@pytest.mark.parametrize("G", [1, 4], ids=lambda g: f"G{g}")
def test_select_blocks_minmax(kernels, G):
    R, K = kernels
    B, hkv, D, S, bs, top_k = 2, 2, 64, 500, 32, 6
    q, k, _ = make_problem(B, hkv, G, D, S, torch.float16, seed=7)
    seq_lens = torch.tensor([500, 97], device=DEVICE)
    ksum, kmin, kmax = summaries_for(R, k, bs)
    ir = R.select_blocks(q, ksum, seq_lens, bs, top_k, 2, 1, scorer="minmax", kmin=kmin, kmax=kmax)
    ik = K.select_blocks(q, ksum, seq_lens, bs, top_k, 2, 1, scorer="minmax", kmin=kmin, kmax=kmax)
    assert_same_selection(R, ik, ir, q, ksum, seq_lens, bs, "minmax", kmin, kmax, 2, 1)


@cases
@pytest.mark.parametrize("sub_n,max_chunks,group,use_topk", [(None, 1024, 32, None), (16, 1024, 4, None), (16, 4, 32, None), (16, 4, 4, False)],
                         ids=["default", "two-level-merge", "big-chunks", "sort-fallback"])
def test_select_blocks_many_chunks(kernels, monkeypatch, sub_n, max_chunks, group, use_topk):
    """More blocks than one program scores: chunk candidates merged by
    the last program of each group and then of all groups, must give the exact top-K (also with
    tl.sort instead of tl.topk)."""
    R, K = kernels
    for key, val in dict(select_block_n=sub_n, select_max_chunks=max_chunks, merge_group=group, use_topk=use_topk).items():
        monkeypatch.setattr(K.TUNING, key, val)
    B, hkv, G, D, bs, top_k = 1, 1, 2, 64, 1, 16
    S = 230  # 230 blocks of one token -> 15 chunks of 16 with sub_n=16
    q, k, _ = make_problem(B, hkv, G, D, S, torch.float16, seed=3)
    seq_lens = torch.tensor([217], device=DEVICE)
    ksum, _, _ = summaries_for(R, k, bs, minmax=False)
    ir = R.select_blocks(q, ksum, seq_lens, bs, top_k, 1, 1)
    ik = K.select_blocks(q, ksum, seq_lens, bs, top_k, 1, 1)
    assert_same_selection(R, ik, ir, q, ksum, seq_lens, bs, "mean", None, None, 1, 1)


@cases
def test_more_forced_blocks_than_top_k_keeps_the_lowest_ids(kernels):
    R, K = kernels
    q, k, _ = make_problem(1, 2, 2, 64, 320, torch.float16, seed=8)
    seq_lens = torch.tensor([320], device=DEVICE)  # 10 blocks; 2 sink + 3 local forced, top_k 4
    ksum, _, _ = summaries_for(R, k, 32, minmax=False)
    idx = K.select_blocks(q, ksum, seq_lens, 32, 4, 2, 3)
    assert idx.tolist() == [[[0, 1, 7, 8]] * 2]
    assert torch.equal(idx, R.select_blocks(q, ksum, seq_lens, 32, 4, 2, 3))


@cases
def test_select_all_blocks_when_k_exceeds_blocks(kernels):
    R, K = kernels
    q, k, _ = make_problem(2, 2, 3, 64, 200, torch.bfloat16, seed=5)
    seq_lens = torch.tensor([200, 65], device=DEVICE)
    ksum, _, _ = summaries_for(R, k, 32, minmax=False)
    idx = K.select_blocks(q, ksum, seq_lens, 32, 12, 1, 1)
    assert idx[0, :, :7].tolist() == [list(range(7))] * 2 and (idx[0, :, 7:] == -1).all()
    assert idx[1, :, :3].tolist() == [list(range(3))] * 2 and (idx[1, :, 3:] == -1).all()


# ----------------------------------------------------------------------------------------------
# sparse_decode
# ----------------------------------------------------------------------------------------------
@cases
@pytest.mark.parametrize("G,D", GROUP_DIMS, ids=lambda x: str(x))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_sparse_decode(kernels, G, D, dtype):
    R, K = kernels
    B, hkv, S, bs, top_k = 2, 2, 333, 32, 4
    q, k, v = make_problem(B, hkv, G, D, S, dtype, seed=G * D, strided=(G % 2 == 1))
    seq_lens = torch.tensor([333, 150], device=DEVICE)  # ragged, partial last blocks
    ksum, _, _ = summaries_for(R, k, bs, minmax=False)
    idx = R.select_blocks(q, ksum, seq_lens, bs, top_k, 1, 1)
    scale = D**-0.5
    ref = R.sparse_decode(q, k, v, idx, seq_lens, bs, scale)
    out = K.sparse_decode(q, k, v, idx, seq_lens, bs, scale)
    assert out.shape == (B, hkv * G, D) and out.dtype == dtype
    torch.testing.assert_close(out.float(), ref.float(), rtol=2e-2, atol=2e-2)


@cases
@pytest.mark.parametrize("G", [1, 8], ids=lambda g: f"G{g}")
def test_sparse_equals_dense_when_k_covers_all_blocks(kernels, G):
    R, K = kernels
    B, hkv, D, S, bs = 2, 2, 128, 200, 64
    q, k, v = make_problem(B, hkv, G, D, S, torch.bfloat16, seed=11)
    seq_lens = torch.tensor([200, 3], device=DEVICE)
    ksum, _, _ = summaries_for(R, k, bs, minmax=False)
    idx = K.select_blocks(q, ksum, seq_lens, bs, 8, 1, 1)  # 4 blocks <= 8
    out = K.sparse_decode(q, k, v, idx, seq_lens, bs, D**-0.5)
    dense = R.dense_decode(q, k, v, seq_lens, D**-0.5)
    torch.testing.assert_close(out.float(), dense.float(), rtol=2e-2, atol=2e-2)


@cases
def test_empty_sequence_gives_zeros(kernels):
    R, K = kernels
    q, k, v = make_problem(1, 1, 4, 64, 64, torch.float16)
    idx = torch.full((1, 1, 2), -1, dtype=torch.int32, device=DEVICE)
    out = K.sparse_decode(q, k, v, idx, torch.tensor([0], device=DEVICE), 32, 0.125)
    assert torch.equal(out.float(), torch.zeros_like(out, dtype=torch.float32))


@cases
def test_bad_inputs_raise(kernels):
    _, K = kernels
    q, k, v = make_problem(1, 2, 2, 64, 64, torch.float16)
    ksum = torch.zeros(1, 2, 2, 64, device=DEVICE)
    with pytest.raises(ValueError, match="multiple"):
        K.select_blocks(q[:, :3], ksum, torch.tensor([64], device=DEVICE), 32, 2)
    with pytest.raises(ValueError, match="top_k"):
        K.select_blocks(q, ksum, torch.tensor([64], device=DEVICE), 32, 0)
    with pytest.raises(ValueError, match="Hkv"):
        K.sparse_decode(q, k, v, torch.zeros(1, 1, 2, dtype=torch.int32, device=DEVICE), torch.tensor([64], device=DEVICE), 32, 0.1)


@cases
def test_kernels_agree_with_engine_torch_ops(kernels):
    """On CUDA the engine runs these kernels, on CPU its own PyTorch ops: same selection, same output."""
    R, K = kernels
    from m3analyst.kernels.msa import eager

    B, hkv, G, D, S, bs = 2, 2, 4, 64, 416, 32  # the engine's caches hold whole blocks
    q, k, v = make_problem(B, hkv, G, D, S, torch.bfloat16, seed=21)
    seq_lens = torch.tensor([416, 416], device=DEVICE)
    ksum_e = torch.zeros(B, hkv, math.ceil(S / bs), D, device=DEVICE)
    ksum_k = torch.full_like(ksum_e, float("nan"))
    eager.update_summaries(ksum_e, None, None, k, 0, bs)
    K.update_summaries(ksum_k, None, None, k, 0, bs)
    torch.testing.assert_close(ksum_k, ksum_e, rtol=1e-5, atol=1e-4)
    ie = eager.select_blocks(q, ksum_e, seq_lens, bs, 6, 1, 1)
    ik = K.select_blocks(q, ksum_k, seq_lens, bs, 6, 1, 1)
    assert_same_selection(R, ik, ie, q, ksum_e, seq_lens, bs, "mean", None, None, 1, 1)
    oe = eager.sparse_decode(q, k, v, ie, seq_lens, bs, D**-0.5)
    ok = K.sparse_decode(q, k, v, ie, seq_lens, bs, D**-0.5)
    torch.testing.assert_close(ok.float(), oe.float(), rtol=2e-2, atol=2e-2)


@cases
@pytest.mark.parametrize("bps", [2, 3], ids=lambda n: f"bps{n}")
def test_sparse_decode_several_blocks_per_split(kernels, monkeypatch, bps):
    """Splits of several selected blocks (the last one short) merge to the same answer."""
    R, K = kernels
    monkeypatch.setattr(K.TUNING, "decode_blocks_per_split", bps)
    B, hkv, G, D, S, bs = 2, 2, 4, 64, 300, 32
    q, k, v = make_problem(B, hkv, G, D, S, torch.float16, seed=9)
    seq_lens = torch.tensor([300, 70], device=DEVICE)  # the second has only 3 valid blocks: -1 slots
    ksum, _, _ = summaries_for(R, k, bs, minmax=False)
    idx = R.select_blocks(q, ksum, seq_lens, bs, 7, 1, 1)
    out = K.sparse_decode(q, k, v, idx, seq_lens, bs, D**-0.5)
    torch.testing.assert_close(out.float(), R.sparse_decode(q, k, v, idx, seq_lens, bs, D**-0.5).float(), rtol=2e-2, atol=2e-2)


# ----------------------------------------------------------------------------------------------
# low-precision block means (kmean) and the one-launch decode step
# ----------------------------------------------------------------------------------------------
def assert_selection_within_tolerance(R, idx_k, q, ksum, seq_lens, block_size, top_k, sink, local, mean_dtype):
    """The kernel scored rounded means: its picks may differ from the reference's only where a swap is
    explained by the rounding, i.e. for every kernel-only pick j and reference-only pick i,
    ref_score_j + tol_j + tol_i >= ref_score_i (tol = naive.mean_score_tolerance). Forced blocks
    (+inf) can never be swapped out, blocks past seq_len (-inf) never in."""
    idx_r = R.select_blocks(q, ksum, seq_lens, block_size, top_k, sink, local)
    assert idx_k.dtype == torch.int32 and idx_k.shape == idx_r.shape
    nb = ksum.shape[2]
    scores = R.block_scores(q, ksum, seq_lens, block_size, "mean")
    forced, valid = R.forced_and_valid(seq_lens, nb, block_size, sink, local)
    scores = scores.masked_fill(forced[:, None], math.inf).masked_fill(~valid[:, None], -math.inf)
    tol = R.mean_score_tolerance(q, ksum, seq_lens, block_size, mean_dtype)
    swaps = 0
    for b in range(idx_k.shape[0]):
        for h in range(idx_k.shape[1]):
            ik, ir = idx_k[b, h].cpu(), idx_r[b, h].cpu()
            n = int((ir >= 0).sum())
            assert int((ik >= 0).sum()) == n and (ik[n:] == -1).all() and (torch.diff(ik[:n]) > 0).all(), (ik, ir)
            only_k = sorted(set(ik[:n].tolist()) - set(ir[:n].tolist()))
            only_r = sorted(set(ir[:n].tolist()) - set(ik[:n].tolist()))
            swaps += len(only_k)
            for j in only_k:
                for i in only_r:
                    s_j, s_i = scores[b, h, j].item(), scores[b, h, i].item()
                    assert s_j + tol[b, h, j].item() + tol[b, h, i].item() >= s_i, (b, h, j, i, s_j, s_i)
    return swaps


@cases
def test_update_summaries_writes_block_means(kernels):
    R, K = kernels
    B, hkv, D, S, bs = 2, 2, 64, 150, 32
    _, k, _ = make_problem(B, hkv, 1, D, S, torch.bfloat16, seed=31)
    nb = math.ceil(S / bs)
    seq_lens = torch.tensor([S, 101], device=DEVICE)
    sums = [torch.full((B, hkv, nb, D), float("nan"), device=DEVICE) for _ in range(2)]
    means = [torch.full((B, hkv, nb, D), float("nan"), device=DEVICE, dtype=torch.bfloat16) for _ in range(2)]
    for start, T in [(0, 45), (45, 1), (46, 104)]:
        R.update_summaries(sums[0], None, None, k[:, :, start : start + T], start, bs, seq_lens=seq_lens, kmean=means[0])
        K.update_summaries(sums[1], None, None, k[:, :, start : start + T], start, bs, seq_lens=seq_lens, kmean=means[1])
    torch.testing.assert_close(sums[1], sums[0], rtol=1e-5, atol=1e-4)
    valid = R.block_counts(seq_lens, nb, bs) > 0  # blocks past seq_len are never written (stay NaN)
    got, ref = means[1].float()[valid[:, None].expand(-1, hkv, -1)], means[0].float()[valid[:, None].expand(-1, hkv, -1)]
    torch.testing.assert_close(got, ref, rtol=1e-2, atol=1e-3)
    exact = (sums[0] / R.block_counts(seq_lens, nb, bs).clamp(min=1)[:, None, :, None]).to(torch.bfloat16)
    torch.testing.assert_close(got, exact.float()[valid[:, None].expand(-1, hkv, -1)], rtol=1e-2, atol=1e-3)


@cases
@pytest.mark.parametrize("sub_n,group", [(None, 32), (16, 2)], ids=["one-chunk", "two-level-merge"])
def test_select_blocks_from_bf16_means(kernels, monkeypatch, sub_n, group):
    R, K = kernels
    monkeypatch.setattr(K.TUNING, "select_block_n", sub_n)
    monkeypatch.setattr(K.TUNING, "merge_group", group)
    B, hkv, G, D, S, bs, top_k = 2, 2, 4, 64, 1100, 16, 8
    q, k, _ = make_problem(B, hkv, G, D, S, torch.bfloat16, seed=32)
    seq_lens = torch.tensor([1100, 333], device=DEVICE)
    nb = math.ceil(S / bs)
    ksum = torch.zeros(B, hkv, nb, D, device=DEVICE)
    kmean = torch.zeros(B, hkv, nb, D, device=DEVICE, dtype=torch.bfloat16)
    R.update_summaries(ksum, None, None, k, 0, bs, seq_lens=seq_lens, kmean=kmean)
    ik = K.select_blocks(q, ksum, seq_lens, bs, top_k, 1, 2, kmean=kmean)
    assert_selection_within_tolerance(R, ik, q, ksum, seq_lens, bs, top_k, 1, 2, torch.bfloat16)


@cases
@pytest.mark.parametrize("fused,mean_dtype,sub_n,impl,exact", [
    (True, torch.bfloat16, None, "v3", True), (True, torch.bfloat16, 16, "v3", False), (True, None, 16, "v3", True),
    (True, None, None, "v3-2", False), (False, torch.bfloat16, None, "v3", False)],
    ids=["v3-bf16-exact", "v3-bf16-two-level", "v3-fp32sums-two-level", "v3-two-launches", "three-launches-bf16"])
def test_decode_step_matches_reference(kernels, monkeypatch, fused, mean_dtype, sub_n, impl, exact):
    """Consecutive decode tokens (one starts a fresh block), ragged batch: summaries, selection (identical
    with fp32 sums or exact rescoring, else up to the rounding tolerance of the means) and output agree with
    update + select + decode of the reference. sub_n 16 with 8 merge lanes: several chunks, and (v3) a group
    merge level."""
    R, K = kernels
    monkeypatch.setattr(K.TUNING, "select_block_n", sub_n)
    monkeypatch.setattr(K.TUNING, "merge_group", 4)
    monkeypatch.setattr(K.TUNING, "step_launches", 2 if impl == "v3-2" else 1)
    monkeypatch.setattr(K.TUNING, "step_exact", exact)
    monkeypatch.setattr(K.TUNING, "step_merge_lanes", 8 if sub_n else 256)
    monkeypatch.setattr(K.TUNING, "step_flat_lanes", 8 if sub_n else 512)
    B, hkv, G, D, S, bs, top_k = 2, 2, 4, 64, 420, 16, 5
    q, k, v = make_problem(B, hkv, G, D, S, torch.bfloat16, seed=33)
    nb = math.ceil(S / bs)
    if sub_n and impl.startswith("v3"):  # 2 chunks x 8 lanes > 8: the group level runs
        assert K._Step3Plan(q, torch.zeros(B, hkv, nb, D, device=DEVICE), k, top_k, bs, 4).group > 1
    L0 = 414  # tokens already summarised; steps write positions 414, 415 (ends block 25) and 416 (fresh block 26)
    short = torch.tensor([0, 200], device=DEVICE)
    ksum = [torch.zeros(B, hkv, nb, D, device=DEVICE) for _ in range(2)]
    kmean = [torch.zeros(B, hkv, nb, D, device=DEVICE, dtype=mean_dtype) for _ in range(2)] if mean_dtype else [None, None]
    R.update_summaries(ksum[0], None, None, k[:, :, :L0], 0, bs, seq_lens=torch.tensor([L0, 200], device=DEVICE), kmean=kmean[0])
    ksum[1].copy_(ksum[0])
    if mean_dtype:
        kmean[1].copy_(kmean[0])
    for pos in (414, 415, 416):
        seq_lens = torch.where(short > 0, short, pos + 1).to(torch.int32)
        q = torch.randn(q.shape, generator=_gen(pos)).to(torch.bfloat16).to(DEVICE)
        k_new = k[:, :, pos : pos + 1]
        out_r, idx_r = R.decode_step(q, k_new, k, v, ksum[0], seq_lens, pos, bs, top_k, 1, 1, kmean=kmean[0])
        out_k, idx_k = K.decode_step(q, k_new, k, v, ksum[1], seq_lens, pos, bs, top_k, 1, 1, kmean=kmean[1], fused=fused)
        torch.testing.assert_close(ksum[1], ksum[0], rtol=1e-5, atol=1e-4)
        if mean_dtype:
            torch.testing.assert_close(kmean[1].float(), kmean[0].float(), rtol=1e-2, atol=1e-3)
        if mean_dtype and not exact:
            assert_selection_within_tolerance(R, idx_k, q, ksum[0], seq_lens, bs, top_k, 1, 1, mean_dtype)
        else:
            assert_same_selection(R, idx_k, idx_r, q, ksum[0], seq_lens, bs, "mean", None, None, 1, 1)
        ref = R.sparse_decode(q, k, v, idx_k, seq_lens, bs, D**-0.5)
        torch.testing.assert_close(out_k.float(), ref.float(), rtol=2e-2, atol=2e-2)
        assert out_k.shape == out_r.shape


def near_tie_problem(B=1, hkv=2, G=2, D=64, nb=40, bs=16, seed=40):
    """Summaries whose block means differ from each other by far less than bf16 resolves: every block's
    mean is base + eps_j * e0 with |eps_j| ~ 1e-4, q along e0. The bf16 means all round alike (ties), so
    only the fp32 sums rank the blocks."""
    g = _gen(seed)
    base = torch.randn(B, hkv, 1, D, generator=g) + 3.0
    eps = torch.randn(B, hkv, nb, 1, generator=g) * 1e-4
    mean = base + eps * torch.nn.functional.one_hot(torch.tensor(0), D).float()
    ksum = (mean * bs).to(DEVICE)
    q = torch.zeros(B, hkv * G, D)
    q[:, :, 0] = 1.0
    return q.to(torch.bfloat16).to(DEVICE), ksum, (ksum / bs).to(torch.bfloat16)


@cases
def test_exact_rescoring_recovers_fp32_picks_from_bf16_ties(kernels, monkeypatch):
    """With bf16 means alone the near-tied blocks are picked by id; the exact rescoring picks what the fp32
    reference picks (and this problem does tell the two apart)."""
    R, K = kernels
    bs, nb, top_k = 16, 40, 6
    q, ksum, kmean = near_tie_problem(nb=nb, bs=bs)
    B, hkv = ksum.shape[:2]
    S = nb * bs
    k = torch.randn(B, hkv, S, q.shape[2], generator=_gen(41)).to(torch.bfloat16).to(DEVICE)
    v = torch.randn(B, hkv, S, q.shape[2], generator=_gen(42)).to(torch.bfloat16).to(DEVICE)
    seq_lens = torch.full((B,), S, device=DEVICE)
    idx_r = R.select_blocks(q, ksum, seq_lens, bs, top_k, 1, 1)
    _, idx_fast = K.select_and_decode(q, k, v, ksum, S, bs, top_k, 1, 1, kmean=kmean, exact=False)
    out, idx_exact = K.select_and_decode(q, k, v, ksum, S, bs, top_k, 1, 1, kmean=kmean, exact=True)
    assert not torch.equal(idx_fast, idx_r)
    assert torch.equal(idx_exact, idx_r)
    ref = R.sparse_decode(q, k, v, idx_r, seq_lens, bs, q.shape[2] ** -0.5)
    torch.testing.assert_close(out.float(), ref.float(), rtol=2e-2, atol=2e-2)


@cases
@pytest.mark.parametrize("scorer", ["mean", "minmax"])
def test_select_and_decode_matches_reference(kernels, scorer):
    """The engine's one-launch op: one int length for the batch, summaries already current, GQA 3."""
    R, K = kernels
    B, hkv, G, D, S, bs, top_k = 2, 2, 3, 64, 333, 16, 5
    q, k, v = make_problem(B, hkv, G, D, S, torch.bfloat16, seed=43)
    ksum, kmin, kmax = summaries_for(R, k, bs)
    seq_lens = torch.full((B,), S, device=DEVICE)
    idx_r = R.select_blocks(q, ksum, seq_lens, bs, top_k, 1, 2, scorer, kmin, kmax)
    out, idx_k = K.select_and_decode(q, k, v, ksum, S, bs, top_k, 1, 2, None, scorer, kmin, kmax)
    assert_same_selection(R, idx_k, idx_r, q, ksum, seq_lens, bs, scorer, kmin, kmax, 1, 2)
    ref = R.sparse_decode(q, k, v, idx_k, seq_lens, bs, D**-0.5)
    torch.testing.assert_close(out.float(), ref.float(), rtol=2e-2, atol=2e-2)


@cases
@pytest.mark.parametrize("scorer", ["mean", "minmax"])
def test_select_and_decode_folds_the_new_token(kernels, scorer):
    """select_and_decode with k_new: the token's summary update (fp32 sum, min, max) done in the same launch
    equals update_summaries + select + decode; tokens that continue a block and one that starts a block. With v_new
    (the last two tokens) the launch also writes the token's key and value into the caches, whose rows held
    garbage: written rows equal k_new / v_new and the output attends over them (the local block holds them)."""
    R, K = kernels
    B, hkv, G, D, S, bs, top_k = 2, 2, 4, 64, 200, 16, 4
    q, k, v = make_problem(B, hkv, G, D, S, torch.bfloat16, seed=45)
    nb = S // bs + 1
    for n, write_kv in ((150, False), (161, True), (176, True)):  # the new token at n-1: mid-block, the first of a
        ks, kmn, kmx = (torch.zeros(B, hkv, nb, D, device=DEVICE) for _ in range(3))  # block, the last of a block
        R.update_summaries(ks, kmn, kmx, k[:, :, : n - 1], 0, bs)
        want = [t.clone() for t in (ks, kmn, kmx)]
        R.update_summaries(*want, k[:, :, n - 1 : n], n - 1, bs)
        kc, vc, kv = k, v, {}
        if write_kv:
            kc, vc = k.clone(), v.clone()
            kc[:, :, n - 1], vc[:, :, n - 1] = 1e4, float("nan")
            kv = dict(v_new=v[:, :, n - 1 : n].clone())
        out, idx = K.select_and_decode(q, kc, vc, ks, n, bs, top_k, 1, 1, None, scorer, kmn, kmx,
                                       k_new=k[:, :, n - 1 : n].clone(), pos=n - 1, **kv)
        assert torch.equal(kc, k) and torch.equal(vc, v)
        for got, ref in zip((ks, kmn, kmx), want):
            torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-4)
        seq_lens = torch.full((B,), n, device=DEVICE)
        idx_r = R.select_blocks(q, want[0], seq_lens, bs, top_k, 1, 1, scorer, want[1], want[2])
        assert_same_selection(R, idx, idx_r, q, want[0], seq_lens, bs, scorer, want[1], want[2], 1, 1)
        ref = R.sparse_decode(q, k, v, idx, seq_lens, bs, D**-0.5)
        torch.testing.assert_close(out.float(), ref.float(), rtol=2e-2, atol=2e-2)


@cases
@pytest.mark.parametrize("means, scorer", [("fp32", "mean"), ("bf16", "mean"), ("fp32", "minmax")])
def test_engine_hooks_keep_means_and_decode_like_the_reference(kernels, monkeypatch, means, scorer):
    """engine_update / engine_decode on a stand-in for the engine's MSALayer: prefill, two decode tokens,
    a truncation (bf16 means rebuilt), results equal the reference's (selection identical from fp32 sums and
    min/max, within the rounding bound from bf16 means). A decode token's update is deferred into the decode
    launch once the layer's previous decode was the one-launch one (bf16 means: and the means are current)."""
    from types import SimpleNamespace

    from m3analyst.kernels import msa
    from m3analyst.settings import AttentionSettings

    R, K = kernels
    monkeypatch.setattr(msa.contract, "BACKEND", "triton")  # the Triton path on CPU tensors (interpreter)
    monkeypatch.setattr(msa.cuda, "ENGINE_MEAN_SUMMARY", means)
    B, hkv, G, D, cap, bs = 1, 2, 4, 64, 512, 16
    q, k, v = make_problem(B, hkv, G, D, cap, torch.bfloat16, seed=44)
    nbc = cap // bs
    zeros = lambda: torch.zeros(B, hkv, nbc, D, device=DEVICE)  # noqa: E731
    mm = scorer == "minmax"
    layer = SimpleNamespace(keys=k, values=v, block_size=bs, length=0, ksum=zeros(),
                            kmin=zeros() if mm else None, kmax=zeros() if mm else None)
    settings = AttentionSettings(scorer=scorer, top_k=5, sink_blocks=1, local_blocks=2)
    ref = [zeros(), zeros() if mm else None, zeros() if mm else None]

    def append(start, T):
        msa.engine_update(layer, k[:, :, start : start + T], start)
        R.update_summaries(*ref, k[:, :, start : start + T], start, bs)
        layer.length = start + T

    deferred = []
    for start, T in [(0, 300), (300, 1), (301, 1), (250, 1)]:  # the last: a cache truncated to 250, then one token
        if start < layer.length:
            for t in (layer.ksum, layer.kmin, layer.kmax, *ref):
                if t is not None:
                    t.zero_()
            R.update_summaries(layer.ksum, layer.kmin, layer.kmax, k[:, :, :start], 0, bs)
            R.update_summaries(*ref, k[:, :, :start], 0, bs)
            layer.length = start
        append(start, T)
        deferred.append("pending" in layer.extra)
        n = layer.length
        out, idx = msa.engine_decode(q, layer, n, settings, D**-0.5)
        for got, want in zip((layer.ksum, layer.kmin, layer.kmax), ref):
            if want is not None:
                torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)
        seq_lens = torch.full((B,), n, device=DEVICE)
        idx_r = R.select_blocks(q, ref[0], seq_lens, bs, 5, 1, 2, scorer, ref[1], ref[2])
        if means == "fp32":
            assert_same_selection(R, idx, idx_r, q, ref[0], seq_lens, bs, scorer, ref[1], ref[2], 1, 2)
        else:
            assert_selection_within_tolerance(R, idx, q, ref[0], seq_lens, bs, 5, 1, 2, torch.bfloat16)
        want_out = R.sparse_decode(q, k, v, idx, seq_lens, bs, D**-0.5)
        torch.testing.assert_close(out.float(), want_out.float(), rtol=2e-2, atol=2e-2)
    # bf16 means (round 7): deferred like the fp32 sums while the means are current; the truncation rebuilds them
    assert deferred == ([False, True, True, True] if means == "fp32" else [False, True, True, False])
    if means == "bf16":
        assert layer.extra["kmean_len"] == 251
        torch.testing.assert_close(layer.extra["kmean"][:, :, :15].float(), ref[0][:, :, :15] / bs, rtol=1e-2, atol=1e-3)  # full blocks
    layer.extra["pending"] = 251  # as if token 251 were appended: flushed by engine_flush, exactly once
    msa.engine_flush(layer)
    R.update_summaries(*ref, k[:, :, 251:252], 251, bs)
    msa.engine_flush(layer)
    torch.testing.assert_close(layer.ksum, ref[0], rtol=1e-5, atol=1e-4)


@cases
@pytest.mark.parametrize("means", ["fp32", "bf16"])  # minmax scores no means: deferred alike (round 7)
def test_engine_append_defers_the_cache_write_into_the_decode_launch(kernels, monkeypatch, means):
    """engine_append (MSAOps.append_token on CUDA) on a stand-in MSALayer: a decode token's key/value write and summary
    update are deferred into the next engine_decode launch only once the layer's previous decode was the one-launch
    one for the token before; the cache then holds the token, the summaries equal the reference's and the output and
    selection equal the reference's. A token that does not continue the last decode (a truncation), and engine_flush,
    write it at once."""
    from types import SimpleNamespace

    from m3analyst.kernels import msa
    from m3analyst.settings import AttentionSettings

    R, K = kernels
    monkeypatch.setattr(msa.contract, "BACKEND", "triton")
    monkeypatch.setattr(msa.cuda, "ENGINE_MEAN_SUMMARY", means)
    B, hkv, G, D, cap, bs = 1, 2, 4, 64, 256, 16
    q, k, v = make_problem(B, hkv, G, D, cap, torch.bfloat16, seed=48)
    nbc = cap // bs
    zeros = lambda: torch.zeros(B, hkv, nbc, D, device=DEVICE)  # noqa: E731
    layer = SimpleNamespace(keys=torch.zeros_like(k), values=torch.zeros_like(v), block_size=bs, length=0,
                            ksum=zeros(), kmin=zeros(), kmax=zeros())
    settings = AttentionSettings(scorer="minmax", top_k=4, sink_blocks=1, local_blocks=1)
    ref = [zeros(), zeros(), zeros()]

    def update(start, T):  # MSALayer.update's protocol
        kt, vt = k[:, :, start : start + T].clone(), v[:, :, start : start + T].clone()
        if not (T == 1 and msa.engine_append(layer, kt, vt, start)):
            layer.keys[:, :, start : start + T], layer.values[:, :, start : start + T] = kt, vt
            msa.engine_update(layer, layer.keys[:, :, start : start + T], start)
        R.update_summaries(*ref, k[:, :, start : start + T], start, bs)
        layer.length = start + T
        return "pending_kv" in layer.extra

    deferred = []
    for start, T in [(0, 190), (190, 1), (191, 1), (192, 1), (150, 1)]:  # the last: truncated to 150, then a token
        if start < layer.length:
            for t in (layer.ksum, layer.kmin, layer.kmax, *ref):
                t.zero_()
            R.update_summaries(layer.ksum, layer.kmin, layer.kmax, k[:, :, :start], 0, bs)
            R.update_summaries(*ref, k[:, :, :start], 0, bs)
        deferred.append(update(start, T))
        n = start + T
        out, idx = msa.engine_decode(q, layer, n, settings, D**-0.5)
        assert "pending_kv" not in layer.extra and layer.extra["kv_in_launch"] == deferred[-1]
        torch.testing.assert_close(layer.keys[:, :, :n], k[:, :, :n], rtol=0, atol=0)
        torch.testing.assert_close(layer.values[:, :, :n], v[:, :, :n], rtol=0, atol=0)
        for got, want in zip((layer.ksum, layer.kmin, layer.kmax), ref):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)
        seq_lens = torch.full((B,), n, device=DEVICE)
        idx_r = R.select_blocks(q, ref[0], seq_lens, bs, 4, 1, 1, "minmax", ref[1], ref[2])
        assert_same_selection(R, idx, idx_r, q, ref[0], seq_lens, bs, "minmax", ref[1], ref[2], 1, 1)
        torch.testing.assert_close(out.float(), R.sparse_decode(q, k, v, idx, seq_lens, bs, D**-0.5).float(),
                                   rtol=2e-2, atol=2e-2)
    assert deferred == [False, True, True, True, False]  # the first token after the prompt follows its decode
    assert update(151, 1)  # deferred, then read by someone else: engine_flush writes it
    msa.engine_flush(layer)
    assert "pending_kv" not in layer.extra and "pending" not in layer.extra
    torch.testing.assert_close(layer.keys[:, :, :152], k[:, :, :152], rtol=0, atol=0)
    torch.testing.assert_close(layer.ksum, ref[0], rtol=1e-5, atol=1e-4)
    monkeypatch.setattr(msa.cuda, "ENGINE_KV_FOLD", False)
    layer.extra["next_pos"] = 152
    assert not update(152, 1)  # switched off: the cache writes the token itself


def assert_same_picks_up_to_ties(R, idx_k, q, kmean, seq_lens, bs, top_k, sink, local):
    """idx_k equals the reference selection scored from the same means kmean, except for swaps between blocks whose
    scores tie within fp32 reassociation (1e-5 of sum_d |sum_g q_gd| |mean_d|)."""
    scores = R.means_scores(q, kmean)
    idx_m = R.select_from_scores(scores, seq_lens, bs, top_k, sink, local)
    cmp = R.compare_selections(idx_k, idx_m, scores, R.means_tie_tolerance(q, kmean), seq_lens, bs, sink, local)
    assert cmp["ties_within_tol"], cmp
    return cmp


# The fold test's cache operations: ("add", start, T) appends T tokens, ("trunc", length, 0) truncates, ("kv", on, 0)
# switches the key/value fold: over block boundaries, truncations inside a block and at a boundary, a prompt chunk.
BF16_FOLD_SCHEDULE = [("add", 0, 42), *[("add", p, 1) for p in range(42, 52)], ("trunc", 45, 0),
                      *[("add", p, 1) for p in range(45, 50)], ("kv", 0, 0), *[("add", p, 1) for p in range(50, 54)],
                      ("kv", 1, 0), ("trunc", 48, 0), *[("add", p, 1) for p in range(48, 51)], ("add", 51, 14),
                      *[("add", p, 1) for p in range(65, 70)]]


def _check_bf16_fold_step(R, layer, twin, ref, k, v, q, out, idx, n, bs, top_k):
    """One decode of the fold test: the cache holds the tokens, sums / min / max equal the reference's, the means
    equal the twin's bitwise and the reference's up to one bf16 step, the picks and the output the reference's."""
    assert layer.extra["fused_kmean"] and layer.extra["kmean_len"] == n and "pending" not in layer.extra
    torch.testing.assert_close(layer.keys[:, :, :n], k[:, :, :n], rtol=0, atol=0)
    torch.testing.assert_close(layer.values[:, :, :n], v[:, :, :n], rtol=0, atol=0)
    nbv = -(-n // bs)  # blocks past the length (left over from before a truncation) are never read
    for got, want in zip((layer.ksum, layer.kmin, layer.kmax), ref):
        torch.testing.assert_close(got[:, :, :nbv], want[:, :, :nbv], rtol=1e-5, atol=1e-4)
    km, km_twin = layer.extra["kmean"][:, :, :nbv], twin.extra["kmean"][:, :, :nbv]
    assert torch.equal(km, km_twin), (n, (km.float() - km_twin.float()).abs().max())
    seq_lens = torch.full((k.shape[0],), n, device=DEVICE)
    counts = R.block_counts(seq_lens, nbv, bs).clamp(min=1).float()[:, None, :, None]
    # one bf16 step (2^-7): rounding to nearest on the GPU, the interpreter's fp32 -> bf16 cast truncates
    torch.testing.assert_close(km.float(), ref[0][:, :, :nbv] / counts, rtol=2**-7, atol=1e-6, msg=lambda m: f"n={n}: {m}")
    assert_same_picks_up_to_ties(R, idx, q, layer.extra["kmean"], seq_lens, bs, top_k, 1, 1)
    assert_selection_within_tolerance(R, idx, q, ref[0], seq_lens, bs, top_k, 1, 1, torch.bfloat16)
    D = q.shape[-1]
    torch.testing.assert_close(out.float(), R.sparse_decode(q, k, v, idx, seq_lens, bs, D**-0.5).float(),
                               rtol=2e-2, atol=2e-2)


@cases
def test_engine_bf16_means_fold_the_token_and_its_write_into_the_launch(kernels, monkeypatch):
    """ENGINE_MEAN_SUMMARY "bf16" (round 7): a decode token's key/value write (engine_append) and its summary update
    -- fp32 sum, min/max and the bf16 mean -- go into the decode launch as with fp32 sums. Over tokens across block
    boundaries, with truncations (inside a block, at a block boundary), a prompt chunk and a stretch with the
    key/value fold off in between: the cache holds the tokens, the sums / min / max equal the reference's, the means
    equal bitwise those of a twin layer driven with the fold off (engine_update's own kernel) and the reference's
    means up to one bf16 step; the selection equals the reference's from the same means up to fp32 ties and the
    fp32-sum reference's within the means' rounding bound; the output equals the reference attention."""
    from types import SimpleNamespace

    from m3analyst.kernels import msa
    from m3analyst.settings import AttentionSettings

    R, K = kernels
    monkeypatch.setattr(msa.contract, "BACKEND", "triton")
    monkeypatch.setattr(msa.cuda, "ENGINE_MEAN_SUMMARY", "bf16")
    B, hkv, G, D, cap, bs, top_k = 1, 2, 4, 64, 128, 16, 4
    _, k, v = make_problem(B, hkv, G, D, cap, torch.bfloat16, seed=52)
    g = _gen(53)
    nbc = cap // bs
    zeros = lambda: torch.zeros(B, hkv, nbc, D, device=DEVICE)  # noqa: E731
    settings = AttentionSettings(scorer="mean", top_k=top_k, sink_blocks=1, local_blocks=1)

    def new_layer():
        return SimpleNamespace(keys=torch.zeros_like(k), values=torch.zeros_like(v), block_size=bs, length=0,
                               ksum=zeros(), kmin=zeros(), kmax=zeros())

    layer, twin, ref = new_layer(), new_layer(), [zeros(), zeros(), zeros()]

    def update(ly, start, T, fold):  # MSALayer.update's protocol
        monkeypatch.setattr(msa.cuda, "ENGINE_FOLD", fold)
        kt, vt = k[:, :, start : start + T].clone(), v[:, :, start : start + T].clone()
        took = T == 1 and msa.engine_append(ly, kt, vt, start)
        if not took:
            ly.keys[:, :, start : start + T], ly.values[:, :, start : start + T] = kt, vt
            msa.engine_update(ly, ly.keys[:, :, start : start + T], start)
        ly.length = start + T
        return took, "pending" in ly.extra

    def truncate(ly, length, fold):  # MSALayer.truncate's protocol
        monkeypatch.setattr(msa.cuda, "ENGINE_FOLD", fold)
        ly.length = length
        start = length // bs * bs
        if length > start:
            msa.engine_update(ly, ly.keys[:, :, start:length], start)

    log = []
    for op, a, b in BF16_FOLD_SCHEDULE:
        if op == "kv":
            monkeypatch.setattr(msa.cuda, "ENGINE_KV_FOLD", bool(a))
            continue
        if op == "trunc":
            truncate(layer, a, True)
            truncate(twin, a, False)
            ref[0].zero_(), ref[1].zero_(), ref[2].zero_()
            R.update_summaries(*ref, k[:, :, :a], 0, bs)
            continue
        log.append(update(layer, a, b, True))
        update(twin, a, b, False)
        R.update_summaries(*ref, k[:, :, a : a + b], a, bs)
        n = a + b
        q = torch.randn(B, hkv * G, D, generator=g).to(torch.bfloat16).to(DEVICE)
        monkeypatch.setattr(msa.cuda, "ENGINE_FOLD", True)
        out, idx = msa.engine_decode(q, layer, n, settings, D**-0.5)
        monkeypatch.setattr(msa.cuda, "ENGINE_FOLD", False)
        msa.engine_decode(q, twin, n, settings, D**-0.5)
        _check_bf16_fold_step(R, layer, twin, ref, k, v, q, out, idx, n, bs, top_k)
    took = [t for t, _ in log]
    deferred = [d for _, d in log]
    # the token after a prompt follows the decode at its own position: taken at once; after a truncation the previous
    # decode was elsewhere (next_pos): written by the cache, and at a block boundary the stale means are rebuilt
    # (not deferred); with the key/value fold off only the summary update is deferred
    assert took == [False] + [True] * 10 + [False] + [True] * 4 + [False] * 4 + [False] + [True] * 2 + [False] + [True] * 5, took
    assert deferred == [False] + [True] * 10 + [False] + [True] * 4 + [True] * 4 + [False] + [True] * 2 + [False] + [True] * 5, deferred


@pytest.mark.skipif(not ON_GPU, reason="programmatic dependent launch needs the GPU (the interpreter runs none)")
@pytest.mark.parametrize("trigger", [True, False], ids=["trigger", "notrigger"])
def test_back_to_back_launches_with_pdl_and_prefetch(kernels, monkeypatch, trigger):
    """Hopper PDL (TUNING step_pdl, off by default): consecutive v3 launches over distinct layers, each reading its
    summaries before the previous launch ends (prefetch), eagerly and in a CUDA graph: every layer's selection and
    output equal the reference's. Then the same layer token after token with prefetch off (each launch's fold is the
    next one's input)."""
    R, K = kernels
    monkeypatch.setattr(K.TUNING, "step_pdl", True)
    monkeypatch.setattr(K.TUNING, "step_pdl_trigger", trigger)
    assert K._pdl_on(torch.zeros(1, device=DEVICE)) == (torch.cuda.get_device_capability()[0] >= 9)
    B, hkv, G, D, S, bs, top_k, n = 1, 8, 4, 128, 4096, 64, 16, 4000
    def summaries(k, tokens):  # capacity for the whole cache, filled up to `tokens`
        ts = [torch.zeros(B, hkv, S // bs, D, device=DEVICE) for _ in range(3)]
        R.update_summaries(*ts, k[:, :, :tokens], 0, bs)
        return ts

    layers = []
    for i in range(4):
        q, k, v = make_problem(B, hkv, G, D, S, torch.bfloat16, seed=60 + i)
        layers.append((q, k, v, *summaries(k, n - 1)))
    seq_lens = torch.full((B,), n, device=DEVICE)
    for scorer in ("mean", "minmax"):
        wants = []
        for q, k, v, ks, kmn, kmx in layers:
            w = [t.clone() for t in (ks, kmn, kmx)]
            R.update_summaries(*w, k[:, :, n - 1 : n], n - 1, bs)
            wants.append((w, R.select_blocks(q, w[0], seq_lens, bs, top_k, 1, 1, scorer, w[1], w[2])))

        def run(state):
            return [K.select_and_decode(q, k, v, ks, n, bs, top_k, 1, 1, None, scorer, kmn, kmx, k_new=k[:, :, n - 1 : n],
                                        pos=n - 1, prefetch=True) for (q, k, v, _, _, _), (ks, kmn, kmx) in zip(layers, state)]

        fresh = lambda: [[t.clone() for t in ly[3:]] for ly in layers]  # noqa: E731
        state = fresh()
        res = run(state)
        state2 = fresh()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            res2 = run(state2)
        for t_now, t0 in zip(sum(state2, []), sum(fresh(), [])):
            t_now.copy_(t0)
        g.replay()
        torch.cuda.synchronize()
        for (out, idx), (q, k, v, *_), (w, idx_r), st in zip(res + res2, layers + layers, wants + wants, state + state2):
            for got, ref in zip(st, w):
                torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-4)
            assert_same_selection(R, idx, idx_r, q, w[0], seq_lens, bs, scorer, w[1], w[2], 1, 1)
            torch.testing.assert_close(out.float(), R.sparse_decode(q, k, v, idx, seq_lens, bs, D**-0.5).float(),
                                       rtol=2e-2, atol=2e-2)
    q, k, v = layers[0][:3]  # one layer, consecutive tokens (crossing a block boundary at 4032)
    ks, kmn, kmx = summaries(k, n - 1)
    ref = [t.clone() for t in (ks, kmn, kmx)]
    outs = []
    for p in range(n - 1, n + 40):
        outs.append(K.select_and_decode(q, k, v, ks, p + 1, bs, top_k, 1, 1, None, "mean", kmn, kmx,
                                        k_new=k[:, :, p : p + 1], pos=p))
    for p, (out, idx) in zip(range(n - 1, n + 40), outs):
        R.update_summaries(*ref, k[:, :, p : p + 1], p, bs)
        lens = torch.full((B,), p + 1, device=DEVICE)
        idx_r = R.select_blocks(q, ref[0], lens, bs, top_k, 1, 1, "mean")
        assert_same_selection(R, idx, idx_r, q, ref[0], lens, bs, "mean", None, None, 1, 1)
        torch.testing.assert_close(out.float(), R.sparse_decode(q, k, v, idx, lens, bs, D**-0.5).float(),
                                   rtol=2e-2, atol=2e-2)


@cases
@pytest.mark.parametrize("programs,pattern", [(16, "spread"), (16, "tied"), (8, "spread"), (4, "tied")],
                         ids=["two-tiles", "two-tiles-tied", "four-tiles", "eight-tiles-tied"])
def test_persistent_select(kernels, monkeypatch, programs, pattern):
    """The v3 step with select programs that loop over several tiles (the next tile's load in flight, one top-K
    over all their scores): selection identical to the reference (fp32 sums, minmax with the token folded in;
    bf16 means within their rounding bound), summaries folded like update_summaries, output = attention over the
    selection. Ragged batch (a row far shorter than the chunks cover: programs with no valid tile); "tied" makes
    16 equal best blocks across two chunks (ties: lowest ids first). 16 merge lanes: the one-tile plan (8 lists x 4
    lanes) needs a group level, the persistent one does not; where it would need one anyway, or where the one-tile
    plan has none, the rule keeps one tile per program."""
    R, K = kernels
    for key, val in dict(select_block_n=16, step_select_programs=programs, step_max_tiles=16,
                         step_tile_bytes_persistent=None, step_merge_lanes=16, step_flat_lanes=16).items():
        monkeypatch.setattr(K.TUNING, key, val)
    B, hkv, G, D, S, bs, top_k = 2, 2, 4, 64, 1000, 8, 4
    q, k, v = make_problem(B, hkv, G, D, S, torch.bfloat16, seed=47)
    if pattern == "tied":  # blocks 56..71 (across chunks): one key block, aligned with the group's query sum,
        qs = q.float().view(B, hkv, G, D).sum(2)  # repeated: tied best scores, more than one chunk publishes
        blk = k[:, :, 56 * bs : 57 * bs] + (0.5 * qs / qs.norm(dim=-1, keepdim=True))[:, :, None].to(k.dtype)
        k[:, :, 56 * bs : 72 * bs] = blk.repeat(1, 1, 16, 1)
    nb, n = math.ceil(S / bs), 999
    seq_lens = torch.tensor([n, 150], device=DEVICE, dtype=torch.int32)
    plan = K._Step3Plan(q, torch.zeros(B, hkv, nb, D, device=DEVICE), k, top_k, bs, 4)
    assert plan.tiles == 32 // programs and plan.group == 1
    monkeypatch.setattr(K.TUNING, "step_flat_lanes", 2)
    monkeypatch.setattr(K.TUNING, "step_merge_lanes", 2)  # the chunks' lists (>= 4 lanes) would need a group level
    assert K._Step3Plan(q, torch.zeros(B, hkv, nb, D, device=DEVICE), k, top_k, bs, 4).tiles == 1
    monkeypatch.setattr(K.TUNING, "step_flat_lanes", 32)
    monkeypatch.setattr(K.TUNING, "step_merge_lanes", 32)  # the one-tile plan's 8 lists x 4 lanes: one level already
    assert K._Step3Plan(q, torch.zeros(B, hkv, nb, D, device=DEVICE), k, top_k, bs, 4).tiles == 1
    monkeypatch.setattr(K.TUNING, "step_flat_lanes", 16)
    monkeypatch.setattr(K.TUNING, "step_merge_lanes", 16)
    for scorer, means in (("mean", None), ("minmax", None), ("mean", torch.bfloat16)):
        ks, kmn, kmx = (torch.zeros(B, hkv, nb, D, device=DEVICE) for _ in range(3))
        R.update_summaries(ks, kmn, kmx, k[:, :, : n - 1], 0, bs, seq_lens=seq_lens)
        want = [t.clone() for t in (ks, kmn, kmx)]
        R.update_summaries(*want, k[:, :, n - 1 : n], n - 1, bs, seq_lens=seq_lens)
        kmean = (ks / R.block_counts(seq_lens - (seq_lens == n).int(), nb, bs).clamp(min=1)[:, None, :, None]).to(means) if means else None
        out, idx = K.select_and_decode(q, k, v, ks, seq_lens, bs, top_k, 1, 1, None, scorer, kmn, kmx, kmean=kmean,
                                       k_new=k[:, :, n - 1 : n], pos=n - 1)
        for got, ref in zip((ks, kmn, kmx), want):
            torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-4)
        if means is not None:
            assert_selection_within_tolerance(R, idx, q, want[0], seq_lens, bs, top_k, 1, 1, means)
        else:
            idx_r = R.select_blocks(q, want[0], seq_lens, bs, top_k, 1, 1, scorer, want[1], want[2])
            assert_same_selection(R, idx, idx_r, q, want[0], seq_lens, bs, scorer, want[1], want[2], 1, 1)
        torch.testing.assert_close(out.float(), R.sparse_decode(q, k, v, idx, seq_lens, bs, D**-0.5).float(),
                                   rtol=2e-2, atol=2e-2)
