"""Caveats a run reveals about itself: each rule reads the run's records and, where its finding limits what the
run can claim, says so with the figure that triggered it and what would remove it.

One function per caveat, name -> rule in CAVEATS; a rule returns a Caveat or None. The experiment page
(report/page.py) lists them, and tests/report/test_caveats.py triggers and spares each one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..conditions import PRIVILEGED
from ..config import GAIN_POLICIES
from ..evaluation.metrics import cut_shares
from ..records import FilterStats, RoundResult
from ..store import read_jsonl
from .prose import Const, Fig, Piece, count, delta, round_name, round_no, share
from .runs import RunView
from .tables import gain, sharpening


@dataclass(frozen=True)
class Caveat:
    name: str  # the rule's name in CAVEATS
    title: str
    finding: tuple[Piece, ...]  # what the run shows, with the figure that triggered the rule
    remedy: str  # what would remove the caveat


@dataclass(frozen=True)
class Context:
    run: RunView
    seeds: int  # runs of this condition (seeds) in the run's folder, itself included


CUT_SHARE = 0.10  # generations cut at the length limit: above this share of a set, a caveat
MIN_EXAMPLES = 100  # a round trained on fewer examples than this is a small training set
TOP_SHARE = 0.5  # ... or one where a tenth of the problems give more than this share of the examples
LUCKY_RISE = 0.05  # the lucky share of kept retries rising by more than this from the first round to the last


def _trained(v: RunView) -> list:
    return [r for r in v.history if r.trained]


def one_seed(c: Context) -> Caveat | None:
    """One seed: the gains may be this training run's luck."""
    if c.seeds > 1:
        return None
    return Caveat(
        "one_seed",
        "One seed",
        (
            "This condition ran with one seed, so every interval on this page is over test problems within "
            "one training run: a rerun with another seed (another data order, samples and adapter start) "
            "may land elsewhere.",
        ),
        "Run it with --seeds 3 and compare the seeds (secondtry compare), which tests at the level of seeds.",
    )


def chosen_on_test(c: Context) -> Caveat | None:
    """The reported round, or the decision to stop, was taken on the test set."""
    v = c.run
    held = v.cfg.get("evaluation.validation", 0) or v.cfg.get("evaluation.validation_task")
    stops_on_test = (
        not held and bool(set(v.cfg.get("stopping.policies", [])) & GAIN_POLICIES) and len(_trained(v)) > 1
    )
    if not v.optimistic and not stops_on_test:
        return None
    what: tuple[Piece, ...] = ("the stopping policies read the test set's gains",)
    if v.optimistic:  # summary.json's "rounds": the rounds run after the base
        what = (
            "the reported round (",
            *round_name(v.best.round),
            ") was picked on the test set itself among the base and the ",
            Fig(str(v.summary.rounds if v.summary else 0), "summary.json", "rounds", 1.0, 0),
            " round(s) run",
        )
    return Caveat(
        "chosen_on_test",
        "Chosen on the test set",
        (
            "With no validation split, ",
            *what,
            ", so its figures are biased upward (the maximum of several noisy looks at the same problems).",
        ),
        "Hold out a validation split (evaluation.validation: N, or evaluation.validation_task): it picks "
        "the round and feeds the stopping policies, and the test set is only reported on.",
    )


def _examples(r: RoundResult) -> FilterStats | None:
    """What the filter kept in round r (None for the base, or a round.json without the figure)."""
    return r.figures.train.examples if r.figures.train else None


def gain_within_noise(c: Context) -> Caveat | None:
    """A round's change, read as a gain or a regression, whose CI includes 0."""
    noisy = [
        r
        for r in _trained(c.run)
        if (d := r.figures.test and r.figures.test.delta_from_prev) is not None
        and d.value
        and not d.excludes_zero()
    ]
    if not noisy:
        return None
    listed: list[Piece] = []
    for i, r in enumerate(noisy):
        listed += ["; " if i else "", *round_name(r.round), ": ", delta(r, "delta_from_prev"), " pp"]
    return Caveat(
        "gain_within_noise",
        "Changes within noise",
        (
            "These rounds changed the metric by amounts whose 95% CI includes 0, so they are neither a "
            "gain nor a regression at that level: ",
            *listed,
            ".",
        ),
        "More test problems (a narrower CI), or more seeds to see whether the change repeats.",
    )


