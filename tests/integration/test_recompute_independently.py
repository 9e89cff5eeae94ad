"""Every figure of round.json, summary.json and `compare`'s tables, recomputed from the JSONL records by code
written here from the definitions in docs/conditions.md ("How each figure is computed").

This module imports nothing of secondtry: the runs are made through the command line (tests/conftest.py:
report_runs: the demo's config, a three-seed comparison of two presets, tiny-cpu), and every figure is
computed again with numpy and scipy alone, so an error in the figure code cannot hide in its own check.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats as sps

pytestmark = pytest.mark.timeout(2400)  # the shared runs (tests/conftest.py: report_runs) are made once
Z = float(sps.norm.ppf(0.975))
SEEDS = (42, 43, 44)


@pytest.fixture(scope="module")
def root(report_runs) -> Path:
    """The report tests' runs (tests/conftest.py: report_runs), made through the command line."""
    return report_runs


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ----------------------------------------------------------------------------- the definitions, written again


def boot_mean_ci(x: np.ndarray, n_boot: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, 256):
        stop = min(n_boot, start + 256)
        means[start:stop] = x[rng.integers(0, x.size, size=(stop - start, x.size))].mean(axis=1)
    return [float(v) for v in np.quantile(means, [0.025, 0.975])]


def wilson(k: float, n: int) -> list[float]:
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z / (1 + Z * Z / n) * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return [max(0.0, centre - half), min(1.0, centre + half)]


def a_rate(values, n_boot: int, seed: int) -> dict:
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return {"value": None, "ci": [None, None], "n": 0, "method": None}
    k = float(x.sum())
    if np.all((x == 0) | (x == 1)) or min(k, x.size - k) < 5:
        return {"value": float(x.mean()), "ci": wilson(k, x.size), "n": x.size, "method": "wilson"}
    return {"value": float(x.mean()), "ci": boot_mean_ci(x, n_boot, seed), "n": x.size, "method": "bootstrap"}


def edge(x: np.ndarray) -> bool:
    return bool(x.min() >= 0 and x.max() <= 1) and min(float(x.sum()), x.size - float(x.sum())) < 5


def a_paired(before, after, n_boot: int, seed: int) -> dict:
    """after − before over the same problems: Newcombe's method 10 where both are right/wrong or either is near
    an edge, else the bootstrap of the differences."""
    a, b = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    binary = all(np.all((x == 0) | (x == 1)) for x in (a, b))
    if not (binary or edge(a) or edge(b)):
        return {
            "value": float((b - a).mean()),
            "ci": boot_mean_ci(b - a, n_boot, seed),
            "method": "bootstrap",
        }
    p1, p2 = b.mean(), a.mean()
    (l1, u1), (l2, u2) = wilson(b.sum(), b.size), wilson(a.sum(), a.size)
    phi = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0
    lo = p1 - p2 - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    hi = p1 - p2 + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return {"value": float((b - a).mean()), "ci": [max(-1.0, lo), min(1.0, hi)], "method": "newcombe"}


def a_mean(values, n_boot: int, seed: int) -> dict:
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return {"value": None, "ci": [None, None], "n": 0}
    return {"value": float(x.mean()), "ci": boot_mean_ci(x, n_boot, seed), "n": x.size}


def ratio_boot(columns, statistic, n_boot: int, seed: int) -> dict:
    x = np.asarray(columns, dtype=float)
    value = statistic(x.mean(axis=1))
    if value is None:
        return {"value": None, "n": x.shape[1]}
    rng = np.random.default_rng(seed)
    draws = [
        statistic(x[:, rng.integers(0, x.shape[1], size=x.shape[1])].mean(axis=1)) for _ in range(n_boot)
    ]
    kept = [d for d in draws if d is not None and math.isfinite(d)]
    lo, hi = np.quantile(kept, [0.025, 0.975])
    return {
        "value": value,
        "ci": [float(lo), float(hi)],
        "n": x.shape[1],
        "undefined_draws": n_boot - len(kept),
    }


