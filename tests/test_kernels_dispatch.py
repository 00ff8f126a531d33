"""Dispatch of the MSA ops: CPU tensors take the PyTorch path (never Triton), CUDA takes the kernels.

Runs in the normal pytest process: nothing here imports triton (m3analyst.kernels.msa loads its
backends lazily), so the TRITON_INTERPRET child of test_kernels_msa.py is unaffected.
"""

from __future__ import annotations

import math
import sys

import pytest
import torch

from m3analyst.kernels import msa
from m3analyst.kernels.msa import naive as msa_naive


def _problem(B=2, hkv=2, G=4, D=64, S=300, bs=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, hkv * G, D, generator=g)
    k = torch.randn(B, hkv, S, D, generator=g)
    v = torch.randn(B, hkv, S, D, generator=g)
    ksum = torch.zeros(B, hkv, math.ceil(S / bs), D)
    msa_naive.update_summaries(ksum, None, None, k, 0, bs)
    return q, k, v, ksum


def test_cpu_tensors_use_the_torch_backend(monkeypatch):
    monkeypatch.setattr(msa.contract, "BACKEND", None)
    assert msa.backend_for(torch.zeros(1)) == "torch"
    assert msa.backend_for(torch.zeros(1), backend="triton") == "triton"
    from m3analyst.settings import KernelSettings

    monkeypatch.setattr(msa.contract, "BACKEND", msa.contract.BACKEND)  # restored after the test
    msa.configure(KernelSettings(msa_backend="triton"))  # the setting engine.kernels.msa_backend
    assert msa.backend_for(torch.zeros(1)) == "triton"
    with pytest.raises(ValueError, match="unknown MSA backend"):
        msa.select_blocks(torch.zeros(1, 1, 4), torch.zeros(1, 1, 1, 4), torch.ones(1), 4, 1, 0, 0, backend="nope")


def test_cpu_dispatch_matches_reference_without_importing_kernels(monkeypatch):
    monkeypatch.setattr(msa.contract, "BACKEND", None)
    triton_kernels_loaded = "m3analyst.kernels.msa.triton_decode" in sys.modules
    q, k, v, ksum = _problem()
    seq_lens = torch.tensor([300, 101])
    got_sum = torch.full_like(ksum, float("nan"))
    msa.update_summaries(got_sum, None, None, k, 0, 32)
    torch.testing.assert_close(got_sum, ksum)
    idx = msa.select_blocks(q, ksum, seq_lens, 32, 4, 1, 1)
    assert torch.equal(idx, msa_naive.select_blocks(q, ksum, seq_lens, 32, 4, 1, 1))
    out = msa.sparse_decode(q, k, v, idx, seq_lens, 32, 0.125)
    torch.testing.assert_close(out, msa_naive.sparse_decode(q, k, v, idx, seq_lens, 32, 0.125))
    if not triton_kernels_loaded:  # the CPU path never pulls in the Triton module
        assert "m3analyst.kernels.msa.triton_decode" not in sys.modules


def test_decode_routes_cpu_to_its_torch_ops_and_cuda_to_the_kernels(monkeypatch):
    """One dispatch (msa.decode) picks the route by device; no CUDA device is touched, only which function runs."""
    from types import SimpleNamespace

    from m3analyst.settings import AttentionSettings

    seen = []
    monkeypatch.setattr(msa, "_cpu_decode", lambda *a: seen.append("cpu"))
    monkeypatch.setattr(msa.cuda, "engine_decode", lambda *a: seen.append("cuda"))
    s = AttentionSettings(scorer="minmax")
    msa.decode(torch.zeros(1, 2, 4), None, 10, s, 1.0)
    msa.decode(SimpleNamespace(is_cuda=True), None, 10, s, 1.0)
    assert seen == ["cpu", "cuda"]


def test_engine_cpu_ops_agree_with_the_reference():
    """The engine's CPU implementation and the kernels' reference give the same selection and output."""
    from m3analyst.kernels.msa import eager as cpu
    # the engine's caches hold whole blocks (S_cap % block == 0); the valid lengths end mid-block
    q, k, v, ksum = _problem(G=3, S=320, seed=4)
    seq_lens = torch.tensor([300, 317])
    ksum.zero_()
    for b, n in enumerate(seq_lens.tolist()):
        msa_naive.update_summaries(ksum[b : b + 1], None, None, k[b : b + 1, :, :n], 0, 32)
    ie = cpu.select_blocks(q, ksum, seq_lens, 32, 5, 1, 1)
    ir = msa_naive.select_blocks(q, ksum, seq_lens, 32, 5, 1, 1)
    assert torch.equal(ie, ir)
    torch.testing.assert_close(cpu.sparse_decode(q, k, v, ie, seq_lens, 32, 0.125),
                               msa_naive.sparse_decode(q, k, v, ir, seq_lens, 32, 0.125))
