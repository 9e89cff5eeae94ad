"""Each caveat rule, triggered by a run that shows its finding and spared by one that does not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from round_records import est, round_of
from secondtry.records import RoundResult, RunSummary
from secondtry.report.caveats import CAVEATS, MIN_EXAMPLES, Context, caveats
from secondtry.report.prose import Fig, markdown
from secondtry.report.runs import RunConfig, RunView


def rnd(k: int, trained: bool = True, **figures) -> RoundResult:
    base = {"eval": {"pass1_sampled": est(0.5, 0.4, 0.6), "cut_at_length": 0.0}}
    return round_of(k, trained, {**base, **figures})


def again(r: RoundResult, **figures) -> RoundResult:
    """Round r with some of its figures replaced."""
    return round_of(r.round, r.trained, {**r.figures.to_json(), **figures})


def train(kept=500, lucky=None, cut=0.0):
    return {
        "examples": {"kept": kept, "lucky_share": lucky, "rejected": {}},
        "cut_at_length": cut,
        "retry_yield": est(0.4, 0.3, 0.5),
        "first_correct": est(0.5, 0.4, 0.6),
        "problems": 1000,
        "frontier": 500,
    }


def view(tmp_path: Path, history, cfg=None, summary=None) -> RunView:
    cfg = cfg.data if isinstance(cfg, RunConfig) else cfg
    cfg = RunConfig(
        {
            "training": {"method": "lora", "rank": 16},
            "evaluation": {"validation": 100},
            "stopping": {"policies": ["max_rounds"]},
            **(cfg or {}),
        }
    )
    best = max(history, key=lambda r: r.figures.eval["pass1_sampled"].value if r.figures.eval else 0).round
    said = {
        "best_round": best,
        "chosen_on": "validation",
        "optimistic": False,
        "rounds": len(history) - 1,
        **(summary or {}),
    }
    top = history[said["best_round"]]
    return RunView(
        tmp_path,
        cfg,
        list(history),
        RunSummary(
            name=tmp_path.name,
            metric="pass1_sampled",
            best_model=top.model,
            best_value=top.figures.eval["pass1_sampled"],
            stopped="max_rounds",
            **said,
        ),
    )


def fired(v: RunView, seeds: int = 3) -> set[str]:
    return {name for name, rule in CAVEATS.items() if rule(Context(v, seeds))}


def gains(d, greedy=None):
    g = {"pass1_sampled": {"from_base": d, "from_prev": d}}
    if greedy:
        g["pass1_greedy"] = {"from_base": greedy, "from_prev": greedy}
    return g


def quiet_run(tmp_path, **extra):
    """A run that gives no caveat but those asked for: a real gain in both metrics, carried over to the transfer
    set, chosen on validation, large training sets, full fine-tuning."""
    up = est(0.1, 0.05, 0.15)
    r1 = rnd(
        1,
        train=train(),
        delta_from_base=up,
        delta_from_prev=up,
        gains=gains(up, est(0.05, 0.02, 0.08)),
        transfer={"delta_from_base": est(0.04, 0.01, 0.07)},
        eval={"pass1_sampled": est(0.6, 0.5, 0.7), "cut_at_length": 0.0},
    )
    cfg = {"training": {"method": "full"}, **extra.pop("cfg", {})}
    return view(tmp_path, [rnd(0, False, transfer={}), r1], cfg, **extra)


def test_a_quiet_run_fires_no_rule(tmp_path):
    assert fired(quiet_run(tmp_path)) == set()


@pytest.mark.parametrize("rule", sorted(CAVEATS))
def test_each_rule_fires_on_its_finding_and_only_there(tmp_path, rule):
    quiet = quiet_run(tmp_path)
    r0, r1 = quiet.history
    seeds = 3
    if rule == "one_seed":
        v, seeds = quiet, 1
    elif rule == "chosen_on_test":
        v = quiet_run(tmp_path, summary={"optimistic": True, "chosen_on": "test"})
    elif rule == "gain_within_noise":
        noisy = est(0.02, -0.01, 0.05)
        v = view(tmp_path, [r0, again(r1, delta_from_prev=noisy)], quiet.cfg)
    elif rule == "sharpening":
        g = gains(est(0.1, 0.05, 0.15), est(0.0, -0.01, 0.01))
        v = view(tmp_path, [r0, again(r1, gains=g)], quiet.cfg)
    elif rule == "cut_at_length":
        v = view(tmp_path, [r0, again(r1, train=train(cut=0.3))], quiet.cfg)
    elif rule == "small_training_set":
        v = view(tmp_path, [r0, again(r1, train=train(kept=MIN_EXAMPLES - 1))], quiet.cfg)
    elif rule == "lucky_rising":
        r2 = round_of(2, True, {**r1.figures.to_json(), "train": train(lucky=0.4)})
        v = view(tmp_path, [r0, again(r1, train=train(lucky=0.1)), r2], quiet.cfg, summary={"best_round": 1})
    elif rule == "no_transfer":
        v = view(tmp_path, [r0, again(r1, transfer={"delta_from_base": est(0.0, -0.03, 0.03)})], quiet.cfg)
    elif rule == "privileged":
        v = quiet_run(tmp_path, cfg={"conditions": {"retry": "gold_hint"}})
    elif rule == "retry_turn_breaks":
        e0, e1 = r0.figures.eval.to_json(), r1.figures.eval.to_json()
        base = again(r0, eval={**e0, "flips": {"net": est(0.02, -0.01, 0.05)}})
        v = view(
            tmp_path, [base, again(r1, eval={**e1, "flips": {"net": est(-0.05, -0.08, -0.02)}})], quiet.cfg
        )
    elif rule == "lora_only":
        v = quiet_run(tmp_path, cfg={"training": {"method": "lora", "rank": 8}})
    else:
        raise AssertionError(f"no test for the caveat rule {rule}")
    assert fired(v, seeds) == {rule}
    caveat = CAVEATS[rule](Context(v, seeds))
    assert caveat.name == rule and caveat.title and caveat.remedy and markdown(list(caveat.finding))


def test_a_small_training_set_can_also_be_a_few_problems_many_times(tmp_path):
    folder = tmp_path / "round_1"
    folder.mkdir()
    rows = [{"problem_id": "p0"}] * 400 + [{"problem_id": f"p{i}"} for i in range(1, 120)]
    (folder / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    quiet = quiet_run(tmp_path)
    r0, r1 = quiet.history
    v = view(tmp_path, [r0, again(r1, train=train(kept=len(rows)))], quiet.cfg)
    caveat = CAVEATS["small_training_set"](Context(v, 3))
    assert caveat and "dominated" in caveat.title


def test_stopping_on_the_test_sets_gains_is_a_caveat_even_when_the_round_was_not_picked_there(tmp_path):
    quiet = quiet_run(tmp_path)
    r0, r1 = quiet.history
    r2 = round_of(2, True, r1.figures)
    v = view(
        tmp_path,
        [r0, r1, r2],
        {
            "training": {"method": "full"},
            "evaluation": {"validation": 0},
            "stopping": {"policies": ["negative_gain", "max_rounds"]},
        },
        summary={"chosen_on": "test", "optimistic": False},
    )
    assert "chosen_on_test" in fired(v)


def test_the_figures_of_a_finding_name_their_records(tmp_path):
    v = quiet_run(tmp_path, summary={"optimistic": True, "chosen_on": "test"})
    finding = CAVEATS["chosen_on_test"](Context(v, 3)).finding
    figs = [p for p in finding if isinstance(p, Fig)]
    assert figs and all(p.file in ("summary.json", "round_1/round.json") for p in figs)
    assert [c.name for c in caveats(v)] == ["one_seed", "chosen_on_test"]  # alone in its folder: one seed