def mcnemar_p(b: int, c: int) -> float:
    n = b + c
    return 1.0 if n == 0 else min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n)


def vectors(records: list[dict]) -> dict[str, list[float]]:
    out = {
        "pass1_sampled": [sum(r["samples"]) / len(r["samples"]) for r in records],
        "pass_n_retry": [float(any(r["chain"])) for r in records],
    }
    if records[0]["greedy"] is not None:
        out["pass1_greedy"] = [float(r["greedy"]) for r in records]
    for k in records[0]["pass_at_k"]:
        n = len(records[0]["samples"])
        out[f"pass_at_{k}"] = [
            1.0
            if n - sum(r["samples"]) < int(k)
            else 1 - math.comb(n - sum(r["samples"]), int(k)) / math.comb(n, int(k))
            for r in records
        ]
    out["gap"] = [a - b for a, b in zip(out["pass_n_retry"], out["pass1_sampled"])]
    return out


def close(got, want, path: str = "") -> None:
    """Figures equal up to float rounding, recursively; keys of `want` must be in `got` (a dict of counts: the
    same keys)."""
    if isinstance(want, dict):
        assert isinstance(got, dict), path
        if path.endswith("rejected"):
            assert set(got) == set(want), f"{path}: {got} != {want}"
        for k, v in want.items():
            assert k in got, f"{path}.{k} missing"
            close(got[k], v, f"{path}.{k}")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            close(g, w, f"{path}[{i}]")
    elif isinstance(want, float) and want is not None and got is not None:
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), f"{path}: {got} != {want}"
    else:
        assert got == want, f"{path}: {got} != {want}"


def eval_figures(records: list[dict], attempts: list[dict], cfg: dict) -> dict:
    n_boot, seed, ev = cfg["evaluation"]["bootstrap"], cfg["seed"], cfg["evaluation"]
    v = vectors(records)
    out = {name: (a_mean if name == "gap" else a_rate)(x, n_boot, seed) for name, x in v.items()}
    out["retry_n"] = ev["retry_n"]
    out["cut_at_length"] = sum(a["finish_reason"] == "length" for a in attempts) / len(attempts)
    frontier = [r for r in records if not r["chain"][0]]
    if frontier and any(len(r["chain"]) > 1 for r in frontier):
        retry = [float(len(r["chain"]) > 1 and r["chain"][1]) for r in frontier]
        fresh = [float(r["samples"][1]) for r in frontier]
        b = sum(1 for f, r in zip(fresh, retry) if f and not r)
        c = sum(1 for f, r in zip(fresh, retry) if r and not f)
        out["retry_lift"] = {
            **a_paired(fresh, retry, n_boot, seed),
            "retry": a_rate(retry, n_boot, seed),
            "fresh": a_rate(fresh, n_boot, seed),
            "mcnemar": {"b": b, "c": c, "p_value": mcnemar_p(b, c)},
        }
    if ev["retry_all"]:
        first = [bool(r["chain"][0]) for r in records]
        second = [bool(r["chain"][1]) for r in records]
        w2r = sum(not a and b for a, b in zip(first, second))
        r2w = sum(a and not b for a, b in zip(first, second))
        out["flips"] = {
            "wrong_to_right": w2r,
            "right_to_wrong": r2w,
            "n": len(records),
            "net": a_paired(np.asarray(first, float), np.asarray(second, float), n_boot, seed),
            "wrong_to_right_rate": w2r / first.count(False) if False in first else None,
            "right_to_wrong_rate": r2w / first.count(True) if True in first else None,
            "mcnemar": {"b": r2w, "c": w2r, "p_value": mcnemar_p(r2w, w2r)},
        }
    return out


