"""Triton kernels of the engine's GPU path; each has a torch twin that the tests compare it with.

Imported only when the engine runs with kernels (on a CUDA device, or on the CPU under
TRITON_INTERPRET=1 in the tests). Each kernel mirrors the rounding of the transformers code it
replaces (fp32 arithmetic, rounded to the model dtype wherever the model rounds), so greedy
output stays close to `generate` in bf16:

  add_rmsnorm   residual add + RMSNorm, one pass (one program per token)
  qkv_post      q/k RMSNorm (Qwen3), rotary embedding, and the K/V write into the slot cache
  decode_attn   one query token per row against its slot's live KV only; one program per
                (row, kv head) serves the head's GQA group; optional split over the sequence
  silu_mul      SiLU(gate) * up
  gumbel_argmax counter-based noise (seed key, step, vocab index) + argmax over the vocabulary
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

ATTN = {"BLOCK_N": 64, "num_warps": 4, "num_stages": 2}  # the bench may try others (kernels.ATTN.update)


@triton.jit
def _mix32(x):  # "lowbias32" integer hash on uint32; sampling.mix32 is its torch twin
    x = x ^ (x >> 16)
    x = x * 0x7FEB352D
    x = x ^ (x >> 15)
    x = x * 0x846CA68B
    x = x ^ (x >> 16)
    return x


@triton.jit
def _add_rmsnorm_kernel(
    X,
    DELTA,
    RES,
    OUT,
    W,
    eps,
    stride_x,
    stride_d,
    N: tl.constexpr,
    BLOCK: tl.constexpr,
    HAS_DELTA: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    m = cols < N
    x = tl.load(X + row * stride_x + cols, mask=m, other=0.0)
    if HAS_DELTA:
        d = tl.load(DELTA + row * stride_d + cols, mask=m, other=0.0)
        x = (x.to(tl.float32) + d.to(tl.float32)).to(x.dtype)  # residual + h, rounded like the model's add
        tl.store(RES + row * N + cols, x, mask=m)
    xf = x.to(tl.float32)
    rstd = tl.rsqrt(tl.sum(xf * xf, 0) / N + eps)
    y = (xf * rstd).to(x.dtype)  # HF rounds the normalised value before the weight multiply
    w = tl.load(W + cols, mask=m, other=0.0)
    tl.store(OUT + row * N + cols, (w.to(tl.float32) * y.to(tl.float32)).to(x.dtype), mask=m)


def add_rmsnorm(x: torch.Tensor, delta: torch.Tensor | None, weight: torch.Tensor, eps: float):
    """(x + delta, RMSNorm(x + delta)); with delta None, (x, RMSNorm(x))."""
    t, n = x.shape
    out = torch.empty((t, n), dtype=x.dtype, device=x.device)
    res = torch.empty_like(out) if delta is not None else x
    block = triton.next_power_of_2(n)
    _add_rmsnorm_kernel[(t,)](
        x,
        delta if delta is not None else x,
        res,
        out,
        weight,
        eps,
        x.stride(0),
        (delta if delta is not None else x).stride(0),
        N=n,
        BLOCK=block,
        HAS_DELTA=delta is not None,
        num_warps=8 if block >= 2048 else 4,
    )
    return res, out


@triton.jit
def _qkv_post_kernel(
    QKV,
    QOUT,
    KC,
    VC,
    COS,
    SIN,
    POS,
    SLOT,
    QW,
    KW,
    eps,
    stride_qkv,
    stride_cs,
    stride_ch,
    stride_ct,
    H: tl.constexpr,
    KVH: tl.constexpr,
    D: tl.constexpr,
    HALF: tl.constexpr,
    NH: tl.constexpr,
    NV: tl.constexpr,
    HAS_NORM: tl.constexpr,
):
    t = tl.program_id(0).to(tl.int64)  # one token: all its query and key heads as one [heads, D/2] tile pair
    hh = tl.arange(0, NH)[:, None]  # < H: query heads; H .. H + KVH: key heads
    c = tl.arange(0, HALF)[None, :]
    valid = hh < H + KVH
    base = QKV + t * stride_qkv + hh * D + c
    x1 = tl.load(base, mask=valid, other=0.0)
    x2 = tl.load(base + HALF, mask=valid, other=0.0)
    dt = x1.dtype
    if HAS_NORM:  # Qwen3's q_norm / k_norm over the head dimension
        w1 = tl.where(hh < H, tl.load(QW + c), tl.load(KW + c)).to(tl.float32)
        w2 = tl.where(hh < H, tl.load(QW + HALF + c), tl.load(KW + HALF + c)).to(tl.float32)
        f1 = x1.to(tl.float32)
        f2 = x2.to(tl.float32)
        rstd = tl.rsqrt((tl.sum(f1 * f1, 1) + tl.sum(f2 * f2, 1)) / D + eps)[:, None]
        x1 = (w1 * (f1 * rstd).to(dt).to(tl.float32)).to(dt)
        x2 = (w2 * (f2 * rstd).to(dt).to(tl.float32)).to(dt)
    pos = tl.load(POS + t).to(tl.int64)
    cos1 = tl.load(COS + pos * D + c).to(tl.float32)
    cos2 = tl.load(COS + pos * D + HALF + c).to(tl.float32)
    sin1 = tl.load(SIN + pos * D + c).to(tl.float32)
    sin2 = tl.load(SIN + pos * D + HALF + c).to(tl.float32)
    a1 = x1.to(tl.float32)
    a2 = x2.to(tl.float32)
    # q*cos + rotate_half(q)*sin, each product and the sum rounded as the model's dtype rounds them
    o1 = ((a1 * cos1).to(dt).to(tl.float32) + (-a2 * sin1).to(dt).to(tl.float32)).to(dt)
    o2 = ((a2 * cos2).to(dt).to(tl.float32) + (a1 * sin2).to(dt).to(tl.float32)).to(dt)
    is_q = hh < H
    tl.store(QOUT + (t * H + hh) * D + c, o1, mask=is_q)
    tl.store(QOUT + (t * H + hh) * D + HALF + c, o2, mask=is_q)
    slot = tl.load(SLOT + t).to(tl.int64)
    is_k = (hh >= H) & valid
    at = slot * stride_cs + (hh - H) * stride_ch + pos * stride_ct + c
    tl.store(KC + at, o1, mask=is_k)
    tl.store(KC + at + HALF, o2, mask=is_k)
    vh = tl.arange(0, NV)[:, None]  # value heads: copied as they are
    d = tl.arange(0, D)[None, :]
    vm = vh < KVH
    v = tl.load(QKV + t * stride_qkv + (H + KVH + vh) * D + d, mask=vm, other=0.0)
    tl.store(VC + slot * stride_cs + vh * stride_ch + pos * stride_ct + d, v, mask=vm)


def qkv_post(
    qkv: torch.Tensor,
    pos: torch.Tensor,
    slot: torch.Tensor,
    kc: torch.Tensor,
    vc: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    qw: torch.Tensor | None,
    kw: torch.Tensor | None,
    eps: float,
    heads: int,
    kv_heads: int,
    head_dim: int,
) -> torch.Tensor:
    """Queries [T, H, D] after norm and rotary; keys (same treatment) and values go into kc/vc[slot, :, pos]."""
    t = qkv.shape[0]
    q = torch.empty((t, heads, head_dim), dtype=qkv.dtype, device=qkv.device)
    has_norm = qw is not None
    _qkv_post_kernel[(t,)](
        qkv,
        q,
        kc,
        vc,
        cos,
        sin,
        pos,
        slot,
        qw if has_norm else cos,
        kw if has_norm else cos,
        eps,
        qkv.stride(0),
        kc.stride(0),
        kc.stride(1),
        kc.stride(2),
        H=heads,
        KVH=kv_heads,
        D=head_dim,
        HALF=head_dim // 2,
        NH=triton.next_power_of_2(heads + kv_heads),
        NV=triton.next_power_of_2(kv_heads),
        HAS_NORM=has_norm,
        num_warps=4,
    )
    return q


@triton.jit
def _decode_attn_kernel(
    Q,
    KC,
    VC,
    O,
    MP,
    LP,
    ACC,
    ROWS,
    LENS,
    scale_log2,
    stride_cs,
    stride_ch,
    stride_ct,
    H: tl.constexpr,
    G: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_N: tl.constexpr,
    D: tl.constexpr,
    SPLITS: tl.constexpr,
    IEEE: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)
    kh = tl.program_id(1)
    sp = tl.program_id(2)
    slot = tl.load(ROWS + b).to(tl.int64)
    n_live = tl.load(LENS + b).to(tl.int32)
    per = tl.cdiv(tl.cdiv(n_live, SPLITS), BLOCK_N) * BLOCK_N
    lo = sp * per
    hi = tl.minimum(lo + per, n_live)
    g = tl.arange(0, BLOCK_H)
    hm = g < G
    d = tl.arange(0, D)
    heads = kh * G + g
    q = tl.load(Q + (b * H + heads)[:, None] * D + d[None, :], mask=hm[:, None], other=0.0)
    kbase = KC + slot * stride_cs + kh * stride_ch
    vbase = VC + slot * stride_cs + kh * stride_ch
    m_i = tl.full([BLOCK_H], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_H], tl.float32)
    acc = tl.zeros([BLOCK_H, D], tl.float32)
    for start in range(lo, hi, BLOCK_N):  # only this row's live KV is read
        n = start + tl.arange(0, BLOCK_N)
        nm = n < hi
        k = tl.load(kbase + n[:, None] * stride_ct + d[None, :], mask=nm[:, None], other=0.0)
        if IEEE:  # float32 models: full-precision products, not tf32
            s = tl.dot(q, tl.trans(k), input_precision="ieee") * scale_log2
        else:
            s = tl.dot(q, tl.trans(k)) * scale_log2
        s = tl.where(nm[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(vbase + n[:, None] * stride_ct + d[None, :], mask=nm[:, None], other=0.0)
        if IEEE:
            acc = acc * alpha[:, None] + tl.dot(p, v, input_precision="ieee")
        else:
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    if SPLITS == 1:
        out = acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]
        tl.store(O + (b * H + heads)[:, None] * D + d[None, :], out.to(O.dtype.element_ty), mask=hm[:, None])
    else:
        part = (b * H + heads) * SPLITS + sp
        tl.store(MP + part, m_i, mask=hm)
        tl.store(LP + part, l_i, mask=hm)
        tl.store(ACC + part[:, None] * D + d[None, :], acc, mask=hm[:, None])


@triton.jit
def _combine_kernel(O, MP, LP, ACC, D: tl.constexpr, SPLITS: tl.constexpr, SPLITS_P2: tl.constexpr):
    bh = tl.program_id(0).to(tl.int64)  # b * H + h
    sp = tl.arange(0, SPLITS_P2)
    sm = sp < SPLITS
    d = tl.arange(0, D)
    m = tl.load(MP + bh * SPLITS + sp, mask=sm, other=float("-inf"))
    top = tl.max(m, 0)
    w = tl.exp2(m - tl.where(top == float("-inf"), 0.0, top))  # empty splits weigh nothing
    total = tl.sum(tl.load(LP + bh * SPLITS + sp, mask=sm, other=0.0) * w, 0)
    acc = tl.load(ACC + (bh * SPLITS + sp)[:, None] * D + d[None, :], mask=sm[:, None], other=0.0)
    out = tl.sum(acc * w[:, None], 0) / tl.where(total == 0.0, 1.0, total)
    tl.store(O + bh * D + d, out.to(O.dtype.element_ty))


def decode_attention(
    q: torch.Tensor,
    kc: torch.Tensor,
    vc: torch.Tensor,
    rows: torch.Tensor,
    lens: torch.Tensor,
    scale: float,
    splits: int = 1,
) -> torch.Tensor:
    """Attention of q [B, H, D] over kc/vc[rows[b], :, :lens[b]]; rows with lens 0 give zeros."""
    b, h, d = q.shape
    kvh = kc.shape[1]
    g = h // kvh
    o = torch.empty_like(q)
    if splits > 1:
        mp = torch.empty((b * h * splits,), dtype=torch.float32, device=q.device)
        lp = torch.empty_like(mp)
        acc = torch.empty((b * h * splits, d), dtype=torch.float32, device=q.device)
    else:
        mp = lp = acc = o
    _decode_attn_kernel[(b, kvh, splits)](
        q,
        kc,
        vc,
        o,
        mp,
        lp,
        acc,
        rows,
        lens,
        scale * 1.4426950408889634,
        kc.stride(0),
        kc.stride(1),
        kc.stride(2),
        H=h,
        G=g,
        BLOCK_H=max(16, triton.next_power_of_2(g)),
        BLOCK_N=ATTN["BLOCK_N"],
        D=d,
        SPLITS=splits,
        IEEE=q.dtype == torch.float32,
        num_warps=ATTN["num_warps"],
        num_stages=ATTN["num_stages"],
    )
    if splits > 1:
        _combine_kernel[(b * h,)](
            o, mp, lp, acc, D=d, SPLITS=splits, SPLITS_P2=triton.next_power_of_2(splits), num_warps=1
        )
    return o


@triton.jit
def _silu_mul_kernel(GU, OUT, stride_gu, I: tl.constexpr, BLOCK: tl.constexpr):
    t = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    m = cols < I
    gate = tl.load(GU + t * stride_gu + cols, mask=m, other=0.0)
    up = tl.load(GU + t * stride_gu + I + cols, mask=m, other=0.0)
    gf = gate.to(tl.float32)
    act = (gf / (1.0 + tl.exp(-gf))).to(gate.dtype)  # SiLU as torch computes it, rounded before the product
    tl.store(OUT + t * I + cols, (act.to(tl.float32) * up.to(tl.float32)).to(gate.dtype), mask=m)


def silu_mul(gu: torch.Tensor) -> torch.Tensor:
    """SiLU(gu[:, :I]) * gu[:, I:]."""
    t, two_i = gu.shape
    i = two_i // 2
    out = torch.empty((t, i), dtype=gu.dtype, device=gu.device)
    block = min(1024, triton.next_power_of_2(i))
    _silu_mul_kernel[(t, triton.cdiv(i, block))](gu, out, gu.stride(0), I=i, BLOCK=block, num_warps=4)
    return out


@triton.jit
def _gumbel_argmax_kernel(
    S,
    BEST_V,
    BEST_I,
    KEYS,
    STEPS,
    JMIX,
    V,
    stride_s,
    inv_temp,
    CHUNK,
    CHUNKS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    part = tl.program_id(1)  # one slice of the vocabulary: rows x slices programs keep the GPU busy
    key = tl.load(KEYS + row).to(tl.uint32)
    step = tl.load(STEPS + row).to(tl.uint32)
    state = _mix32(key ^ _mix32(step ^ 0x9E3779B9))  # one stream per (request key, token index)
    lo = part * CHUNK
    hi = tl.minimum(lo + CHUNK, V)
    best_v = tl.full([BLOCK], float("-inf"), tl.float32)
    best_i = tl.zeros([BLOCK], tl.int32)
    for start in range(lo, hi, BLOCK):
        j = start + tl.arange(0, BLOCK)
        m = j < hi
        x = tl.load(S + row * stride_s + j, mask=m, other=float("-inf")).to(tl.float32) * inv_temp
        bits = _mix32(
            state ^ tl.load(JMIX + j, mask=m, other=0).to(tl.uint32)
        )  # JMIX[j] = _mix32(j + 0x632BE5AB)
        u = ((bits >> 9).to(tl.float32) + 0.5) * 1.1920928955078125e-07  # in (0, 1): 23 bits, exact
        v = tl.where(m, x - tl.log(-tl.log(u)), float("-inf"))
        take = v > best_v  # strict: the earlier index wins a tie, as torch.argmax
        best_v = tl.where(take, v, best_v)
        best_i = tl.where(take, j, best_i)
    top = tl.max(best_v, 0)
    tl.store(BEST_V + row * CHUNKS + part, top)
    tl.store(BEST_I + row * CHUNKS + part, tl.min(tl.where(best_v == top, best_i, V), 0).to(tl.int64))


_JMIX: dict = {}


def gumbel_argmax(
    scores: torch.Tensor, keys: torch.Tensor, steps: torch.Tensor, inv_temp: float = 1.0
) -> torch.Tensor:
    """argmax(scores * inv_temp + Gumbel noise keyed by (keys[b], steps[b], vocab index)) per row."""
    from .sampling import mix32

    n, v = scores.shape
    table = _JMIX.get((v, scores.device))
    if table is None:  # the per-index half of the hash, computed once (before any graph capture: eager first)
        table = _JMIX[(v, scores.device)] = mix32(torch.arange(v, device=scores.device) + 0x632BE5AB)
    chunks, block = 8, 2048
    chunk = triton.cdiv(triton.cdiv(v, chunks), block) * block
    best_v = torch.empty((n, chunks), dtype=torch.float32, device=scores.device)
    best_i = torch.empty((n, chunks), dtype=torch.int64, device=scores.device)
    _gumbel_argmax_kernel[(n, chunks)](
        scores,
        best_v,
        best_i,
        keys,
        steps,
        table,
        v,
        scores.stride(0),
        inv_temp,
        chunk,
        CHUNKS=chunks,
        BLOCK=block,
        num_warps=8,
    )
    return best_i.gather(1, best_v.argmax(1, keepdim=True))[:, 0]  # the first slice wins a tie


@triton.jit
def _step_begin_kernel(
    ROWS, DONE, TOK, POS, COUNT, KEY, IDS, POS_O, SLOT, LENS, KEY_O, COUNT_O, scratch, B, BLOCK: tl.constexpr
):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = i < B
    r = tl.load(ROWS + i, mask=m, other=0)
    live = tl.load(DONE + r, mask=m, other=1) == 0
    pos = tl.load(POS + r, mask=m, other=0)
    tl.store(IDS + i, tl.load(TOK + r, mask=m, other=0), mask=m)
    tl.store(POS_O + i, pos, mask=m)
    tl.store(SLOT + i, tl.where(live, r, scratch), mask=m)  # idle rows write into the scratch slot
    tl.store(LENS + i, tl.where(live, pos + 1, 0), mask=m)
    tl.store(KEY_O + i, tl.load(KEY + r, mask=m, other=0), mask=m)
    tl.store(COUNT_O + i, tl.load(COUNT + r, mask=m, other=0), mask=m)


def step_begin(rows, done, tok, pos, count, key, scratch: int):
    """Per row of a decode step: (token, position, slot to write, live length, key, count), in one launch."""
    b = rows.shape[0]
    ids, pos_o, slot, lens, key_o, count_o = (torch.empty_like(rows) for _ in range(6))
    block = min(1024, triton.next_power_of_2(b))
    _step_begin_kernel[(triton.cdiv(b, block),)](
        rows, done, tok, pos, count, key, ids, pos_o, slot, lens, key_o, count_o, scratch, b, BLOCK=block
    )
    return ids, pos_o, slot, lens, key_o, count_o


@triton.jit
def _step_end_kernel(
    ROWS,
    NXT,
    SLOT,
    LENS,
    POS_I,
    COUNT_I,
    DONE,
    TOK,
    POS,
    COUNT,
    MAXN,
    OUT,
    EOS,
    n_eos,
    cap,
    stride_out,
    B,
    BLOCK: tl.constexpr,
):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = i < B
    r = tl.load(ROWS + i, mask=m, other=0)
    slot = tl.load(SLOT + i, mask=m, other=0)
    nxt = tl.load(NXT + i, mask=m, other=0)
    live = tl.load(LENS + i, mask=m, other=0) > 0
    cnt = tl.load(COUNT_I + i, mask=m, other=0)
    step = live.to(tl.int64)
    eos = nxt < 0
    for e in range(n_eos):
        eos = eos | (nxt == tl.load(EOS + e))
    tl.store(OUT + slot * stride_out + tl.minimum(cnt, cap - 1), nxt, mask=m)
    tl.store(TOK + slot, nxt, mask=m)
    tl.store(POS + slot, tl.load(POS_I + i, mask=m, other=0) + step, mask=m)
    tl.store(COUNT + slot, cnt + step, mask=m)
    done = (live == 0) | eos | (cnt + step >= tl.load(MAXN + r, mask=m, other=0))
    tl.store(DONE + slot, done, mask=m)


def step_end(rows, nxt, slot, lens, pos, count, done, tok, pos_state, count_state, maxn, out, eos) -> None:
    """Record each live row's new token, advance it, and mark it done at EOS or its length, in one launch."""
    b = rows.shape[0]
    block = min(1024, triton.next_power_of_2(b))
    _step_end_kernel[(triton.cdiv(b, block),)](
        rows,
        nxt,
        slot,
        lens,
        pos,
        count,
        done,
        tok,
        pos_state,
        count_state,
        maxn,
        out,
        eos if eos.numel() else nxt,
        eos.numel(),
        out.shape[1],
        out.stride(0),
        b,
        BLOCK=block,
    )
