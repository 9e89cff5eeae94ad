"""Write the effect record of a folder of finished runs: every run and round's figures (JSON) and the comparison
tables (Markdown), from the runs' own records.

    python benchmarks/effect_record.py runs/ --name synthetic-gpu --machine "1x H100" --tag 1xh100 \
        --command "secondtry run configs/synthetic-gpu.yaml --seeds 3 --preset ... --jobs 12"

writes benchmarks/results/effect-<name>-<machine>-<date>.json and .md. Rates are [value %, [lo, hi]] with their
CI method; gains are paired over problems within a run; the Markdown holds `secondtry compare`'s tables at
each run's reported round and at an equal generated-token budget (seed-level tests across seeds).
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
from pathlib import Path

from secondtry.report.compare import Point, comparison_markdown
from secondtry.report.runs import load_run


def pc(fig: dict | None) -> list | None:
    if not fig or fig.get("value") is None:
        return None
    return [round(fig["value"] * 100, 2), [round(x * 100, 2) for x in fig["ci"]]]


def set_figures(f: dict) -> dict:
    """One evaluation set's figures of a round (the test set's sit at the top of round.json)."""
    e = f.get("eval") or {}
    gains = f.get("gains") or {}
    flips = e.get("flips") or {}
    return {
        "pass1_sampled": pc(e.get("pass1_sampled")),
        "pass1_greedy": pc(e.get("pass1_greedy")),
        "pass_at_4": pc(e.get("pass_at_4")),
        "pass_n_retry": pc(e.get("pass_n_retry")),
        "methods": {k: e[k].get("method") for k in ("pass1_sampled", "pass1_greedy") if k in e},
        "delta_sampled": pc((gains.get("pass1_sampled") or {}).get("from_base")),
        "delta_greedy": pc((gains.get("pass1_greedy") or {}).get("from_base")),
        "cut": e.get("cut_at_length"),
        "retry_all_net": pc(flips.get("net")),
    }


def run_record(path: Path) -> dict:
    v = load_run(path)
    rounds = []
    for r in v.history:
        f = r.figures
        train, training = f.get("train") or {}, f.get("training") or {}
        rounds.append(
            {
                "round": r.round,
                "trained": r.trained,
                "test": set_figures(f) if "eval" in f else None,
                **{s: set_figures(f[s]) for s in ("validation", "transfer") if s in f},
                "retry_yield": pc(train.get("retry_yield")),
                "kept": (train.get("examples") or {}).get("kept"),
                "rejected": (train.get("examples") or {}).get("rejected"),
                "cut_train": train.get("cut_at_length"),
                "tokens_generated_train": train.get("tokens_generated"),
                "steps": training.get("steps"),
                "rows": training.get("rows"),
                "epochs": training.get("epochs"),
                "decision": r.decision.reason,
                "cost_s": {k: c for k, c in r.cost.items() if k.endswith("_s")},
                "device": r.cost.get("device"),
            }
        )
    return {
        "seed": v.cfg.get("seed"),
        "reported_round": v.summary.get("best_round"),
        "chosen_on": v.summary.get("chosen_on"),
        "optimistic": v.summary.get("optimistic"),
        "rounds": rounds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, help="a folder of run directories")
    ap.add_argument("--name", required=True, help="what the runs measure, e.g. synthetic-gpu")
    ap.add_argument("--machine", required=True, help="where they ran, e.g. '1x H100 80GB HBM3, 16 CPU cores'")
    ap.add_argument("--tag", help="the machine in the file name, e.g. 1xh100 (default: from --machine)")
    ap.add_argument("--command", required=True, help="the command that made the runs")
    ap.add_argument("--date", default=datetime.date.today().isoformat())
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args()
    runs = sorted(p for p in args.runs.iterdir() if (p / "summary.json").exists())
    if not runs:
        raise SystemExit(f"{args.runs}: no finished runs (no */summary.json)")
    code = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    slug = args.tag or re.sub(r"[^a-z0-9]+", "", args.machine.split(",")[0].lower())
    stem = args.out / f"effect-{args.name}-{slug}-{args.date}"
    record = {
        "name": "effect",
        "date": args.date,
        "machine": args.machine,
        "command": args.command,
        "code": code,
        "fields": "rates as [value %, [lo, hi]] (methods: Wilson or bootstrap over problems); delta_* = paired "
        "change from the base over the same problems; cut = share of generations cut at "
        "max_new_tokens (judged incorrect, never trained on); steps/rows/epochs of the round's SFT; "
        "cost_s = stage seconds",
        "runs": {p.name: run_record(p) for p in runs},
    }
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    md = [
        f"# Effect: {args.name} ({args.machine}, {args.date})",
        "",
        f"Command: `{args.command}`",
        "",
        f"Code: {code}. Every figure below is `secondtry compare`'s, from the runs' records.",
        "",
        "## At each run's reported round",
        "",
        comparison_markdown(runs, Point()),
        "## At an equal budget of generated training tokens (the smallest total)",
        "",
        comparison_markdown(runs, Point("budget")),
    ]
    stem.with_suffix(".md").write_text("\n".join(md))
    print(f"record: {stem.with_suffix('.json')}\ntables: {stem.with_suffix('.md')}")


if __name__ == "__main__":
    main()
