"""The engine: slots, continuous refill, decode steps (CUDA graphs on the GPU), out-of-memory back-off.

A session (`open`, then `submit` requests while `step` runs the engine, or `generate` for a
list of prompts) sizes a KV cache of `slots` sequences of its longest sequence from the free
device memory (plus one scratch slot that padding rows write into). Requests may be submitted
while others decode: they wait in a queue and are admitted as slots free up, so a caller can
feed work as it appears (a retry as soon as its first attempt was judged wrong) and the engine
never drains between calls. Each `step` is:

    admit    pop prompts into free slots (once enough are free, or none is busy); prefill them
             in flat batches of up to `prefill_tokens`: one forward per prompt, its KV copied to
             the slots of its other samples (prefix sharing), first tokens sampled
    advance  run up to `sync_every` decode steps over the busy slots, padded to a bucket size
             (powers of two up to `slots`); each step is a CUDA graph on the GPU; a step keeps
             its slots' state on the device (last token, position, count, done) and stops a
             slot at EOS or its max_new_tokens there, so the host reads nothing in between
    collect  one copy of (done, count) to the host; finished slots hand their tokens back and
             are free again; stop strings are checked on the decoded tail of each sequence

A session has one sampling setting (temperature, top-k, top-p: its graphs); a request may be
greedy instead (a per-slot flag read inside the same graph: its token is the argmax of the
logits), so greedy and sampled evaluation share one running batch. A request longer than the
cache waits until every other queued and running one has finished; the cache is then rebuilt for
it (a warning says so): `open`'s `max_len` should cover all but the rare longest requests.

A CUDA out-of-memory error anywhere in a round halves the slots, rebuilds the cache and graphs,
and requeues the unfinished sequences. Because sampling noise is keyed by (request, token
index) (sampling.py), a requeued sequence comes out the same as it would have.
"""

from __future__ import annotations

import contextlib
import gc
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from . import sampling
from .attention import PromptLayout, to_device
from .model import EngineModel


@dataclass(frozen=True)
class Output:
    """One generated sequence: its tokens (the EOS or stop-completing token included) and why it ended."""

    tokens: list[int]
    finish_reason: str  # "stop" (EOS or a stop string) | "length"
    stop: str | None = None  # the stop string that ended it


@dataclass
class _Request:
    ids: list[int]
    keys: list[int]  # one sampling key per sample
    max_new: int
    greedy: bool = False


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def load_kernels():
    from . import kernels

    return kernels


