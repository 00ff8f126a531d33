"""The CPU decode step without the model's modules: a Llama-shaped model's one-token forward as C calls.

On a CPU without bf16 the decode copy of the weights is int8 with fp32 activations (quant.py). Its linears then cost
about as much CPU per token as the PyTorch ops and module calls around them (norms, rotary, views, the cache update,
the residual adds: ~60 ops a layer). `FastDecoder.build(model)` recognises a model whose layers are the Llama shape
(LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM: RMSNorm pre-norm, q/k/v/o with optional biases, rotary in
the rotate-half layout, no sliding window, SiLU-gated MLP) with those weights, and `step` runs one token through it:
per layer kernels/layer_cpu.c's `layer_in` (norm, q/k/v, rotary), the cache append and MSA or dense attention of
kernels/msa/cpu.c (the same plans and settings as the attention function in attention.py), `layer_out` (o
projection, residual, norm, MLP, residual); then the final norm and the output head (kernels/int8_cpu.c). The
rotary cos/sin come from the model's own rotary module, so every rope type it implements is honoured.

`step` returns None (nothing touched) where it does not take the case -- a cache that must grow, another dtype,
dense-mass tracking, a benchmark's selector or observer -- and the engine then runs the model as usual.
tests/test_fastdecode.py checks it against the module path on tiny random Llama and Qwen2 models.
"""

from __future__ import annotations

import ctypes
import time

import torch

from m3analyst.engine import msa_ops
from m3analyst.kernels import int8_cpu, layer_cpu
from m3analyst.kernels import msa as kernels_msa
from m3analyst.kernels.msa import cpu as msa_cpu

KV_DTYPES = (torch.float32, torch.bfloat16)  # caches the step appends to (fp32 keys/values rounded into bf16 ones)
ARCHITECTURES = ("LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM")
_ATTN_CHILDREN = {"q_proj", "k_proj", "v_proj", "o_proj"}
_MLP_CHILDREN = {"gate_proj", "up_proj", "down_proj", "act_fn"}


def kv_cache_dtype(setting: str, fast: "FastDecoder | None") -> torch.dtype | None:
    """The KV cache dtype for settings engine.kv_cache (None: the dtype of the first keys written, the model's).
    auto: bf16 under the C decode step (fp32 activations): attention reads half the bytes per decode token (fidelity
    measured in RESULTS.md, issue 22), the keys' block summaries stay fp32 from the unrounded keys."""
    if setting == "bfloat16" or (setting == "auto" and fast is not None):
        return torch.bfloat16
    return None


def _int8(module) -> layer_cpu.Int8Weights | None:
    if type(module).__name__ != "Int8Linear":
        return None
    w = layer_cpu.Int8Weights(module.weight_q, module.scales, module.bias)
    return w if w.usable() else None


def _norm(module) -> tuple[torch.Tensor, float] | None:
    """(weight, eps) of an RMSNorm whose fp32 formula is w * (x r) (engine/fuse.py's probe), else None."""
    from m3analyst.engine.fuse import _norm_eps, _norm_mode

    eps = _norm_eps(module)
    if eps is None or module.weight.dtype != torch.float32 or _norm_mode(module, eps) not in (0, 2):
        return None
    return module.weight.detach(), eps


def _layer_weights(layer, cfg) -> layer_cpu.LayerWeights | None:
    from m3analyst.engine.fuse import _is_silu

    attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
    if attn is None or mlp is None or getattr(attn, "sliding_window", None) is not None:
        return None
    if {n for n, _ in attn.named_children()} != _ATTN_CHILDREN or {n for n, _ in mlp.named_children()} != _MLP_CHILDREN:
        return None  # e.g. Qwen3's q/k norms: another computation
    if not _is_silu(mlp.act_fn) or {n for n, _ in layer.named_children()} != {"self_attn", "mlp", "input_layernorm",
                                                                               "post_attention_layernorm"}:
        return None
    lins = {n: _int8(getattr(attn, f"{n}_proj")) for n in "qkvo"}
    lins |= {n: _int8(getattr(mlp, f"{n}_proj")) for n in ("gate", "up", "down")}
    if None in lins.values():
        return None
    n1, n2 = _norm(layer.input_layernorm), _norm(layer.post_attention_layernorm)
    if n1 is None or n2 is None:
        return None
    D = attn.head_dim
    hq, hkv = lins["q"].weight_q.shape[0] // D, lins["k"].weight_q.shape[0] // D
    w = layer_cpu.LayerWeights(lins, n1[0], n2[0], n1[1], n2[1], hq, hkv, D)
    return w if w.usable() and hq % hkv == 0 and abs(attn.scaling - D ** -0.5) < 1e-9 else None


