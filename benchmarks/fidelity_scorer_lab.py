"""Offline block-scorer lab: dump real decode queries + KV cache once, then rank scorers by attention mass captured.

dump: prefill the first C-256 tokens of a document, decode the last 256 (teacher forcing) along the dense path
      (every layer attends over every block, through the engine's batch-1 MSA path), and save per layer the
      decode queries q [256, Hq, D] and the final keys / values [Hkv, C, D] to DIR/<doc>_<C>.pt.
eval: for each saved step and layer (step t sees keys [0, C-256+t]), compare scorers at a budget: mean true
      attention mass captured per head (oracle = best possible), oracle recall; per layer and overall.
      No model needed: scorer ideas are tried in seconds.

Run: python benchmarks/fidelity_scorer_lab.py dump --docs 0,1 --context 4096 --dir /tmp/lab
     python benchmarks/fidelity_scorer_lab.py eval --dir /tmp/lab --scorers minmax,minmax-mass --k 16
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from fidelity_oracle import DOCS, TAIL, Patch, Variant  # noqa: E402

from m3analyst.kernels import msa as kernels_msa  # noqa: E402
from m3analyst.kernels.msa import naive as scorers  # noqa: E402


class QueryTap(Patch):
    """Dense path (every block) that records each layer's decode query."""

    def __call__(self, q, ksum, seq_len, block_size, *args, **kwargs):
        li, _ = self.layer(ksum)
        self.qs.setdefault(li, []).append(q[0].float().clone())
        nb = -(-seq_len // block_size)
        return torch.arange(nb).view(1, 1, nb).expand(1, ksum.shape[1], nb)


def dump(args) -> None:
    from m3analyst.engine import load_engine
    from m3analyst.resources import corpus_dir
    from m3analyst.settings import EngineSettings

    torch.set_num_threads(1)
    eng = load_engine(EngineSettings(threads=1))
    torch.set_num_threads(1)
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    for di in (int(x) for x in args.docs.split(",")):
        rel = DOCS[di]
        ids = eng._encode_suffix((corpus_dir() / rel).read_text(errors="ignore"))
        C = min(args.context, eng.context_length - 1)
        n_prefix, tail = C - TAIL, ids[C - TAIL : C]
        cache = eng._new_cache(C + 8, minmax=True)
        ctx = eng._context(cache, {"backend": "msa", "dense_layers": 0})
        ctx.track = False
        tap = QueryTap(cache, Variant("tap"), 0.125)
        tap.qs = {}
        with torch.inference_mode(), kernels_msa.selector(tap):
            eng._prefill_ids(ids[:n_prefix], cache, eng._context(cache))
            for tok in tail[:-1]:
                eng._forward([tok], cache, ctx)
        L = len(cache.layers)
        blob = {"n_prefix": n_prefix, "context": C, "doc": rel,
                "q": [torch.stack(tap.qs[i]).to(torch.bfloat16) for i in range(L)],  # [T-1, Hq, D]
                "k": [cache.layers[i].keys[0, :, : C - 1].clone() for i in range(L)],
                "v": [cache.layers[i].values[0, :, : C - 1].clone() for i in range(L)]}
        torch.save(blob, out / f"{Path(rel).name[:20]}_{C}.pt")
        print(f"dumped {rel} at {C}", flush=True)


def _summaries(keys: torch.Tensor, bs: int):
    """ksum/kmin/kmax [1, Hkv, NB, D] fp32 of keys [Hkv, S, D] via the engine's own incremental update."""
    hkv, S, D = keys.shape
    nb = -(-S // bs)
    ks, kn, kx = (torch.zeros(1, hkv, nb, D) for _ in range(3))
    kernels_msa.eager.update_summaries(ks, kn, kx, keys[None], 0, bs)
    return ks, kn, kx


def _sub_mass(q, keys, S, bs, sub, scale, logit="minmax"):
    """Lab-only scorer: Quest bounds (or interp0.5) on sub-blocks of `sub` tokens, per-head softmax over all
    sub-blocks, mass summed into each block of bs tokens and over the group's heads: [Hkv, nb]."""
    hkv, _, D = keys.shape
    ks, kn, kx = _summaries(keys, sub)
    s = scorers.summaries(ks, kn, kx, S, sub)
    qg = q[0].float().view(hkv, -1, D)
    lg = scorers.bound_logits(qg, s) if logit == "minmax" else scorers.interp_logits(qg, s, 0.5)
    p = torch.softmax(lg * scale, -1).sum(1)  # [Hkv, nsub]
    nb, per = -(-S // bs), bs // sub
    return torch.nn.functional.pad(p, (0, nb * per - p.shape[-1])).view(hkv, nb, per).sum(-1)


def _rerank(q, keys, S, bs, scale, base, ks, kn, kx, k, local, factor):
    """Lab-only: candidates = top factor*k blocks by `base`, then the exact mass over the candidates' keys."""
    cand = scorers.select_blocks_b1(q, ks, S, bs, min(factor * k, -(-S // bs) - 1), 1, local, base, kn, kx, scale=scale)
    mass = scorers.block_mass(q, keys[None], S, bs, scale)
    m = torch.full_like(mass, -1.0).scatter_(1, cand[0], mass.gather(1, cand[0]))
    return m


def _sparq(q, keys, S, bs, scale, k, local, r, factor):
    """Lab-only: approximate every token's logit from the r key dimensions where the group's |q| is largest
    (reads r/D of the keys), per-head softmax -> approximate block mass; top factor*k candidates; exact rerank."""
    hkv, _, D = keys.shape
    qg = q[0].float().view(hkv, -1, D)
    dims = qg.abs().sum(1).topk(r, dim=-1).indices  # [Hkv, r], shared by the group (one read of the keys)
    kr = torch.gather(keys, 2, dims[:, None, :].expand(-1, S, -1))  # [Hkv, S, r]
    qr = torch.gather(qg, 2, dims[:, None, :].expand(-1, qg.shape[1], -1))
    nb = -(-S // bs)
    approx = torch.softmax(torch.matmul(qr, kr.transpose(1, 2)) * scale, -1)
    approx = torch.nn.functional.pad(approx, (0, nb * bs - S)).view(hkv, -1, nb, bs).sum((1, 3))
    cand = scorers.pick_blocks(approx, min(factor * k, nb), 1, local)[0]
    mass = scorers.block_mass(q, keys[None], S, bs, scale)
    return torch.full_like(mass, -1.0).scatter_(1, cand, mass.gather(1, cand))


LAB = {
    "sparq16x2": lambda q, kk, S, bs, sc, ks, kn, kx, k, local: _sparq(q, kk, S, bs, sc, k, local, 16, 2),
    "sparq8x2": lambda q, kk, S, bs, sc, ks, kn, kx, k, local: _sparq(q, kk, S, bs, sc, k, local, 8, 2),
    "sparq16x1": lambda q, kk, S, bs, sc, ks, kn, kx, k, local: _sparq(q, kk, S, bs, sc, k, local, 16, 1),  # name -> (q, keys [Hkv,S,D], S, bs, scale, ks, kn, kx, k, local) -> scores [Hkv, nb]
    "sub16": lambda q, kk, S, bs, sc, *a: _sub_mass(q, kk, S, bs, 16, sc),
    "sub32": lambda q, kk, S, bs, sc, *a: _sub_mass(q, kk, S, bs, 32, sc),
    "sub16i": lambda q, kk, S, bs, sc, *a: _sub_mass(q, kk, S, bs, 16, sc, "interp"),
    "sub8": lambda q, kk, S, bs, sc, *a: _sub_mass(q, kk, S, bs, 8, sc),
    "rerank2": lambda q, kk, S, bs, sc, ks, kn, kx, k, local: _rerank(q, kk, S, bs, sc, "interp0.5-mass", ks, kn, kx, k, local, 2),
    "rerank3": lambda q, kk, S, bs, sc, ks, kn, kx, k, local: _rerank(q, kk, S, bs, sc, "interp0.5-mass", ks, kn, kx, k, local, 3),
    "rerank4": lambda q, kk, S, bs, sc, ks, kn, kx, k, local: _rerank(q, kk, S, bs, sc, "interp0.5-mass", ks, kn, kx, k, local, 4),
    "rerank2-mean": lambda q, kk, S, bs, sc, ks, kn, kx, k, local: _rerank(q, kk, S, bs, sc, "mean-mass", ks, kn, kx, k, local, 2),
    "rerank2mm": lambda q, kk, S, bs, sc, ks, kn, kx, k, local: _rerank(q, kk, S, bs, sc, "minmax", ks, kn, kx, k, local, 2),
}


def _rerank_prev(q, keys, S, bs, scale, ks, kn, kx, k, local, q_prev, factor=1):
    """Lab-only: candidates = top factor*k by hybrid, plus the previous step's exact top k (its query over the keys it
    saw); then exact mass over the candidates. Models an engine that keeps each layer's last selection."""
    hkv = keys.shape[0]
    nb = -(-S // bs)
    cand = scorers.select_blocks_b1(q, ks, S, bs, factor * k, 1, local, "hybrid", kn, kx, scale=scale)[0]
    prev = scorers.select_oracle(q_prev, keys[None, :, : S - 1], S - 1, bs, k, 1, local, scale)[0]
    m_all = scorers.block_mass(q, keys[None], S, bs, scale)
    keep = torch.zeros(hkv, nb, dtype=torch.bool).scatter_(1, cand, True).scatter_(1, prev, True)
    return m_all.masked_fill(~keep, -1.0)


def evaluate(args) -> None:
    torch.set_num_threads(1)
    sel_names = args.scorers.split(",")
    bs, scale = args.block_size, 0.125
    tot: dict[str, list[float]] = {}
    errs: dict[str, list[float]] = {}
    ks_list = [int(x) for x in str(args.k).split(",")]
    per_layer: dict[tuple[int, str], list[float]] = {}
    for f in sorted(Path(args.dir).glob("*.pt")):
        blob = torch.load(f)
        n_prefix = blob["n_prefix"]
        t0 = time.perf_counter()
        for li, (qs, keys, vals) in enumerate(zip(blob["q"], blob["k"], blob["v"])):
            if args.layers and li not in {int(x) for x in args.layers.split(",")}:
                continue
            keys = keys.float()
            for t in range(0, qs.shape[0], args.stride):
                S = n_prefix + t + 1  # keys after appending the step's token
                kk = keys[:, :S]
                ks, kn, kx = _summaries(kk, bs)
                q = qs[t][None].float()
                hkv, G = kk.shape[0], q.shape[1] // kk.shape[0]
                qg = q[0].view(hkv, G, -1)
                probs = torch.softmax(torch.matmul(qg, kk.transpose(1, 2)) * scale, -1)  # [Hkv, G, S]
                vv = vals[:, :S].float()
                out = torch.matmul(probs, vv)
                nb = -(-S // bs)
                mass = torch.nn.functional.pad(probs, (0, nb * bs - S)).view(hkv, G, nb, bs).sum((1, 3))
                for kb in ks_list:
                    picks = {"oracle": scorers.pick_blocks(mass, kb, 1, args.local)}
                    for name in sel_names:
                        if name.startswith("prev"):
                            sc = _rerank_prev(q, kk, S, bs, scale, ks, kn, kx, kb, args.local,
                                              qs[max(t - 1, 0)][None].float(), int(name[4:] or 1))
                            picks[name] = scorers.pick_blocks(sc, kb, 1, args.local)
                            continue
                        if name in LAB:
                            sc = LAB[name](q, kk, S, bs, scale, ks, kn, kx, kb, args.local)
                            picks[name] = scorers.pick_blocks(sc, kb, 1, args.local)
                            continue
                        picks[name] = scorers.select_blocks_b1(q, ks, S, bs, kb, 1, args.local, name, kn, kx,
                                                                scale=scale)
                    for name, idx in picks.items():
                        cap = float(mass.gather(1, idx[0]).sum()) / (G * hkv)
                        tok = torch.zeros(hkv, nb, dtype=torch.bool).scatter_(1, idx[0], True)
                        tok = tok.repeat_interleave(bs, 1)[:, :S]
                        p = probs * tok[:, None]
                        o = torch.matmul(p, vv) / p.sum(-1, keepdim=True)
                        err = float(((o - out).norm(dim=-1) / out.norm(dim=-1)).mean())
                        key = f"{name}@{kb}" if len(ks_list) > 1 else name
                        tot.setdefault(key, []).append(1 - cap)
                        per_layer.setdefault((li, key), []).append(1 - cap)
                        errs.setdefault(key, []).append(err)
                        per_layer.setdefault((li, key + ".err"), []).append(err)
        print(f"{f.name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    print(json.dumps({"k": args.k, "local": args.local, "missed_mass": {n: round(mean(v), 4) for n, v in tot.items()},
                      "out_err": {n: round(mean(v), 4) for n, v in errs.items()}}))
    if args.per_layer:
        for li in sorted({l for l, _ in per_layer}):
            print(json.dumps({"layer": li} | {n: round(mean(v), 4) for (l2, n), v in per_layer.items() if l2 == li}))


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--docs", default="0")
    d.add_argument("--context", type=int, default=4096)
    d.add_argument("--dir", default="/tmp/lab")
    e = sub.add_parser("eval")
    e.add_argument("--dir", default="/tmp/lab")
    e.add_argument("--scorers", default="minmax,mean,minmax-mass,mean-mass")
    e.add_argument("--k", default="16", help="comma list of budgets (blocks)")
    e.add_argument("--local", type=int, default=2)
    e.add_argument("--block-size", type=int, default=64)
    e.add_argument("--stride", type=int, default=8, help="evaluate every n-th step")
    e.add_argument("--layers", default="", help="comma list (default all)")
    e.add_argument("--per-layer", action="store_true")
    args = ap.parse_args()
    {"dump": dump, "eval": evaluate}[args.cmd](args)


if __name__ == "__main__":
    main()
