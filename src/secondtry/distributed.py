"""One experiment over several processes: data-parallel generation and verification, DDP training.

Launch with torchrun; `secondtry run` reads the world from torchrun's environment (RANK,
WORLD_SIZE, LOCAL_RANK) and needs no other setting:

    torchrun --nproc-per-node 4 -m secondtry.cli run CONFIG                     # one node, 4 GPUs
    torchrun --nnodes 2 --nproc-per-node 8 --node-rank R \\
             --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m secondtry.cli run CONFIG   # two nodes

Each process (a rank) drives one GPU (its LOCAL_RANK) with its own sampler and verifier pool.
Generation stages go in waves of one chunk per rank (chunk c on rank c mod world); after each
wave every rank gathers the wave's records, so all ranks hold the same records, decide the same
and compute the same figures. Training runs under DDP (TRL / accelerate): the config's
`training.batch_size` stays the global batch, split over the ranks.

Rank 0 alone writes the run directory (records, chunk checkpoints, models, manifest); the other
ranks read it, so with several nodes it must live on a filesystem they all mount. On a CPU the
processes talk over gloo, on GPUs over NCCL.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def active() -> bool:
    """Several processes, with their process group up."""
    return dist.is_initialized() and dist.get_world_size() > 1


def init() -> bool:
    """Join torchrun's process group (NCCL on GPUs, gloo on a CPU); False when run as one process."""
    if world_size() <= 1:
        return False
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return True


def barrier() -> None:
    if active():
        dist.barrier()


def gather(obj: T) -> list[T]:
    """Every rank's `obj`, in rank order, on every rank (one process: [obj])."""
    if not active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def from_main(make: Callable[[], T]) -> T:
    """`make()` run on rank 0 only, its result (or the exception it raised) on every rank."""
    if not active():
        return make()
    box: list[Any] = [None]
    if is_main():
        try:
            box[0] = (True, make())
        except Exception as e:  # the others raise it too, rather than wait forever
            box[0] = (False, e)
    dist.broadcast_object_list(box, src=0)
    ok, value = box[0]
    if not ok:
        raise value
    return value