class FastDecoder:
    """A model's decode step as C calls (see the module docstring). Build with `FastDecoder.build(model)`."""

    def __init__(self, model, layers: list[layer_cpu.LayerWeights], final_norm: tuple[torch.Tensor, float], head: tuple):
        self.lib, self.msa_lib = layer_cpu.library(), msa_cpu.library()
        self.weights, self.args = layers, [layer_cpu.bind_layer(w) for w in layers]
        self.scratch = layer_cpu.Scratch(layers[0])
        self.embed = model.get_input_embeddings().weight
        self.rotary = model.model.rotary_emb
        self.norm_w, self.norm_eps = final_norm
        self.head = head  # int8_cpu.bind(...) of the output head
        self.scale = layers[0].head_dim ** -0.5
        self.simd = layer_cpu.KERNEL.simd()

    @classmethod
    def build(cls, model) -> "FastDecoder | None":
        """The fast step of `model`, or None where it does not apply (architecture, weights, no C kernel)."""
        if (type(model).__name__ not in ARCHITECTURES or layer_cpu.library() is None or msa_cpu.library() is None
                or not hasattr(getattr(model, "model", None), "rotary_emb")):
            return None
        cfg = model.config
        decoder_layers = list(model.model.layers[: cfg.num_hidden_layers])
        layers = []
        for layer in decoder_layers:  # stops at the first layer it does not take
            layers.append(_layer_weights(layer, cfg))
            if layers[-1] is None:
                return None
        final, head = _norm(model.model.norm), _int8(model.lm_head)
        if not layers or final is None or head is None:
            return None
        bound = int8_cpu.bind(head.weight_q, head.scales, head.bias)
        return None if bound is None else cls(model, layers, final, bound)

    # --- one step -------------------------------------------------------------------------------------------------
    def _plans(self, cache, ctx, pos: int) -> list | None:
        """Per layer (append args, attention plan, dense?) for a token at `pos`, or None where the step is not taken."""
        if (ctx.observer is not None or kernels_msa.SELECTOR is not None or (ctx.mode == "dense" and ctx.track)
                or len(cache.layers) != len(self.args)):
            return None
        s = msa_ops.resolve_scorer(ctx.settings, "cpu")
        q, S, plans = self.scratch.q, pos + 1, []
        for i, layer in enumerate(cache.layers):
            if not layer.is_initialized or layer.length != pos or S > layer.capacity or layer.keys.dtype not in KV_DTYPES:
                return None
            app = msa_cpu.append_args(layer.state)
            dense = ctx.mode == "dense" or i < s.dense_layers or S <= ctx.dense_below
            if dense:
                plan = msa_cpu.plan_for(q, layer.state, self.scale, layer.capacity // layer.block_size, 0, 0, "mean",
                                        slot="dense")
            elif layer.kmin is None and msa_ops.needs_minmax(s.scorer):
                return None
            else:
                plan = msa_cpu.plan_for(q, layer.state, self.scale, s.top_k, s.sink_blocks, s.local_blocks, s.scorer,
                                        s.rerank)
            if app is None or plan is None:
                return None
            plans.append((app, plan, dense))
        return plans

    def step(self, tok: int, pos: int, cache, ctx) -> torch.Tensor | None:
        """Logits [1, V] fp32 of token `tok` at position `pos` (the cache holds pos tokens; it gets this one), with the
        attention bookkeeping the attention function keeps (ctx); None where not taken (nothing changed)."""
        plans = self._plans(cache, ctx, pos)
        if plans is None:
            return None
        sc, lib = self.scratch, self.lib
        sc.x.copy_(self.embed[tok])
        cos, sin = self._rope(pos)
        for i, (args, layer, (app, plan, dense)) in enumerate(zip(self.args, cache.layers, plans)):
            layer_cpu.layer_in(lib, args, sc, cos, sin)
            if self.msa_lib.msa_append1_f32(ctypes.byref(app), sc.k.data_ptr(), sc.k.shape[-1], sc.v.data_ptr(),
                                        sc.v.shape[-1], pos) != 0:
                raise RuntimeError(f"msa_append1 refused position {pos} (layer {i}, capacity {layer.capacity})")
            layer.length = pos + 1
            self._attend(i, plan, dense, pos + 1, ctx)
            layer_cpu.layer_out(lib, args, sc)
        lib.rmsnorm_f32(sc.x.data_ptr(), self.norm_w.data_ptr(), sc.x.shape[0], self.norm_eps, sc.h.data_ptr())
        return int8_cpu.gemv_bound(sc.h, self.head)[None]

    def _attend(self, i: int, plan, dense: bool, S: int, ctx) -> None:
        t0 = time.perf_counter()
        sc = self.scratch
        idx = torch.empty(1, plan.args.hkv, plan.top_k, dtype=torch.int32)
        if self.msa_lib.msa_decode(ctypes.byref(plan.args), sc.q.data_ptr(), 0, S, idx.data_ptr(), sc.attn.data_ptr()):
            raise ValueError(f"msa_cpu: unsupported sizes (head dim {plan.args.D}, group {plan.args.G})")
        ctx.calls += 1
        ctx.decode_calls += 1
        s = ctx.settings
        if ctx._step is not None and ctx.track and ctx.mode == "msa" and i >= s.dense_layers:
            ctx._step[i] = msa_ops.all_blocks(-(-S // s.block_size), s.top_k, 1, plan.args.hkv, "cpu") if dense else idx
        ctx.attn_s += time.perf_counter() - t0

    def _rope(self, pos: int) -> tuple[torch.Tensor, torch.Tensor]:
        cos, sin = self.rotary(self.scratch.x[None, None], torch.tensor([[pos]]))
        return cos.reshape(-1).float().contiguous(), sin.reshape(-1).float().contiguous()