def gains(base, before_prev, prev, now, cfg: dict) -> dict:
    n_boot, seed, metric = cfg["evaluation"]["bootstrap"], cfg["seed"], cfg["evaluation"]["metric"]
    vb, vp, vn = vectors(base), vectors(prev), vectors(now)
    out = {
        "delta_from_base": a_paired(vb[metric], vn[metric], n_boot, seed),
        "delta_from_prev": a_paired(vp[metric], vn[metric], n_boot, seed),
        "gains": {
            m: {
                "from_base": a_paired(vb[m], vn[m], n_boot, seed),
                "from_prev": a_paired(vp[m], vn[m], n_boot, seed),
            }
            for m in ("pass1_sampled", "pass1_greedy")
            if m in vn
        },
    }
    out["absorbed_share"] = ratio_boot(
        [vb["gap"], vn["gap"]], lambda m: None if m[0] <= 0 else (m[0] - m[1]) / m[0], n_boot, seed
    )
    if before_prev is not None:
        vbp = vectors(before_prev)
        out["decay"] = ratio_boot(
            [vbp[metric], vp[metric], vn[metric]],
            lambda m: None if m[1] - m[0] <= 0 else (m[2] - m[1]) / (m[1] - m[0]),
            n_boot,
            seed,
        )
    # problems gained and lost on the headline metric: its per-problem value rose or fell (sampled: the share
    # of right samples), an exact sign test on them
    b = sum(x > y for x, y in zip(vp[metric], vn[metric]))
    c = sum(y > x for x, y in zip(vp[metric], vn[metric]))
    out["flips_vs_prev"] = {
        "metric": metric,
        "gained": c,
        "lost": b,
        "unchanged": len(now) - b - c,
        "p_value": mcnemar_p(b, c),
    }
    return out


def train_figures(attempts: list[dict], sft: list[dict], cfg: dict) -> dict:
    n_boot, seed = cfg["evaluation"]["bootstrap"], cfg["seed"]
    first = {
        a["problem_id"]: a["verdict"]["correct"]
        for a in attempts
        if a["kind"] == "first" and a["sample"] == 0
    }
    failed = [p for p, ok in first.items() if ok is False]
    solved = {a["problem_id"] for a in attempts if a["kind"] == "retry" and a["verdict"]["correct"] is True}
    cut = sum(a["finish_reason"] == "length" for a in attempts)
    rejected: dict[str, int] = {}
    retries = [a for a in attempts if a["kind"] == "retry"]
    seen, per_problem, kept = set(), {}, 0
    for a in retries:  # the filter, in attempt order: cut, unjudged, wrong, duplicate, over the cap, kept
        pid, text = a["problem_id"], a["completion"]
        why = (
            "cut"
            if a["finish_reason"] == "length"
            else "unjudged"
            if a["verdict"]["correct"] is None
            else "wrong"
            if not a["verdict"]["correct"]
            else "duplicate"
            if (pid, text) in seen
            else "over_cap"
            if per_problem.get(pid, 0) >= cfg["filter"]["max_per_problem"]
            else None
        )
        if why:
            rejected[why] = rejected.get(why, 0) + 1
        else:
            seen.add((pid, text))
            per_problem[pid] = per_problem.get(pid, 0) + 1
            kept += 1
    assert kept == len(sft)
    right = [a for a in retries if a["finish_reason"] != "length" and a["verdict"]["correct"]]
    lucky = sum(not all(a["verdict"]["steps"]) for a in right)
    firsts = [float(a["verdict"]["correct"] is True) for a in attempts if a["kind"] == "first"]
    return {
        "problems": len(first),
        "first_correct": a_rate([float(v is True) for v in first.values()], n_boot, seed),
        "unjudged": sum(v is None for v in first.values()),
        "first_samples": a_rate(firsts, n_boot, seed),
        "frontier": len(failed),
        "retried": len({a["problem_id"] for a in retries}),
        "retry_solved": len(solved),
        "retry_yield": a_rate([float(p in solved) for p in failed], n_boot, seed),
        "tokens_generated": sum(a["n_tokens"] for a in attempts),
        "cut": cut,
        "cut_at_length": cut / len(attempts),
        "examples": {
            "kept": len(sft),
            "rejected": {k: v for k, v in rejected.items() if v},
            "lucky_share": lucky / len(right) if right else None,
        },
    }


