"""MSA fidelity round 2: oracle bound, per-layer sensitivity, scorers at equal budget (decode path, batch 1, CPU).

Same protocol as bench_fidelity.py: prefill the first C-256 tokens of a real document once (dense), then feed
the last 256 tokens one at a time (teacher forcing) under each variant; perplexity over those 256 and top-1
agreement with dense. Variants are prototyped by swapping in the engine's batch-1 selection through the
selector hook (`m3analyst.kernels.msa.selector`) with a function that
knows which layer it serves (by the identity of the layer's ksum tensor) and so can read that layer's keys
(oracle) or return every block (a dense layer through the same path).

Variant spec (comma list, `;`-separated options): NAME[:sel=SCORER|oracle][;k=16][;local=2][;sink=1][;dense=0.1]
e.g. "oracle:sel=oracle", "mm-d:sel=minmax-mass;dense=0.1.13". Default dense layers: 0.1 (the engine's first 2).

--probe: one extra run along the dense trajectory (every layer attends over every block) that records, per
layer and step, for each selector at the given budget: attention mass captured (true softmax mass of the chosen
blocks, per head, averaged), recall of the oracle's non-forced blocks, and the relative L2 error of the head's
attention output (selected-blocks softmax vs full softmax). Those per-layer figures rank the layers by how much
sparsity hurts them.

Run: python benchmarks/fidelity_oracle.py --contexts 4096 --docs 2 --variants dense,minmax,oracle:sel=oracle --probe
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from m3analyst.engine import load_engine
from m3analyst.kernels import msa as kernels_msa
from m3analyst.kernels.msa import naive as scorers
from m3analyst.resources import corpus_dir
from m3analyst.settings import EngineSettings

DOCS = [  # bench_fidelity.py's three, then more long ones
    "legal/contracts_txt/GOOSEHEADINSURANCE,INC_04_02_2018-EX-10.6-Franchise Agreement.txt",
    "legal/contracts_txt/PhasebioPharmaceuticalsInc_20200330_10-K_EX-10.21_12086810_EX-10.21_Development Agreement.txt",
    "bio/trials_txt/PMC5388694.txt",
]
TAIL = 256


@dataclass
class Variant:
    name: str
    sel: str = "minmax"  # a scorers.SCORERS name, "oracle", or "dense" (the engine's dense backend)
    k: int = 16
    local: int = 2
    sink: int = 1
    dense: tuple[int, ...] = (0, 1)
    kmap: dict = field(default_factory=dict)  # layer -> top_k overriding k (spec: kmap=3-10x48/0-1x8)

    def k_of(self, layer: int) -> int:
        return self.kmap.get(layer, self.k)

    @classmethod
    def parse(cls, spec: str) -> "Variant":
        name, _, opts = spec.partition(":")
        v = cls(name=name, sel="dense" if name == "dense" else "minmax")
        if not opts and name in scorers.SCORERS:
            v.sel = name
        for opt in filter(None, opts.split(";")):
            key, _, val = opt.partition("=")
            if key == "dense":
                v.dense = tuple(int(x) for x in val.split(".") if x != "")
            elif key == "kmap":
                for part in val.split("/"):
                    span, _, kk = part.partition("x")
                    lo, _, hi = span.partition("-")
                    v.kmap |= {i: int(kk) for i in range(int(lo), int(hi or lo) + 1)}
            elif key == "sel":
                v.sel = val
            else:
                setattr(v, key, int(val))
        return v


@dataclass
class Patch:
    """The batch-1 selection swapped in (kernels.msa.selector) during one variant's run."""

    cache: object
    variant: Variant
    scale: float
    probe: "Probe | None" = None
    _layers: dict = field(default_factory=dict)

    def layer(self, ksum):
        key = ksum.data_ptr()
        if key not in self._layers:
            self._layers = {l.ksum.data_ptr(): (i, l) for i, l in enumerate(self.cache.layers)}
        return self._layers[key]

    def __call__(self, q, ksum, seq_len, block_size, top_k, sink_blocks, local_blocks, scorer="minmax", kmin=None,
                 kmax=None):
        li, layer = self.layer(ksum)
        v = self.variant
        nb = -(-seq_len // block_size)
        if self.probe is not None:
            self.probe.record(li, q, layer, seq_len, block_size, self.scale)
        if self.probe is not None or li in v.dense:
            return torch.arange(nb).view(1, 1, nb).expand(1, ksum.shape[1], nb)
        k = v.k_of(li)
        if k >= nb:
            return torch.arange(nb).view(1, 1, nb).expand(1, ksum.shape[1], nb)
        if v.sel == "oracle":
            return scorers.select_oracle(q, layer.keys, seq_len, block_size, k, v.sink, v.local, self.scale)
        if v.sel.startswith("rerank"):  # rerankN[@SCORER]: N*k candidates by SCORER (default interp0.5-mass)
            n, _, base = v.sel.removeprefix("rerank").partition("@")
            return scorers.select_rerank(q, layer.keys, ksum, kmin, kmax, seq_len, block_size, k, v.sink, v.local,
                                         base or "interp0.5-mass", int(n), self.scale)
        return scorers.select_blocks_b1(q, ksum, seq_len, block_size, k, v.sink, v.local, v.sel, kmin, kmax,
                                        scale=self.scale)


class Probe:
    """Per-layer sums of mass captured / oracle recall / output error for several selectors at one budget."""

    def __init__(self, selectors: list[str], k: int, sink: int, local: int):
        self.selectors, self.k, self.sink, self.local = selectors, k, sink, local
        self.acc: dict[tuple[int, str, str], float] = {}
        self.n: dict[int, int] = {}

    def _add(self, li, sel, metric, value):
        self.acc[li, sel, metric] = self.acc.get((li, sel, metric), 0.0) + float(value)

    def record(self, li, q, layer, seq_len, bs, scale):
        hkv, D = layer.keys.shape[1], layer.keys.shape[3]
        G = q.shape[1] // hkv
        nb = -(-seq_len // bs)
        qg = q[0].float().view(hkv, G, D)
        keys = layer.keys[0, :, :seq_len].float()
        vals = layer.values[0, :, :seq_len].float()
        probs = torch.softmax(torch.matmul(qg, keys.transpose(1, 2)) * scale, dim=-1)  # [hkv, G, S]
        out = torch.matmul(probs, vals)  # [hkv, G, D]
        pb = torch.nn.functional.pad(probs, (0, nb * bs - seq_len)).view(hkv, G, nb, bs).sum(-1)  # [hkv, G, nb]
        forced = torch.zeros(nb, dtype=torch.bool)
        forced[: self.sink] = True
        forced[nb - self.local :] = True
        oracle = scorers.pick_blocks(pb.sum(1), self.k, self.sink, self.local)[0]
        osets = [set(oracle[h].tolist()) - set(torch.nonzero(forced).flatten().tolist()) for h in range(hkv)]
        s = scorers.summaries(layer.ksum, layer.kmin, layer.kmax, seq_len, bs)
        picks = {"oracle": oracle, "forced-only": None}
        for sel in self.selectors:
            picks[sel] = scorers.pick_blocks(scorers.SCORERS[sel](qg, s, scale), self.k, self.sink, self.local)[0]
        for sel, idx in picks.items():
            mask = forced.clone().expand(hkv, nb).clone() if idx is None else torch.zeros(hkv, nb, dtype=torch.bool).scatter_(1, idx, True)
            m = pb * mask[:, None, :]  # [hkv, G, nb]
            captured = m.sum(-1)  # [hkv, G]
            tok = mask.repeat_interleave(bs, dim=1)[:, :seq_len]  # [hkv, S]
            p_sel = probs * tok[:, None, :]
            out_sel = torch.matmul(p_sel, vals) / captured.clamp_min(1e-30)[..., None]
            err = (out_sel - out).norm(dim=-1) / out.norm(dim=-1).clamp_min(1e-30)
            self._add(li, sel, "mass", captured.mean())
            self._add(li, sel, "err", err.mean())
            self._add(li, sel, "miss", (1 - captured).mean())
            if idx is not None and sel != "oracle":
                hits = sum(len(set(idx[h].tolist()) & osets[h]) for h in range(hkv))
                self._add(li, sel, "recall", hits / max(sum(len(o) for o in osets), 1))
        self.n[li] = self.n.get(li, 0) + 1

    def table(self) -> list[dict]:
        rows = []
        for li in sorted(self.n):
            row = {"layer": li}
            for (l2, sel, metric), total in self.acc.items():
                if l2 == li:
                    row[f"{sel}.{metric}"] = round(total / self.n[li], 4)
            rows.append(row)
        return rows


def run_variant(eng, cache, n_prefix, first_logits, tail, v: Variant, probe: Probe | None = None):
    """NLL and argmax per tail token fed one by one after the cached prefix; the cache is truncated back."""
    if v.sel == "dense" and probe is None:
        override = {"backend": "dense"}
    else:
        # top_k 4 in the settings only routes every layer through the patched selection (nb > top_k there)
        override = {"backend": "msa", "dense_layers": 0, "top_k": 4, "dense_below": 256, "local_blocks": v.local,
                    "sink_blocks": v.sink}
    ctx = eng._context(cache, override)
    ctx.track = False
    patch = Patch(cache, v, eng.config.head_dim ** -0.5 if getattr(eng.config, "head_dim", None)
                  else (eng.config.hidden_size // eng.config.num_attention_heads) ** -0.5, probe)
    nll, top1 = [], []
    t0 = time.perf_counter()
    try:
        with torch.inference_mode(), kernels_msa.selector(patch):
            for i, tok in enumerate(tail):
                logits = first_logits if i == 0 else eng._forward([tail[i - 1]], cache, ctx)[-1]
                lp = torch.log_softmax(logits, -1)
                nll.append(-float(lp[tok]))
                top1.append(int(lp.argmax()))
    finally:
        cache.truncate(n_prefix)
    return nll, top1, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--contexts", default="4096")
    ap.add_argument("--docs", default="0,1", help="indices into DOCS")
    ap.add_argument("--variants", default="dense,minmax,oracle:sel=oracle")
    ap.add_argument("--probe", action="store_true", help="also run the per-layer probe along the dense trajectory")
    ap.add_argument("--probe-selectors", default="minmax,mean,minmax-mass,mean-mass")
    ap.add_argument("--probe-k", type=int, default=16)
    ap.add_argument("--out", default="benchmarks/fidelity_oracle.jsonl")
    args = ap.parse_args()
    torch.set_num_threads(1)
    eng = load_engine(EngineSettings(threads=1))
    torch.set_num_threads(1)
    variants = [Variant.parse(s) for s in args.variants.split(",") if s]
    out = open(args.out, "a")

    def emit(row):
        row |= {"load": round(os.getloadavg()[0], 2), "utc": time.strftime("%H:%M", time.gmtime())}
        print(json.dumps(row), flush=True)
        out.write(json.dumps(row) + "\n")
        out.flush()

    for di in (int(x) for x in args.docs.split(",")):
        rel = DOCS[di]
        ids = eng._encode_suffix((corpus_dir() / rel).read_text(errors="ignore"))
        for C in (int(c) for c in args.contexts.split(",")):
            C = min(C, eng.context_length - 1)
            if len(ids) < C:
                print(f"skip {rel} at {C}: only {len(ids)} tokens")
                continue
            n_prefix, tail = C - TAIL, ids[C - TAIL : C]
            cache = eng._new_cache(C + 8, minmax=True)
            t0 = time.perf_counter()
            with torch.inference_mode():
                first = eng._prefill_ids(ids[:n_prefix], cache, eng._context(cache))
            print(f"prefill {n_prefix} tokens: {time.perf_counter() - t0:.1f} s", flush=True)
            doc = Path(rel).name[:28]
            res = {}
            if args.probe:
                probe = Probe(args.probe_selectors.split(","), args.probe_k, 1, 2)
                nll, top1, secs = run_variant(eng, cache, n_prefix, first, tail, Variant("probe", sel="probe"), probe)
                res["probe"] = (nll, top1)
                for row in probe.table():
                    emit({"doc": doc, "context": C, "kind": "probe", "k": args.probe_k} | row)
                emit({"doc": doc, "context": C, "variant": "probe(dense path)", "ppl": math.exp(sum(nll) / len(nll)),
                      "seconds": round(secs, 1)})
            for v in variants:
                nll, top1, secs = run_variant(eng, cache, n_prefix, first, tail, v)
                res[v.name] = (nll, top1)
                ref = res.get("dense") or res.get("probe")
                ppl = math.exp(sum(nll) / len(nll))
                nb = -(-C // 64)
                reads = sum(nb if (li in v.dense or v.k_of(li) >= nb) else v.k_of(li) for li in range(len(cache.layers)))
                row = {"doc": doc, "context": C, "variant": v.name, "spec": {**vars(v), "kmap": {}} | {"kmap": str(v.kmap)},
                       "blocks_read_per_step": reads, "ppl": round(ppl, 3),
                       "seconds": round(secs, 1)}
                if ref:
                    dppl = math.exp(sum(ref[0]) / len(ref[0]))
                    row |= {"ppl_vs_dense_pct": round(100 * (ppl / dppl - 1), 2),
                            "top1_agree": round(sum(a == b for a, b in zip(top1, ref[1])) / len(top1), 4)}
                emit(row)


if __name__ == "__main__":
    main()
