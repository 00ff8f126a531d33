"""The MSA ops in vectorised PyTorch: the CPU path where the C kernel does not apply (batches, no compiler, a
selection swapped in through `selector`), and the block-sparse prefill.

Same contract and semantics as the plain reference (naive.py), tested against it, with fewer, larger ops:
`update_summaries`, `select_blocks` (linear scorers), `sparse_decode` for any batch; `select_blocks_b1` +
`sparse_decode_b1` for one sequence with more blocks than top_k (decode is op-count bound on CPU: every op costs
a few microseconds of dispatch, and there are 28 sparse layers per token); `sparse_prefill` for long prompts.

Shapes: q [B, Hq, D]; k_cache, v_cache [B, Hkv, S_cap, D]; ksum / kmin / kmax [B, Hkv, NB_cap, D] (fp32 sums);
seq_lens [B]; idx int32 [B, Hkv, top_k].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .naive import top_stable
from .state import LayerState


def update_summaries(ksum, kmin, kmax, k_new: torch.Tensor, start_pos: int, block_size: int) -> None:
    """Fold keys of positions start_pos .. start_pos+T-1 into their blocks' sum/min/max, in place.

    Only the blocks these tokens fall in are touched; a block whose first token is new starts afresh.
    """
    T = k_new.shape[2]
    if T == 0:
        return
    b0 = start_pos // block_size
    front = start_pos - b0 * block_size
    if T == 1:  # decode: one token, one block
        k = k_new[:, :, 0].float()
        if front == 0:
            ksum[:, :, b0] = k
            if kmin is not None:
                kmin[:, :, b0] = k
                kmax[:, :, b0] = k
        else:
            ksum[:, :, b0] += k
            if kmin is not None:
                torch.minimum(kmin[:, :, b0], k, out=kmin[:, :, b0])
                torch.maximum(kmax[:, :, b0], k, out=kmax[:, :, b0])
        return
    nb = (front + T + block_size - 1) // block_size
    back = nb * block_size - front - T
    k = k_new.float()

    def blocks(value: float) -> torch.Tensor:  # [B, H, nb, bs, D], padding = value
        padded = F.pad(k, (0, 0, front, back), value=value)
        return padded.unflatten(2, (nb, block_size))

    sums = blocks(0.0).sum(3)
    if front:
        sums[:, :, 0] += ksum[:, :, b0]
    ksum[:, :, b0 : b0 + nb] = sums
    if kmin is not None:
        mins, maxs = blocks(math.inf).amin(3), blocks(-math.inf).amax(3)
        if front:
            mins[:, :, 0] = torch.minimum(mins[:, :, 0], kmin[:, :, b0])
            maxs[:, :, 0] = torch.maximum(maxs[:, :, 0], kmax[:, :, b0])
        kmin[:, :, b0 : b0 + nb] = mins
        kmax[:, :, b0 : b0 + nb] = maxs


def block_scores(q, ksum, seq_lens, block_size, scorer="mean", kmin=None, kmax=None, n_blocks: int | None = None):
    """Group-summed block scores [B, Hkv, nb] fp32 over the first nb = n_blocks (default all) blocks."""
    B, hkv, nb_cap, D = ksum.shape
    nb = nb_cap if n_blocks is None else n_blocks
    G = q.shape[1] // hkv
    qg = q.float().view(B, hkv, G, D)
    if scorer == "mean":
        # sum over the group commutes with the dot product: score = (sum_h q_h) . mean_j
        starts = torch.arange(nb, device=ksum.device) * block_size
        counts = (seq_lens.to(torch.int64)[:, None] - starts[None, :]).clamp(1, block_size).float()  # [B, nb]
        s = torch.matmul(ksum[:, :, :nb], qg.sum(2).unsqueeze(-1)).squeeze(-1)  # [B, hkv, nb]
        return s / counts[:, None, :]
    lo = torch.matmul(kmin[:, :, :nb].unsqueeze(2), qg.unsqueeze(-1).clamp(max=0)).squeeze(-1)  # [B,hkv,G,nb]
    hi = torch.matmul(kmax[:, :, :nb].unsqueeze(2), qg.unsqueeze(-1).clamp(min=0)).squeeze(-1)
    return (lo + hi).sum(2)


def select_blocks(q, ksum, seq_lens, block_size, top_k, sink_blocks=1, local_blocks=1, scorer="mean", kmin=None, kmax=None):
    """Top-K blocks per KV group, ascending block ids, -1 padding; sink + local forced; past seq_len never;
    equal scores (also forced blocks over top_k) go to the lower block id.

    Returns idx int32 [B, Hkv, top_k]. Same contract as naive.select_blocks.
    """
    B, hkv = ksum.shape[:2]
    n_valid = (seq_lens.to(torch.int64) + block_size - 1) // block_size  # [B]
    nb = int(n_valid.max())
    scores = block_scores(q, ksum, seq_lens, block_size, scorer, kmin, kmax, n_blocks=nb)
    j = torch.arange(nb, device=ksum.device)[None, :]
    valid = j < n_valid[:, None]
    forced = valid & ((j < sink_blocks) | (j >= n_valid[:, None] - local_blocks))
    scores = scores.masked_fill(forced[:, None], math.inf).masked_fill(~valid[:, None], -math.inf)
    k = min(top_k, nb)
    vals, idx = top_stable(scores, k)
    idx = torch.where(vals == -math.inf, nb, idx).sort(dim=-1).values
    idx = torch.where(idx == nb, -1, idx)
    if k < top_k:
        idx = F.pad(idx, (0, top_k - k), value=-1)
    return idx.to(torch.int32)


def sparse_decode(q, k_cache, v_cache, idx, seq_lens, block_size, scale):
    """Exact attention of one token per sequence over its group's selected blocks. out [B, Hq, D] in q's dtype.

    Reads whole blocks out of the cache viewed as [B, Hkv, S_cap/bs, bs, D] (gather of K*bs tokens; a
    token gather when S_cap is not a block multiple), masks tokens >= seq_len or >= S_cap and unused (-1) slots, logits = scale * q.k, softmax in fp32.
    """
    B, hkv, S, D = k_cache.shape
    G = q.shape[1] // hkv
    nblk = -(-S // block_size)  # a partial last block (S_cap not a block multiple) is a block too
    safe = idx.long().clamp(0, max(nblk - 1, 0))  # [B, hkv, K]
    pos = safe[..., None] * block_size + torch.arange(block_size, device=q.device)  # [B, hkv, K, bs]
    ok = (idx[..., None] >= 0) & (pos < seq_lens.to(torch.int64).view(B, 1, 1, 1)) & (pos < S)
    if nblk * block_size == S:  # whole-block view: one gather of K blocks
        bi = torch.arange(B, device=q.device)[:, None, None]
        hi = torch.arange(hkv, device=q.device)[None, :, None]
        ks = k_cache.unflatten(2, (nblk, block_size))[bi, hi, safe].flatten(2, 3)  # [B, hkv, K*bs, D]
        vs = v_cache.unflatten(2, (nblk, block_size))[bi, hi, safe].flatten(2, 3)
    else:  # token gather; positions past S_cap read token S_cap-1 and are masked
        tok = pos.flatten(2).clamp(max=S - 1)[..., None]  # [B, hkv, K*bs, 1]
        ks = torch.gather(k_cache, 2, tok.expand(-1, -1, -1, D))  # [B, hkv, K*bs, D]
        vs = torch.gather(v_cache, 2, tok.expand(-1, -1, -1, v_cache.shape[-1]))
    qg = q.view(B, hkv, G, D).to(ks.dtype)
    logits = torch.matmul(qg, ks.transpose(-1, -2)).float() * scale  # [B, hkv, G, K*bs]
    logits = logits.masked_fill(~ok.flatten(2, 3)[:, :, None, :], -math.inf)
    probs = torch.softmax(logits, dim=-1).nan_to_num_(0.0)
    out = torch.matmul(probs.to(vs.dtype), vs)  # [B, hkv, G, D]
    return out.reshape(B, hkv * G, D).to(q.dtype)


def all_blocks(nb: int, top_k: int, B: int, hkv: int, device) -> torch.Tensor:
    """idx int32 [B, Hkv, top_k] selecting every one of nb <= top_k blocks (-1 in the unused slots)."""
    idx = torch.arange(top_k, device=device, dtype=torch.int32)
    return torch.where(idx < nb, idx, -1).expand(B, hkv, -1)


# ----------------------------------------------------------------------------------------------
# Decode fast path: one sequence (B = 1), contiguous block-aligned cache, nb > top_k valid blocks.
# Same results as select_blocks + sparse_decode with fewer, larger ops (decode is op-count bound on CPU:
# every op costs a few microseconds of dispatch, and there are 28 sparse layers per token).
# ----------------------------------------------------------------------------------------------
def select_blocks_b1(q, ksum, seq_len: int, block_size, top_k, sink_blocks, local_blocks, scorer="mean",
                     kmin=None, kmax=None):
    """idx [1, Hkv, top_k] int64 for one sequence with more than top_k valid blocks (no -1 slots).

    Order: the chosen blocks (any order), then the forced ones (sink, local) ascending -- so the block
    holding seq_len-1 comes last, as sparse_decode_b1 needs (an ascending order satisfies it too).
    Exactly equal scores among competing blocks may resolve to other ids than the reference's lowest-id
    rule (topk is ~2x faster than a stable sort here); the set is otherwise the same.
    Full blocks all hold block_size tokens, so (with local_blocks >= 1 forcing the only partial block)
    ranking by raw ksum . q equals ranking by mean key . q: the division is skipped.
    The minmax bound summed over the group is linear in the group's summed positive and negative query
    parts: sum_h [kmax . max(q_h, 0) + kmin . min(q_h, 0)] = kmax . P + kmin . N -- two matrix-vector products.
    """
    hkv, D = ksum.shape[1], ksum.shape[3]
    nb = -(-seq_len // block_size)
    n_forced = sink_blocks + local_blocks
    if n_forced >= top_k or local_blocks == 0:  # rare settings: the general path (same contract, ascending)
        seq_lens = torch.tensor([seq_len], device=q.device)
        return select_blocks(q, ksum, seq_lens, block_size, top_k, sink_blocks, local_blocks, scorer, kmin, kmax).long()
    qg = q.view(hkv, -1, D).float()
    lo, hi = sink_blocks, nb - local_blocks  # the blocks that compete
    if scorer == "mean":
        scores = torch.bmm(ksum[0, :, lo:hi], qg.sum(1).unsqueeze(-1))  # [hkv, hi-lo, 1]
    else:
        pos = qg.clamp(min=0).sum(1)
        neg = qg.sum(1) - pos
        scores = torch.baddbmm(torch.bmm(kmax[0, :, lo:hi], pos.unsqueeze(-1)), kmin[0, :, lo:hi], neg.unsqueeze(-1))
    chosen = scores.view(hkv, hi - lo).topk(top_k - n_forced, dim=-1, sorted=False).indices + lo  # ties: any
    forced = _forced_ids(sink_blocks, local_blocks, nb, q.device).expand(hkv, -1)
    return torch.cat([chosen, forced], 1).unsqueeze(0)


_FORCED: dict = {}


def _forced_ids(sink_blocks: int, local_blocks: int, nb: int, device) -> torch.Tensor:
    """[1, sink+local] int64: block ids 0..sink-1 and nb-local..nb-1 (memoised: asked for at every layer)."""
    key = (sink_blocks, local_blocks, nb, str(device))
    ids = _FORCED.get(key)
    if ids is None:
        if len(_FORCED) > 4096:
            _FORCED.clear()
        ids = torch.cat([torch.arange(sink_blocks), torch.arange(nb - local_blocks, nb)]).to(device)[None]
        _FORCED[key] = ids
    return ids


def sparse_decode_b1(q, k_cache, v_cache, idx, seq_len: int, block_size, scale, kv=None):
    """out [1, Hq, D] for one sequence; idx [1, Hkv, K], every slot valid, the block holding seq_len-1 in
    the LAST slot (ascending ids, or select_blocks_b1's order).

    k_cache/v_cache [1, Hkv, S_cap, D] with S_cap a multiple of block_size (the engine's cache buffers, kernels/msa/state.py);
    kv: optional [2, 1, Hkv, S_cap, D] buffer whose [0] and [1] are k_cache and v_cache (one gather then).
    The selected blocks are gathered, the unwritten tail of the last one cut off, and the group's query
    heads attend as G query rows of their KV head (one SDPA call, no mask needed).
    """
    _, hkv, S, D = k_cache.shape
    K = idx.shape[-1]
    nblk = S // block_size
    rows = idx[0] + _row_offsets(hkv, nblk, q.device)  # block rows of all heads [hkv, K]
    if kv is not None:
        both = kv.view(2 * hkv * nblk, block_size * D).index_select(0, torch.cat([rows, rows + hkv * nblk]).view(-1))
        ks, vs = both.view(2, hkv, K * block_size, D).unbind(0)
    else:
        ks = k_cache.view(hkv * nblk, block_size * D).index_select(0, rows.view(-1)).view(hkv, K * block_size, D)
        vs = v_cache.view(hkv * nblk, block_size * D).index_select(0, rows.view(-1)).view(hkv, K * block_size, D)
    tail = seq_len % block_size
    n = K * block_size - (block_size - tail if tail else 0)
    qg = q.view(1, hkv, -1, D).to(ks.dtype)
    out = F.scaled_dot_product_attention(qg, ks[None, :, :n], vs[None, :, :n], scale=scale)  # [1, hkv, G, D]
    return out.view(1, -1, D).to(q.dtype)


_OFFSETS: dict = {}


def _row_offsets(hkv: int, nblk: int, device) -> torch.Tensor:
    """[hkv, 1] int64: first block row of each KV head in the cache viewed as [hkv * nblk, block]."""
    key = (hkv, nblk, str(device))
    off = _OFFSETS.get(key)
    if off is None:
        if len(_OFFSETS) > 1024:
            _OFFSETS.clear()
        off = _OFFSETS[key] = torch.arange(0, hkv * nblk, nblk, device=device)[:, None]
    return off


# ----------------------------------------------------------------------------------------------
# Block-sparse prefill (CPU, one sequence): query chunks past a threshold attend to their own chunk
# (causal) plus the top blocks of the past, chosen per KV group for the whole chunk.
# ----------------------------------------------------------------------------------------------
def _flash(q, k, v, causal: bool, scale: float, mask=None):
    """(out [B,Hq,T,D], lse fp32 [B,Hq,T]) -- PyTorch's CPU flash attention, GQA native.
    mask: optional bool [T, S] (True = attend), turned into the additive mask the op takes."""
    if mask is not None:
        mask = torch.zeros(mask.shape, dtype=q.dtype).masked_fill_(~mask, -math.inf)
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, causal, attn_mask=mask,
                                                                          scale=scale)
    return out, lse


def _merge(o1, l1, o2, l2):
    """Softmax-exact merge of two attention results over disjoint key sets (outputs + log-sum-exps)."""
    m = torch.maximum(l1, l2)
    w1, w2 = torch.exp(l1 - m).unsqueeze(-1), torch.exp(l2 - m).unsqueeze(-1)
    return (o1.float() * w1 + o2.float() * w2).div_(w1 + w2).to(o1.dtype)


def chunk_block_scores(qc, kmin, kmax, n_blocks: int, scale: float) -> torch.Tensor:
    """Estimated attention mass of each past block for a chunk of queries: [Hkv, n_blocks] fp32.

    qc [Hkv, G*Tc, D] (the chunk's queries, grouped by KV head); per query the Quest bound of every block
    (kmax . max(q,0) + kmin . min(q,0)), softmax over blocks with the attention scale, summed over the queries.
    """
    pos = qc.clamp(min=0)
    bound = torch.baddbmm(torch.bmm(pos, kmax[:, :n_blocks].transpose(1, 2).to(qc.dtype)), qc - pos,
                          kmin[:, :n_blocks].transpose(1, 2).to(qc.dtype))  # [Hkv, G*Tc, n_blocks]
    return torch.softmax(bound.float().mul_(scale), dim=-1).sum(1)


def sparse_prefill(query, key, value, layer: LayerState, start: int, s, scale: float) -> torch.Tensor:
    """Attention of T new queries (absolute positions start..start+T-1) over the layer's cache, B = 1.

    query [1, Hq, T, D]; key/value [1, Hkv, start+T, D] (views of the layer's cache, summaries already
    updated). Queries before s.sparse_prefill_from: dense causal. Later ones in chunks of s.prefill_chunk
    (aligned to the block size): each chunk attends exactly to itself (causal) and to s.prefill_top_k whole
    past blocks -- sink and the local blocks just before the chunk forced, the rest by estimated mass --
    and the two parts are merged by their log-sum-exps. Returns out [1, Hq, T, D].
    """
    S = key.shape[2]
    bs, hkv = layer.block_size, key.shape[1]
    G = query.shape[1] // hkv
    first = max(start, s.sparse_prefill_from)
    parts = []
    if first > start:  # dense head of the prompt
        n = first - start
        mask = None if n == first else torch.arange(first)[None, :] <= torch.arange(start, first)[:, None]
        parts.append(_flash(query[:, :, :n], key[:, :, :first], value[:, :, :first], mask is None, scale, mask)[0])
    chunk = max(bs, s.prefill_chunk // bs * bs)
    a = first
    while a < S:
        b = min(S, (a // chunk + 1) * chunk)
        a0 = a // bs * bs  # the chunk's own keys start at its first block
        qc = query[:, :, a - start : b - start]
        mask = None
        if a0 != a:  # chunk starts inside a block: causal with an offset
            mask = torch.arange(a0, b)[None, :] <= torch.arange(a, b)[:, None]
        o1, l1 = _flash(qc, key[:, :, a0:b], value[:, :, a0:b], mask is None, scale, mask)
        n_past = a0 // bs
        if n_past == 0:
            parts.append(o1)
            a = b
            continue
        k_sel = min(s.prefill_top_k, n_past)
        if k_sel < n_past:
            forced_lo = min(s.sink_blocks, k_sel)
            forced_hi = min(s.local_blocks, k_sel - forced_lo)
            grouped = qc[0].reshape(hkv, G * (b - a), -1)
            if layer.kmin is not None:
                mass = chunk_block_scores(grouped, layer.kmin[0], layer.kmax[0], n_past, scale)
            else:  # mean summaries only: the bound of a block's mean key (full blocks: sum / block size)
                mean = layer.ksum[0] / bs
                mass = chunk_block_scores(grouped, mean, mean, n_past, scale)
            mass[:, :forced_lo] = math.inf
            if forced_hi:
                mass[:, n_past - forced_hi :] = math.inf
            ids = mass.topk(k_sel, dim=-1).indices  # [hkv, k_sel]
        else:
            ids = torch.arange(n_past).expand(hkv, -1)
        nblk = layer.keys.shape[2] // bs
        rows = (ids + _row_offsets(hkv, nblk, query.device)).reshape(-1)
        kp = layer.keys.reshape(hkv * nblk, bs * key.shape[-1]).index_select(0, rows).view(1, hkv, -1, key.shape[-1])
        vp = layer.values.reshape(hkv * nblk, bs * value.shape[-1]).index_select(0, rows).view(1, hkv, -1, value.shape[-1])
        o2, l2 = _flash(qc, kp.to(qc.dtype), vp.to(qc.dtype), False, scale)
        parts.append(_merge(o1, l1, o2, l2))
        a = b
    return torch.cat(parts, 2) if len(parts) > 1 else parts[0]