# ----------------------------------------------------------------------------- the checks


def run_dirs(root: Path) -> list[Path]:
    return sorted(
        p
        for folder in ("demo", "compare", "tiny")
        for p in (root / folder).iterdir()
        if (p / "summary.json").exists()
    )


def test_round_and_summary_figures_recompute_from_the_records(root):
    dirs = run_dirs(root)
    assert len(dirs) == 8
    for run in dirs:
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        summary = json.loads((run / "summary.json").read_text())
        rounds = [
            json.loads((run / f"round_{k}" / "round.json").read_text()) for k in range(summary["rounds"] + 1)
        ]
        sets = ["test"] + [s for s in ("validation", "transfer") if s in rounds[0]["figures"]]
        evals = {s: [] for s in sets}
        for r in rounds:
            folder, f = run / f"round_{r['round']}", r["figures"]
            if r["round"]:
                close(
                    f["train"],
                    train_figures(jsonl(folder / "attempts.jsonl"), jsonl(folder / "sft.jsonl"), cfg),
                    f"{run.name} round {r['round']} train",
                )
            if "eval" not in f:
                continue
            for s in sets:
                stem = "eval" if s == "test" else f"eval_{s}"
                records = jsonl(folder / f"{stem}.jsonl")
                mine = f if s == "test" else f[s]
                close(
                    mine["eval"],
                    eval_figures(records, jsonl(folder / f"{stem}_attempts.jsonl"), cfg),
                    f"{run.name} round {r['round']} {s}",
                )
                if r["round"]:
                    close(
                        mine,
                        gains(
                            evals[s][0],
                            evals[s][-2] if len(evals[s]) >= 2 else None,
                            evals[s][-1],
                            records,
                            cfg,
                        ),
                        f"{run.name} round {r['round']} {s} gains",
                    )
                evals[s].append(records)
        # the reported round, by the rule the config names
        metric, held = cfg["evaluation"]["metric"], cfg["evaluation"]["validation"]
        on = cfg["evaluation"]["select_on"] or ("validation" if held else "last")
        evaluated = [r for r in rounds if "eval" in r["figures"]]
        pick = (
            (lambda r: r["figures"]["eval"]) if on == "test" else (lambda r, on=on: r["figures"][on]["eval"])
        )
        best = (
            evaluated[-1]
            if on == "last"
            else max(evaluated, key=lambda r: (pick(r)[metric]["value"], -r["round"]))
        )
        assert summary["best_round"] == best["round"] and summary["chosen_on"] == on
        assert summary["optimistic"] == (on == "test" and len(evaluated) > 1)
        close(summary["best_value"], best["figures"]["eval"][metric])


# --- compare's tables, from comparison.md


def cells(markdown: str, title: str) -> list[list[str]]:
    block = markdown.split(title, 1)[1].split("\n\n", 2)[1]
    lines = [line for line in block.splitlines() if line.startswith("|")][2:]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def pct(value: float, ci, signed: bool = False) -> str:
    s = "+" if signed else ""
    return f"{value * 100:{s}.1f} [{ci[0] * 100:{s}.1f}, {ci[1] * 100:{s}.1f}]"


def t_ci(values: list[float], lo: float, hi: float) -> tuple[float, list[float]]:
    x = np.asarray(values)
    half = float(sps.t.ppf(0.975, x.size - 1)) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return float(x.mean()), [max(lo, x.mean() - half), min(hi, x.mean() + half)]


