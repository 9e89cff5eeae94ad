"""A generation engine over transformers weights (Llama, Qwen2, Qwen3 families), built for the GPU.

Decode is memory-bound: each step reads the weights once and every live sequence's KV. The
engine spends its time there and little else:

  model.py      the model's own modules and weights, run over flat token batches; only the
                cache and attention are replaced (and, on the GPU, the glue between the matrix
                products: fused Triton kernels for norm+residual, q/k-norm+rotary+KV write, SiLU*up)
  attention.py  KV cache [layers, k|v, slots, kv_heads, max_len, head_dim]; prompts through SDPA,
                decode through a Triton kernel that reads only each slot's live KV
  sampling.py   temperature, top-k, top-p, Gumbel-max with noise keyed by (request, token index):
                reproducible whatever the batch, on the device, in the CUDA graph
  scheduler.py  Engine: slots sized from free memory, continuous refill, prefix sharing for the
                n samples of a prompt, CUDA-graphed decode steps in bucket sizes, a host sync
                every few steps, out-of-memory back-off (halve the slots, requeue, go on)
  kernels.py    the Triton kernels (imported only when used)

On the CPU (or without Triton) the same engine runs the torch path: the model's modules and
SDPA, no graphs. Chat templates are the caller's business: the engine takes token ids.

    engine = Engine(model, eos_ids=[tok.eos_token_id])
    outs = engine.generate(prompt_ids, n=4, temperature=0.7, max_new_tokens=512, seed=0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ...types import Completion
from .model import unsupported
from .scheduler import Engine, Output

__all__ = ["Engine", "Output", "unsupported", "completion", "generate_completions"]


def completion(tokenizer, out: Output, prompt_tokens: int) -> Completion:
    """The backend record of one output: text without the EOS token, cut before a stop string."""
    body = out.tokens[:-1] if out.finish_reason == "stop" and out.stop is None else out.tokens
    text = tokenizer.decode(body, skip_special_tokens=True)
    if out.stop is not None and out.stop in text:
        text = text[: text.index(out.stop)]
    return Completion(
        text=text, n_tokens=len(out.tokens), finish_reason=out.finish_reason, prompt_tokens=prompt_tokens
    )


def generate_completions(
    engine: Engine,
    tokenizer,
    prompt_ids: Sequence[Sequence[int]],
    params,
    n: int = 1,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    stop: Sequence[str] = (),
    seeds: Sequence[int] | None = None,
) -> list[list[Completion]]:
    """What HFSampler.generate returns, from the engine. params: a SamplingConfig (or anything with its fields).

    `seeds`: one per prompt (e.g. from the problem id), so a problem samples the same tokens in any call."""
    outs = engine.generate(
        prompt_ids,
        n=n,
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=params.top_k,
        max_new_tokens=params.max_new_tokens,
        seed=seed,
        seeds=seeds,
        progress=progress,
        stop=stop,
        decode=lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
    )
    return [[completion(tokenizer, o, len(ids)) for o in row] for ids, row in zip(prompt_ids, outs)]