def sharpened(c: Context) -> Caveat | None:
    """A sampled gain without a greedy gain: sharpening, not a new skill."""
    best = c.run.best
    if not best.round or not sharpening(gain(best, "pass1_sampled"), gain(best, "pass1_greedy")):
        return None
    return Caveat(
        "sharpening",
        "Sharpening",
        (
            "Sampled pass@1 rose by ",
            delta(best, "gains.pass1_sampled.from_base"),
            " pp but greedy pass@1 changed by ",
            delta(best, "gains.pass1_greedy.from_base"),
            " pp: the rounds mostly made sampling pick what greedy decoding already picked.",
        ),
        "Read greedy pass@1 (or a lower sampling temperature) beside sampled pass@1; a gain that shows "
        "in both is a gain in what the model can do.",
    )


CUT_KEYS = {
    "training attempts": "train.cut_at_length",
    "test": "eval.cut_at_length",
    "validation": "validation.eval.cut_at_length",
    "transfer": "transfer.eval.cut_at_length",
}
CUT_NAMES = {
    "training attempts": "training attempts",
    "test": "test-set generations",
    "validation": "validation-set generations",
    "transfer": "transfer-set generations",
}


def cut_at_length(c: Context) -> Caveat | None:
    """Many generations ran to the length limit."""
    worst = [
        (r, name, value) for r in c.run.history for name, value in cut_shares(r.figures) if value > CUT_SHARE
    ]
    if not worst:
        return None
    r, name, _ = max(worst, key=lambda x: x[2])
    return Caveat(
        "cut_at_length",
        "Generations cut at the length limit",
        (
            share(r, CUT_KEYS[name]),
            f" of the {CUT_NAMES[name]} of ",
            *round_name(r.round),
            " ran to max_new_tokens (above ",
            Const(f"{CUT_SHARE:.0%}", "secondtry.report.caveats.CUT_SHARE"),
            "); they are judged incorrect, so accuracy measures the length limit as well as the model.",
        ),
        "Raise max_new_tokens, or check that the model ends its turns (its EOS token).",
    )