def test_compare_tables_recompute_from_the_records(root):
    text = (root / "compare" / "comparison.md").read_text()
    runs = {p.name: p for p in (root / "compare").iterdir() if (p / "summary.json").exists()}
    conds = ["tiny-cpu-star-try-again", "tiny-cpu-resampling"]

    def reported(name: str) -> tuple[dict, list[dict], list[dict]]:
        summary = json.loads((runs[name] / "summary.json").read_text())
        k = summary["best_round"]
        return (
            summary,
            jsonl(runs[name] / f"round_{k}" / "eval.jsonl"),
            jsonl(runs[name] / "round_0" / "eval.jsonl"),
        )

    by_cond = {}
    for row in cells(text, "Conditions compared"):
        by_cond[row[0]] = row
    for c in conds:
        row = by_cond[c]
        seeds = [f"{c}-seed{s}" for s in SEEDS]
        base = [np.mean(vectors(reported(s)[2])["pass1_sampled"]) for s in seeds]
        assert row[5] == pct(*t_ci(base, 0.0, 1.0))
        for col, metric in ((6, "pass1_sampled"), (7, "pass1_greedy")):
            deltas = [
                np.mean(vectors(reported(s)[1])[metric]) - np.mean(vectors(reported(s)[2])[metric])
                for s in seeds
            ]
            assert row[col] == pct(*t_ci(deltas, -1.0, 1.0), signed=True), (c, metric)
        assert "(optimistic)" in row[4] or row[4].startswith("base")
    budget = {row[0]: row for row in cells(text, "What each condition spent")}
    for c in conds:
        rounds = [json.loads((runs[f"{c}-seed{s}"] / "round_1" / "round.json").read_text()) for s in SEEDS]
        picked = [
            json.loads((runs[f"{c}-seed{s}"] / "summary.json").read_text())["best_round"] for s in SEEDS
        ]
        tokens = np.mean(
            [r["figures"]["train"]["tokens_generated"] if k else 0 for r, k in zip(rounds, picked)]
        )
        assert budget[c][2] == (f"{tokens / 1e3:.1f}k" if tokens >= 1e3 else f"{tokens:.0f}")
    # across seeds: a paired t-test on per-seed differences of the reported rounds
    pair = {(row[0], row[2]): row for row in cells(text, "Each condition against the first, across seeds")}
    within = {(row[0], row[2]): row for row in cells(text, "Within each seed")}
    for metric, short in (("pass1_sampled", "sampled"), ("pass1_greedy", "greedy")):
        diffs, pairs = [], []
        for s in SEEDS:
            a = vectors(reported(f"{conds[0]}-seed{s}")[1])[metric]
            b = vectors(reported(f"{conds[1]}-seed{s}")[1])[metric]
            diffs.append(np.mean(b) - np.mean(a))
            pairs.append((np.asarray(a), np.asarray(b)))
        row = pair[(conds[1], short)]
        assert row[3] == "3"
        mean, ci = t_ci(diffs, -1.0, 1.0)
        assert row[4] == pct(mean, ci, signed=True)
        if np.ptp(diffs) > 0:
            assert row[5] == f"{float(sps.ttest_1samp(diffs, 0.0).pvalue):.3g} (df 2)"
        rng = np.random.default_rng(42)  # the seed of the condition's first paired run
        draws = []
        for _ in range(300):
            picked = rng.integers(0, 3, size=3)
            draws.append(
                np.mean([(pairs[p][1] - pairs[p][0])[rng.integers(0, 32, size=32)].mean() for p in picked])
            )
        lo, hi = np.quantile(draws, [0.025, 0.975])
        assert row[6] == pct(float(np.mean(diffs)), [lo, hi], signed=True)
        if metric == "pass1_sampled":  # within each seed, problem by problem, on the headline metric
            for s, (a, b) in zip(SEEDS, pairs):
                w = within[(conds[1], str(s))]
                within_ci = a_paired(a, b, 300, s)["ci"]
                assert w[3] == pct(float(np.mean(b - a)), within_ci, signed=True)
                higher, lower = int(np.sum(b > a)), int(np.sum(a > b))
                assert (w[4], w[5]) == (str(higher), str(lower))
                assert w[6] == f"{mcnemar_p(lower, higher):.3g}"
