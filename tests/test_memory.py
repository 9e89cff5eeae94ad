import pytest
import torch

from secondtry.log import Log
from secondtry.memory import fit_batch, is_oom, smaller_batch


class Warnings(Log):
    def __init__(self):
        self.seen = []

    def warn(self, message):
        self.seen.append(message)


def test_smaller_batch_keeps_the_effective_batch():
    assert smaller_batch(8, 1) == (4, 2) and smaller_batch(6, 1) == (3, 2) and smaller_batch(3, 2) == (1, 6)
    for batch, accum in [(8, 1), (6, 1), (5, 3), (2, 2)]:
        b, a = smaller_batch(batch, accum)
        assert b * a == batch * accum and b <= max(1, batch // 2)


def test_fit_batch_halves_until_it_fits_and_says_so():
    calls, log = [], Warnings()

    def step(batch, accum):
        calls.append((batch, accum))
        if batch > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return "trained"

    assert fit_batch(step, 8, 1, log) == (
        "trained",
        [{"batch_size": 4, "grad_accum": 2}, {"batch_size": 2, "grad_accum": 4}],
    )
    assert (
        calls == [(8, 1), (4, 2), (2, 4)]
        and "batch 8" in log.seen[0]
        and "batch 2 x accumulation 4" in log.seen[1]
    )


def test_fit_batch_gives_up_at_batch_1_and_passes_other_errors_on():
    def never(batch, accum):
        raise RuntimeError("CUDA error: out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        fit_batch(never, 2, 1)
    with pytest.raises(ValueError):
        fit_batch(lambda b, a: (_ for _ in ()).throw(ValueError("bad")), 8, 1)
    assert is_oom(torch.cuda.OutOfMemoryError("x")) and not is_oom(RuntimeError("shape mismatch"))