class Engine:
    """Continuous-batching generation over a transformers causal LM (see the module docstring)."""

    def __init__(
        self,
        model,
        eos_ids: Sequence[int] = (),
        *,
        max_slots: int = 512,
        kernels: bool | None = None,
        graphs: bool | None = None,
        fuse: bool | None = None,
        sync_every: int = 16,
        prefill_tokens: int = 16384,
        refill: float = 1 / 16,
        memory_fraction: float = 0.9,
        warn: Callable[[str], None] = lambda msg: None,
    ) -> None:
        cuda = model.device.type == "cuda"
        use_kernels = (cuda and triton_available()) if kernels is None else kernels
        kmod = load_kernels() if use_kernels else None
        self.model = EngineModel(model, kmod, fuse=(kmod is not None and cuda) if fuse is None else fuse)
        self.device, self.cuda = model.device, cuda
        self.graphs = (cuda and kmod is not None) if graphs is None else graphs
        self.eos_ids = sorted(set(eos_ids))
        self.max_slots, self.sync_every, self.prefill_tokens = max_slots, sync_every, prefill_tokens
        self.refill, self.memory_fraction, self.warn = refill, memory_fraction, warn
        self.slots, self.max_len, self.cap = 0, 0, 0
        self.cache = None
        self._graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self._graph_params = None
        self.eos, self._eos_key = None, None  # the EOS ids a decode step stops at (_configure)
        self.steps = 0  # decode steps run (a measure of work, for benchmarks)
        self.stats: dict[
            str, float
        ] = {}  # device seconds in prefill and decode during the last generate call
        self._events: list = []
        self.reqs: list[_Request] = []
        self.queue: deque = deque()  # (request, its samples not yet admitted)
        self.long: list[int] = []  # requests longer than the cache: admitted once all others finished
        self.rebuilds = 0  # cache rebuilds for a request longer than the session's max_len
        self.backoffs = 0  # out-of-memory back-offs (each halves the slots for the rest of the engine's life)

    # ---- public -------------------------------------------------------------------------------

    @torch.inference_mode()
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        n: int = 1,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = 0,
        max_new_tokens: int | Sequence[int] = 256,
        seed: int = 0,
        seeds: Sequence[int] | None = None,
        stop: Sequence[str] = (),
        decode: Callable[[list[int]], str] | None = None,
        ignore_eos: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> list[list[Output]]:
        """n sequences per prompt (token ids, chat template already applied): one session, run to its end.

        A sample's noise is keyed by (seed, prompt index, sample index), or by (seeds[i], sample
        index) when per-prompt seeds are given: then a prompt samples the same tokens in any call.
        Stop strings need `decode` (token ids -> text).
        """
        if not prompts:
            return []
        maxn = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
        if len(maxn) != len(prompts) or min(maxn) < 1 or n < 1:
            raise ValueError("n and every max_new_tokens must be at least 1, one max_new_tokens per prompt")
        if any(not ids for ids in prompts):
            raise ValueError("every prompt needs at least one token")
        self.open(
            max(len(ids) + m for ids, m in zip(prompts, maxn)),
            max(maxn),
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            stop=stop,
            decode=decode,
            ignore_eos=ignore_eos,
        )
        order = sorted(
            range(len(prompts)), key=lambda i: -len(prompts[i])
        )  # similar lengths prefill together
        index = {}  # request number -> prompt index
        for i in order:
            key = seeds[i] if seeds is not None else seed
            r = self.submit(
                prompts[i], n=n, seed=key, request=0 if seeds is not None else i, max_new_tokens=maxn[i]
            )
            index[r] = i
        results: list[list[Output | None]] = [[None] * n for _ in prompts]
        while self.busy():
            finished = self.step()
            for r, j, out in finished:
                results[index[r]][j] = out
            if progress and finished:
                progress(len(finished))
        return results  # type: ignore[return-value]

    @torch.inference_mode()
    def open(
        self,
        max_len: int,
        max_new_tokens: int,
        *,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        stop: Sequence[str] = (),
        decode: Callable[[list[int]], str] | None = None,
        ignore_eos: bool = False,
    ) -> None:
        """Start a session: a cache for sequences of up to `max_len` tokens (prompt + new), requests of up to
        `max_new_tokens` new tokens, one sampling setting. Requests come with `submit`; `step` runs."""
        if stop and decode is None:
            raise ValueError("stop strings need decode=...")
        if max_len < 2 or max_new_tokens < 1:
            raise ValueError("a session needs max_len >= 2 and max_new_tokens >= 1")
        self._configure(temperature, top_k, top_p, ignore_eos)
        self.stop, self.decode = tuple(stop), decode
        self._prepare(max_len, max_new_tokens)
        self.reqs, self._events, self.queue, self.long = [], [], deque(), []
        self.owner = [None] * self.slots
        self.rebuilds = 0

    def submit(
        self,
        ids: Sequence[int],
        *,
        n: int = 1,
        seed: int = 0,
        request: int | str = 0,
        max_new_tokens: int | None = None,
        greedy: bool = False,
    ) -> int:
        """Queue `n` samples of one prompt; returns its request number (as `step` reports it). Sample j's
        noise is keyed by (seed, request, j). `greedy`: argmax tokens whatever the session's setting."""
        max_new = self.cap if max_new_tokens is None else max_new_tokens
        if not ids or n < 1 or max_new < 1:
            raise ValueError("a request needs at least one prompt token, one sample and one new token")
        r = len(self.reqs)
        self.reqs.append(
            _Request(list(ids), [sampling.request_key(seed, request, j) for j in range(n)], max_new, greedy)
        )
        if len(ids) + max_new > self.max_len or max_new > self.cap:
            self.long.append(r)  # waits until everything else is done, then the cache grows
        else:
            self.queue.append((r, list(range(n))))
        return r

    def busy(self) -> bool:
        """Work queued or running."""
        return bool(self.queue or self.long) or any(o is not None for o in self.owner)

    def waiting(self) -> int:
        """Samples submitted and not yet admitted to a slot."""
        return sum(len(js) for _, js in self.queue) + sum(len(self.reqs[r].keys) for r in self.long)

    @torch.inference_mode()
    def step(self) -> list[tuple[int, int, Output]]:
        """Admit, up to `sync_every` decode steps, collect: (request, sample, output) of what finished."""
        if self.long and not self.queue and not any(o is not None for o in self.owner):
            self._grow()  # the requests longer than the cache waited for everything else
        try:
            self._admit(self.queue)
            self._advance()
            finished = self._collect()
        except torch.cuda.OutOfMemoryError:
            self._back_off(self.queue)
            return []
        if not self.busy():
            self.stats = {
                kind: sum(a.elapsed_time(b) for k, a, b in self._events if k == kind) / 1e3
                for kind in ("prefill", "decode")
            }
        return finished

    def _grow(self) -> None:
        need = [self.reqs[r] for r in self.long]
        max_len = max(self.max_len, *(len(q.ids) + q.max_new for q in need))
        cap = max(self.cap, *(q.max_new for q in need))
        self.warn(
            f"a request of {max_len} tokens is longer than the engine's cache ({self.max_len}); "
            f"rebuilding it (size the session for the longest request)"
        )
        self.rebuilds += 1
        self.release()
        self._prepare(max_len, cap)
        self.owner = [None] * self.slots
        self.queue.extendleft((r, list(range(len(self.reqs[r].keys)))) for r in reversed(self.long))
        self.long = []

    @contextlib.contextmanager
    def _timed(self, kind: str):
        """Device time of a prefill or a decode chunk, read after the call (no waiting here)."""
        if not self.cuda:
            yield
            return
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        yield
        end.record()
        self._events.append((kind, start, end))

    @torch.inference_mode()
    def warm_up(
        self,
        max_len: int,
        max_new_tokens: int,
        *,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        ignore_eos: bool = False,
    ) -> None:
        """Build the cache and capture every bucket's graph for calls up to this shape (else the first call does)."""
        self._configure(temperature, top_k, top_p, ignore_eos)
        self._prepare(max_len, max_new_tokens)
        if self.graphs:
            for bucket in reversed(self.buckets):  # largest first: the shared pool is sized once
                self._graph(bucket)

    def _configure(self, temperature: float, top_k: int, top_p: float, ignore_eos: bool) -> None:
        self.params = (float(temperature), int(top_k), float(top_p))
        eos = () if ignore_eos else tuple(self.eos_ids)
        if eos != self._eos_key:  # captured graphs read this tensor's memory: it is replaced only with them
            self.eos, self._eos_key = torch.tensor(eos, dtype=torch.int64, device=self.device), eos
        self.ignore_eos = ignore_eos

    def release(self) -> None:
        """Free the cache and the graphs (the next generate call builds them again)."""
        self._graphs.clear()
        self.cache = None
        self.slots = 0
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()

    # ---- memory ---------------------------------------------------------------------------------

    def _prepare(self, max_len: int, cap: int) -> None:
        if self.cache is not None and max_len <= self.max_len and cap <= self.cap:
            return  # the cache of an earlier call is large enough; _graph recaptures if the sampling changed
        self.release()
        while True:
            slots = self._fit(max_len)
            try:
                self._allocate(slots, max_len, cap)
                return
            except torch.cuda.OutOfMemoryError:
                if slots <= 1:
                    raise
                self.max_slots = slots // 2
                self.release()
                self.warn(f"out of device memory allocating {slots} slots; trying {self.max_slots}")

    def _fit(self, max_len: int) -> int:
        """Slots that fit in the free device memory, leaving room for activations."""
        if not self.cuda:
            return self.max_slots
        m = self.model
        free = torch.cuda.mem_get_info(self.device)[0]
        filters = self.params[1] > 0 or self.params[2] < 1.0
        reserve = (
            2**30
            + self.max_slots * m.vocab * (28 if filters else 6)
            + self.prefill_tokens
            * 2
            * (8 * m.hidden_size + 6 * m.intermediate_size + 8 * m.heads * m.head_dim)
        )
        fit = int((free * self.memory_fraction - reserve) // (m.kv_bytes_per_token() * max_len)) - 1
        if fit < 1:
            raise torch.cuda.OutOfMemoryError(f"no room for one sequence of {max_len} tokens")
        return min(self.max_slots, fit)

    def _allocate(self, slots: int, max_len: int, cap: int) -> None:
        m, dev = self.model, self.device
        self.slots, self.max_len, self.cap = slots, max_len, cap
        n = slots + 1  # slot `slots` is scratch: padding rows and finished rows write there
        self.cache = torch.zeros(
            (len(m.layers), 2, n, m.kv_heads, max_len, m.head_dim), dtype=m.dtype, device=dev
        )
        self.rope = m.rope_table(max_len)
        self.tok, self.pos, self.count, self.maxn, self.key = (
            torch.zeros(n, dtype=torch.int64, device=dev) for _ in range(5)
        )
        self.done = torch.ones(n, dtype=torch.bool, device=dev)
        self.greedy = torch.zeros(n, dtype=torch.bool, device=dev)  # per slot: argmax instead of a draw
        self.out = torch.zeros((n, cap), dtype=torch.int64, device=dev)
        self.owner: list[tuple[int, int] | None] = [None] * slots
        self.left = [0] * slots  # tokens still allowed, as of the last collect
        self.checked = [0] * slots  # tokens already searched for stop strings
        self.buckets = sorted({slots} | {b for b in (8, 16, 32, 64, 128, 256, 512, 1024, 2048) if b < slots})
        self.rows = {b: torch.full((b,), slots, dtype=torch.int64, device=dev) for b in self.buckets}
        self._graphs.clear()
        self._pool = torch.cuda.graph_pool_handle() if self.graphs else None

    def _back_off(self, queue: deque) -> None:
        if self.slots <= 1:
            raise torch.cuda.OutOfMemoryError("out of device memory with a single slot")
        waiting: dict[int, list[int]] = {}
        for owner in self.owner:
            if owner is not None:
                waiting.setdefault(owner[0], []).append(owner[1])
        for i in sorted(waiting, key=lambda i: len(self.reqs[i].ids)):
            queue.appendleft((i, sorted(waiting[i])))
        self.warn(f"out of device memory with {self.slots} slots; going on with {self.slots // 2}")
        self.backoffs += 1
        self.max_slots = self.slots // 2
        self.prefill_tokens = max(256, self.prefill_tokens // 2)
        max_len, cap = self.max_len, self.cap
        self.release()
        self._prepare(max_len, cap)

    # ---- admit: prefill new prompts into free slots ----------------------------------------------------

    def _admit(self, queue: deque) -> None:
        free = deque(s for s, o in enumerate(self.owner) if o is None)
        busy = self.slots - len(free)
        if not queue or not free or (busy and len(free) < max(1, int(self.slots * self.refill))):
            return
        while queue and free:
            batch, tokens = [], 0
            while (
                queue
                and free
                and (not batch or tokens + len(self.reqs[queue[0][0]].ids) <= self.prefill_tokens)
            ):
                i, js = queue.popleft()
                take = js[: len(free)]
                if len(take) < len(js):
                    queue.appendleft((i, js[len(take) :]))
                batch.append((i, take, [free.popleft() for _ in take]))
                tokens += len(self.reqs[i].ids)
            with self._timed("prefill"):
                self._prefill(batch)

    def _prefill(self, batch: list[tuple[int, list[int], list[int]]]) -> None:
        m, dev = self.model, self.device
        reqs = [self.reqs[i] for i, _, _ in batch]
        layout = PromptLayout([len(r.ids) for r in reqs], [slots[0] for _, _, slots in batch], dev)
        ids = to_device(torch.tensor([t for r in reqs for t in r.ids]), dev)
        hidden = m.forward(
            ids, layout.offset, layout.token_slot, self.cache, self.rope, m.prefill_attend(layout)
        )
        logits = m.logits(hidden[layout.last])
        for r, (_, _, slots) in zip(reqs, batch):
            if len(slots) > 1:  # prefix sharing: the prompt's KV, computed once, goes to every sample's slot
                src, n = slots[0], len(r.ids)
                dst = to_device(torch.tensor(slots[1:]), dev)
                self.cache[:, :, dst, :, :n] = self.cache[:, :, src : src + 1, :, :n]
        rows = to_device(torch.tensor([p for p, (_, js, _) in enumerate(batch) for _ in js]), dev)
        slots = to_device(torch.tensor([s for _, _, ss in batch for s in ss]), dev)
        keys = to_device(torch.tensor([r.keys[j] for r, (_, js, _) in zip(reqs, batch) for j in js]), dev)
        maxn = to_device(torch.tensor([r.max_new for r, (_, js, _) in zip(reqs, batch) for _ in js]), dev)
        plen = to_device(torch.tensor([len(r.ids) for r, (_, js, _) in zip(reqs, batch) for _ in js]), dev)
        first = sampling.sample(logits[rows], keys, torch.zeros_like(keys), *self.params, kernels=m.kernels)
        greedy = to_device(torch.tensor([r.greedy for r, (_, js, _) in zip(reqs, batch) for _ in js]), dev)
        if self.params[0] > 0:
            first = torch.where(greedy, logits[rows].argmax(dim=-1), first)
        self.greedy[slots] = greedy
        self.tok[slots], self.pos[slots], self.count[slots] = first, plen, 1
        self.maxn[slots], self.key[slots], self.out[slots, 0] = maxn, keys, first
        self.done[slots] = self._is_eos(first) | (maxn <= 1)
        for i, js, ss in batch:
            for j, s in zip(js, ss):
                self.owner[s] = (i, j)
                self.left[s] = self.reqs[i].max_new - 1
                self.checked[s] = 0

    def _is_eos(self, tokens: torch.Tensor) -> torch.Tensor:
        return (tokens[:, None] == self.eos[None, :]).any(dim=1)

    # ---- advance: decode steps ------------------------------------------------------------------

    def _advance(self) -> None:
        busy = [s for s, o in enumerate(self.owner) if o is not None and self.left[s] > 0]
        if not busy:
            return
        bucket = next(b for b in self.buckets if b >= len(busy))
        steps = min(self.sync_every, max(self.left[s] for s in busy))
        graph = self._graph(bucket) if self.graphs else None
        self.rows[bucket].copy_(
            to_device(torch.tensor(busy + [self.slots] * (bucket - len(busy))), self.device)
        )
        with self._timed("decode"):
            for _ in range(steps):
                if graph is not None:
                    graph.replay()
                else:
                    self._step(bucket)
        self.steps += steps

    def _step(self, bucket: int) -> None:
        """One decode step for the rows of `bucket`, all on the device (graph-capturable)."""
        m, scratch = self.model, self.slots
        rows = self.rows[bucket]
        if m.kernels is not None:
            ids, pos, slot, lens, keys, count = m.kernels.step_begin(
                rows, self.done, self.tok, self.pos, self.count, self.key, scratch
            )
        else:
            live = ~self.done[rows]
            ids, pos, count, keys = self.tok[rows], self.pos[rows], self.count[rows], self.key[rows]
            lens = torch.where(live, pos + 1, 0)
            slot = torch.where(live, rows, scratch)  # idle rows write into the scratch slot
        splits = self._splits(bucket)
        hidden = m.forward(ids, pos, slot, self.cache, self.rope, m.decode_attend(slot, lens, splits))
        logits = m.logits(hidden)
        nxt = sampling.sample(logits, keys, count, *self.params, kernels=m.kernels)
        if self.params[0] > 0:  # greedy requests of a sampled session: the argmax, in the same graph
            nxt = torch.where(self.greedy[rows], logits.argmax(dim=-1), nxt)
        if m.kernels is not None:
            m.kernels.step_end(
                rows,
                nxt,
                slot,
                lens,
                pos,
                count,
                self.done,
                self.tok,
                self.pos,
                self.count,
                self.maxn,
                self.out,
                self.eos,
            )
            return
        step = live.long()
        self.out[slot, count.clamp(max=self.cap - 1)] = nxt
        self.tok[slot] = nxt
        self.pos[slot] = pos + step
        self.count[slot] = count + step
        self.done[slot] = ~live | self._is_eos(nxt) | (count + step >= self.maxn[rows])

    def _splits(self, bucket: int) -> int:
        """Split the sequence over more programs when (rows x kv heads) alone would leave the GPU idle."""
        if not self.cuda:
            return 1
        sms = torch.cuda.get_device_properties(self.device).multi_processor_count
        programs = bucket * self.model.kv_heads
        splits = 1
        while programs * splits < 4 * sms and splits < 16:
            splits *= 2
        return splits

    def _graph(self, bucket: int):
        key = (self.params, self._eos_key)
        if self._graph_params != key:
            self._graphs.clear()
            self._pool = torch.cuda.graph_pool_handle()  # the old graphs' pool went with them
            self._graph_params = key
        if bucket not in self._graphs:
            self.rows[bucket].fill_(self.slots)  # warm-up and capture touch only the scratch slot
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                self._step(bucket)  # compiles the kernels, sets up cuBLAS
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                self._step(bucket)
            self._graphs[bucket] = graph
        return self._graphs[bucket]

    # ---- collect: hand finished sequences back ---------------------------------------------------

    def _collect(self) -> list[tuple[int, int, Output]]:
        owned = [s for s, o in enumerate(self.owner) if o is not None]
        if not owned:
            return []
        idx = torch.tensor(owned, device=self.device)
        state = torch.stack([self.done[idx].long(), self.count[idx]]).cpu()
        done, count = state[0].tolist(), state[1].tolist()
        want = [k for k, s in enumerate(owned) if done[k] or self.stop]
        tokens = {}
        if want:
            width = max(count[k] for k in want)
            rows = self.out[idx[torch.tensor(want, device=self.device)], :width].cpu().tolist()
            tokens = {owned[k]: row[: count[k]] for k, row in zip(want, rows)}
        finished = []
        for k, s in enumerate(owned):
            i, j = self.owner[s]
            self.left[s] = 0 if done[k] else self.reqs[i].max_new - count[k]
            hit = self._find_stop(tokens[s], self.checked[s]) if self.stop else None
            if hit is not None:
                cut, text = hit
                out = Output(tokens[s][:cut], "stop", text)
            elif done[k]:
                toks = tokens[s]
                eos = not self.ignore_eos and toks[-1] in self.eos_ids
                out = Output(toks, "stop" if eos else "length")
            else:
                self.checked[s] = count[k]
                continue
            finished.append((i, j, out))
            self.owner[s] = None
        return finished

    def _find_stop(self, toks: list[int], checked: int) -> tuple[int, str] | None:
        """(tokens to keep, stop string) for the first token whose text completes a stop string."""
        if len(toks) <= checked:
            return None
        base = max(0, checked - 32)  # a window of earlier tokens: a stop string may span the boundary

        def first(end: int) -> str | None:
            text = self.decode(toks[base:end])
            hits = [(text.find(s), s) for s in self.stop if s in text]
            return min(hits)[1] if hits else None

        if first(len(toks)) is None:
            return None
        lo, hi = checked, len(toks)  # the shortest prefix that contains a stop string
        while lo < hi:
            mid = (lo + hi) // 2
            if first(mid) is not None:
                hi = mid
            else:
                lo = mid + 1
        return lo, first(lo)
