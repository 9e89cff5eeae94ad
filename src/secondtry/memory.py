"""Out of GPU memory: recognise it, free what can be freed, and go on with a smaller batch.

Generation (`backends/hf.py`) halves its batch and regenerates the batch that failed; training
(`training/sft.py`) goes through `fit_batch`: halve the per-device batch, double gradient
accumulation (the effective batch stays the same), and start again from the last checkpoint.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TypeVar

import torch

from .log import Log

T = TypeVar("T")


def is_oom(error: BaseException) -> bool:
    """A CUDA out-of-memory error (some kernels raise a plain RuntimeError saying so)."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def smaller_batch(batch: int, accum: int) -> tuple[int, int]:
    """The largest batch up to half of `batch` that divides the effective batch, and its accumulation.

    >>> smaller_batch(8, 1), smaller_batch(6, 1), smaller_batch(3, 2)
    ((4, 2), (3, 2), (1, 6))
    """
    effective = batch * accum
    new = next(b for b in range(max(1, batch // 2), 0, -1) if effective % b == 0)
    return new, effective // new


def fit_batch(
    run: Callable[[int, int], T], batch: int, accum: int, log: Log = Log(), what: str = "training"
) -> tuple[T, list[dict[str, int]]]:
    """`run(batch, accum)`, again with a smaller batch after each out-of-memory error.

    Returns run's result and the back-offs taken ({"batch_size", "grad_accum"} after each).
    `run` must start from a clean state (reload its model; resume from a checkpoint).
    """
    backoffs: list[dict[str, int]] = []
    while True:
        try:
            return run(batch, accum), backoffs
        except Exception as e:
            if not is_oom(e) or batch == 1:
                raise
        free_memory()  # outside the except block: the traceback no longer pins the failed step's tensors
        old = batch
        batch, accum = smaller_batch(batch, accum)
        backoffs.append({"batch_size": batch, "grad_accum": accum})
        log.warn(
            f"{what}: out of GPU memory at batch {old}; going on with batch {batch} x accumulation {accum} "
            f"(same effective batch)"
        )