def small_training_set(c: Context) -> Caveat | None:
    """A round trained on few examples, or on examples from few problems."""
    for r in _trained(c.run):
        kept = _examples(r).kept if _examples(r) else 0
        if kept < MIN_EXAMPLES:
            return Caveat(
                "small_training_set",
                "A small training set",
                (
                    "Round ",
                    round_no(r.round),
                    " trained on ",
                    count(r, "train.examples.kept"),
                    " examples, below ",
                    Const(str(MIN_EXAMPLES), "secondtry.report.caveats.MIN_EXAMPLES"),
                    ": a set that small, "
                    "drawn from the problems a retry happened to solve, can overfit and leans towards the "
                    "easiest of the failures.",
                ),
                "More training problems, more retries (conditions.retries), or stop earlier "
                "(stopping.min_retry_yield).",
            )
        file = c.run.path / f"round_{r.round}" / "sft.jsonl"
        per_problem = Counter(e["problem_id"] for e in read_jsonl(file)) if file.exists() else Counter()
        top = sorted(per_problem.values(), reverse=True)[: max(1, len(per_problem) // 10)]
        if per_problem and len(per_problem) >= 10 and sum(top) / sum(per_problem.values()) > TOP_SHARE:
            return Caveat(
                "small_training_set",
                "A training set dominated by a few problems",
                (
                    "In ",
                    *round_name(r.round),
                    ", the most frequent tenth of the problems gave more than ",
                    Const(f"{TOP_SHARE:.0%}", "secondtry.report.caveats.TOP_SHARE"),
                    " of the ",
                    count(r, "train.examples.kept"),
                    " examples (round_k/sft.jsonl).",
                ),
                "Cap examples per problem (filter.max_per_problem).",
            )
    return None


def lucky_rising(c: Context) -> Caveat | None:
    """The share of kept retries that reached the right answer through a wrong step grows round after round."""
    lucky = {
        r.round: e.lucky_share
        for r in c.run.history
        if r.round and (e := _examples(r)) is not None and e.lucky_share is not None
    }
    rounds = [r for r in c.run.history if r.round in lucky]
    if len(rounds) < 2:
        return None
    first, last = rounds[0], rounds[-1]
    if lucky[last.round] - lucky[first.round] <= LUCKY_RISE:
        return None
    kept = (
        "filter.require: steps drops them"
        if c.run.cfg.get("filter.require") == "steps"
        else "they are kept and trained on (filter.require: answer)"
    )
    return Caveat(
        "lucky_rising",
        "More lucky retries each round",
        (
            "The share of right retries with a wrong step rose from ",
            share(first, "train.examples.lucky_share"),
            " (",
            *round_name(first.round),
            ") to ",
            share(last, "train.examples.lucky_share"),
            " (",
            *round_name(last.round),
            f"); {kept}.",
        ),
        "Check steps (filter.require: steps) where the verifier can, and watch whether later rounds "
        "learn from luck.",
    )


def no_transfer(c: Context) -> Caveat | None:
    """A test gain that does not carry over to another distribution, or no transfer set to check it."""
    best = c.run.best
    found = best.figures.test.delta_from_base if best.figures.test else None
    if (
        not best.round
        or found is None
        or not found.excludes_zero()
        or found.value is None
        or found.value <= 0
    ):
        return None
    if not any(r.figures.transfer is not None for r in c.run.history):
        return Caveat(
            "no_transfer",
            "Same test set every round",
            (
                "Every round was evaluated on the same test set and on nothing else, so part of the gain may be "
                "the model narrowing to that set's distribution.",
            ),
            "Add a transfer_task: a second test set from another distribution, evaluated every round.",
        )
    transfer = best.figures.transfer.delta_from_base if best.figures.transfer else None
    if transfer is not None and transfer.ci[0] is not None and transfer.ci[0] > 0:
        return None
    return Caveat(
        "no_transfer",
        "No transfer gain",
        (
            "The test gain (",
            delta(best, "delta_from_base"),
            " pp) did not carry over to the transfer set (",
            delta(best, "transfer.delta_from_base"),
            " pp): it may be narrowing to the test distribution.",
        ),
        "Read the gain as specific to this distribution.",
    )


def privileged(c: Context) -> Caveat | None:
    """The retry prompt showed the gold answer."""
    retry = c.run.cfg.get("conditions.retry", "retry")
    if retry not in PRIVILEGED:
        return None
    return Caveat(
        "privileged",
        "Privileged information",
        (
            f"The training retries saw the {PRIVILEGED[retry]} (conditions.retry: {retry}): the pipeline had "
            "information a deployed model never has.",
        ),
        "Compare with the same pipeline on the bare retry prompt (the iterative-retry presets).",
    )


def retry_turn_breaks(c: Context) -> Caveat | None:
    """After training, a retry turn given to every problem breaks more right answers than it fixes."""
    net = {
        r.round: f.net
        for r in c.run.history
        if r.figures.eval and (f := r.figures.eval.flips) and f.net.value is not None
    }
    rounds = [r for r in c.run.history if r.round in net]
    bad = [r for r in rounds if r.round and (hi := net[r.round].ci[1]) is not None and hi < 0]
    if not bad:
        return None
    base = next((r for r in rounds if r.round == 0), None)
    return Caveat(
        "retry_turn_breaks",
        "The retry turn turned harmful",
        (
            "Given to every test problem after ",
            *round_name(bad[0].round),
            ", the retry turn changed accuracy by ",
            delta(bad[0], "eval.flips.net", "retry"),
            " pp",
            *((" (the base model's: ", delta(base, "eval.flips.net", "retry"), " pp)") if base else ()),
            ": the trained model's second tries break right answers, so later rounds mine a weaker teacher.",
        ),
        "Train on the second turn too, or stop before the retry skill decays.",
    )


def lora_only(c: Context) -> Caveat | None:
    """The evidence is for LoRA adapters of one size on one model."""
    if c.run.cfg.get("training.method", "lora") != "lora":
        return None
    return Caveat(
        "lora_only",
        "LoRA only",
        (
            "Every round trained a LoRA adapter (rank ",
            Fig(str(c.run.cfg.get("training.rank", 16)), "config.yaml", "training.rank", 1.0, 0),
            ") of one model: the number of rounds that pays, and the gains, may differ with full "
            "fine-tuning, another rank, model size or data volume.",
        ),
        "Repeat with training.method: full or another rank before generalising.",
    )


CAVEATS: dict[str, Callable[[Context], Caveat | None]] = {
    "one_seed": one_seed,
    "chosen_on_test": chosen_on_test,
    "gain_within_noise": gain_within_noise,
    "sharpening": sharpened,
    "cut_at_length": cut_at_length,
    "small_training_set": small_training_set,
    "lucky_rising": lucky_rising,
    "no_transfer": no_transfer,
    "privileged": privileged,
    "retry_turn_breaks": retry_turn_breaks,
    "lora_only": lora_only,
}


def seeds_of(run: RunView) -> int:
    """Runs of this run's condition in its folder: <condition>-seed<N> siblings with results, itself included."""
    from .compare import condition_of

    name = condition_of(run.path)
    siblings = (
        [
            p
            for p in Path(run.path).parent.iterdir()
            if p.is_dir() and condition_of(p) == name and (p / "round_0" / "round.json").exists()
        ]
        if name != run.name
        else [run.path]
    )
    return max(1, len(siblings))


def caveats(run: RunView) -> list[Caveat]:
    """Every caveat the run's records trigger, in CAVEATS order."""
    context = Context(run, seeds_of(run))
    return [c for rule in CAVEATS.values() if (c := rule(context)) is not None]
