"""The dashboard of real runs: its figures recomputed from the records, opened in headless Chromium,
self-contained, escaping model text; the index of runs; the local server."""

import os
import re
import shutil
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from secondtry.cli import app
from secondtry.config import load_config
from secondtry.evaluation.metrics import per_problem, summarize_eval, train_figures
from secondtry.evaluation.stats import paired_delta
from secondtry.loop import load_history, read_eval_records, run
from secondtry.report.dashboard import OUTCOMES, PLOTS, Transcript, build_dashboard, choose, find_runs, server
from secondtry.report.tables import pct
from secondtry.store import RunDirError, read_jsonl, write_jsonl
from secondtry.types import Attempt, Verdict, attempt_from_dict

# the shared runs (tests/conftest.py: report_runs), the pages in Chromium
pytestmark = pytest.mark.integration

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny-cpu.yaml"
CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
EXTRA = {
    "retry": [
        "stopping.policies=[max_rounds]",
        "evaluation.retry_all=true",
        "evaluation.validation=8",
        "transfer_task={name: synthetic, split: test, options: {count: 16, levels: [5]}}",
    ],
    "early": [
        "stopping.policies=[retry_yield]",
        "stopping.min_retry_yield=0.99",
    ],  # stops before training round 1
}
SMALL = ["eval_task.options.count=32", "evaluation.bootstrap=200"]
PAYLOAD = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def runs(tiny_model, tmp_path_factory):
    """A folder of three real runs (two rounds with every evaluation set; stopped before training; round 0
    only), reported through the command line; returns the folder and the seconds one dashboard takes."""
    root = tmp_path_factory.mktemp("runs")
    common = [f"model.path={tiny_model}", f"run_dir={root}", *SMALL]
    threads = torch.get_num_threads()
    torch.set_num_threads(
        1
    )  # the tiny model gains little from more, and on a busy machine they slow it manyfold
    try:
        for name, extra in EXTRA.items():
            run(load_config(CONFIG, [*common, f"name={name}", *extra]))
        run(load_config(CONFIG, [*common, "name=base"]), eval_only=True)
    finally:
        torch.set_num_threads(threads)
    result = CliRunner().invoke(app, ["report", str(root)])
    assert result.exit_code == 0, result.output
    start = time.perf_counter()
    build_dashboard(root / "retry", index=root / "index.html")
    return root, time.perf_counter() - start


def cells(html: str, k: int) -> dict[str, str]:
    """The round table's cells of round k, by column key, as text."""
    row = re.search(rf'<tr data-round="{k}"[^>]*>(.*?)</tr>', html, re.S)[1]
    return {
        key: " ".join(re.sub(r"<[^>]+>", " ", text).split())
        for key, text in re.findall(r'<td[^>]*data-col="([^"]+)"[^>]*>(.*?)</td>', row, re.S)
    }


def outcome(first: bool | None, retries: list[bool | None]) -> str:
    if first is None:
        return "unjudged"
    if first:
        return "right-wrong" if retries and retries[0] is not True else "right"
    return "wrong-right" if any(r is True for r in retries) else "wrong-wrong"


def expected_outcomes(folder: Path, block: str) -> dict[str, str]:
    """Each problem's outcome, from eval.jsonl (test) or attempts.jsonl (training)."""
    if block == "test":
        return {
            r["problem_id"]: outcome(r["chain"][0], r["chain"][1:]) for r in read_jsonl(folder / "eval.jsonl")
        }
    attempts = [attempt_from_dict(d) for d in read_jsonl(folder / "attempts.jsonl")]
    first = {a.problem_id: a.verdict.correct for a in attempts if a.kind == "first" and a.sample == 0}
    retries = {
        p: [
            a.verdict.correct
            for a in sorted(attempts, key=lambda a: a.turn)
            if a.kind == "retry" and a.problem_id == p
        ]
        for p in first
    }
    return {p: outcome(first[p], retries[p]) for p in first}


def test_every_run_gets_a_dashboard_plots_and_summary_and_the_folder_an_index(runs):
    root, seconds = runs
    print(f"\ndashboard of a two-round tiny run: {seconds:.2f} s")
    for name in ("retry", "early", "base"):
        report = root / name / "report"
        assert (report / "index.html").exists() and (report / "summary.md").exists()
    assert sorted(p.stem for p in (root / "retry" / "report" / "plots").glob("*.png")) == sorted(PLOTS)
    assert sorted(p.stem for p in (root / "base" / "report" / "plots").glob("*.png")) == ["accuracy", "gap"]
    index = (root / "index.html").read_text()
    assert all(f'href="{name}/report/index.html"' in index for name in ("retry", "early", "base"))
    assert seconds < 20


def test_round_table_figures_are_recomputed_from_the_records(runs):
    root, _ = runs
    for name in ("retry", "early", "base"):
        cfg = load_config(root / name / "config.yaml")
        ev, html = cfg.evaluation, (root / name / "report" / "index.html").read_text()
        evals = {}
        for r in load_history(root / name):
            folder = root / name / f"round_{r.round}"
            mine = cells(html, r.round)
            if not (folder / "eval.jsonl").exists():
                assert not r.trained and mine["metric"] == "not trained" and mine["decision"] == "stop"
                assert r.decision.reason in mine["reason"]
            else:
                records = read_eval_records(folder / "eval.jsonl")
                evals[r.round] = per_problem(records)[ev.metric]
                figures = summarize_eval(records, ev.bootstrap, cfg.seed, ev.retry_n, ev.retry_all)
                assert mine["metric"] == pct(figures[ev.metric])
            if r.round and r.trained:
                for key, ref in (("delta_base", 0), ("delta_prev", r.round - 1)):
                    assert mine[key] == pct(
                        paired_delta(evals[ref], evals[r.round], ev.bootstrap, cfg.seed), True
                    )
            if r.round:
                attempts = [attempt_from_dict(d) for d in read_jsonl(folder / "attempts.jsonl")]
                assert mine["retry_yield"] == pct(train_figures(attempts, ev.bootstrap, cfg.seed).retry_yield)
                assert mine["examples"] == str(len(read_jsonl(folder / "sft.jsonl")))


def test_pages_are_self_contained(runs):
    root, _ = runs
    for page in [root / "index.html", *root.glob("*/report/index.html")]:
        html = page.read_text()
        assert not re.search(r"https?://", html), page
        assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*//|url\(|@import""", html), page
        assert html.count("<script") == 1  # the page's own, inline


def test_model_text_is_escaped(runs, tmp_path):
    root, _ = runs
    copy = tmp_path / "early"
    shutil.copytree(root / "early", copy, ignore=shutil.ignore_patterns("report"))
    file = copy / "round_0" / "eval_attempts.jsonl"
    records = read_jsonl(file)
    records[0]["completion"] = f"Let me think. {PAYLOAD}"
    records[0]["verdict"]["extracted"] = PAYLOAD
    records[0]["messages"][-1]["content"] = f'<img src=x onerror="alert(2)"> {PAYLOAD}'
    write_jsonl(file, records)
    (copy / "config.yaml").write_text(
        (copy / "config.yaml")
        .read_text()
        .replace("description: ", f"description: '{PAYLOAD} ", 1)
        .replace("CPU.\n", "CPU.'\n", 1)
    )
    html = build_dashboard(copy).read_text()
    assert PAYLOAD not in html and "<img src=x" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4  # completion, answer, problem, hypothesis
    assert html.count("<script") == 1


def test_sample_is_capped_deterministic_and_shows_rare_outcomes():
    def transcript(i: int, kind: str) -> Transcript:
        a = Attempt(f"p{i}", "first", 0, 0, (), "", 1, "stop", Verdict(kind == "right"))
        return Transcript(f"p{i}", kind, [a], [])

    items = [transcript(i, "right" if i % 2 else "wrong-wrong") for i in range(100)]
    items[37] = transcript(37, "wrong-right")
    picked = choose(items, 10)
    assert len(picked) == 10 and picked == choose(list(items), 10)
    assert items[37] in picked and picked == [
        t for t in items if t in picked
    ]  # rare ones shown, original order
    assert choose(items, 200) == items


def test_find_runs_takes_runs_and_folders_of_them(runs, tmp_path):
    root, _ = runs
    assert find_runs([root]) == (sorted(root / n for n in ("base", "early", "retry")), root)
    assert find_runs([root / "early"]) == ([root / "early"], None)
    assert find_runs([root / "early", root / "base"])[1] == root.resolve()
    with pytest.raises(RunDirError, match="not a secondtry run directory"):
        find_runs([tmp_path])


def test_the_server_binds_to_localhost_only(runs):
    root, _ = runs
    httpd = server(root, port=0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = httpd.server_address[:2]
        assert host == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10) as response:
            assert response.status == 200 and "<h1>Experiments</h1>" in response.read().decode()
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/retry/report/plots/gap.png", timeout=10
        ) as response:
            assert response.read(8) == b"\x89PNG\r\n\x1a\n"
    finally:
        httpd.shutdown()
        httpd.server_close()


# ----------------------------------------------------------------------------- in a browser


def _no_browser(why: str) -> None:
    if os.environ.get("SECONDTRY_REQUIRE_BROWSER"):
        pytest.fail(
            f"{why}; SECONDTRY_REQUIRE_BROWSER is set, so the browser test must run "
            "(apt-get install chromium; pip install -e '.[test]')"
        )
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser("the playwright package is not installed")
    if not CHROMIUM.exists():
        _no_browser(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


def open_page(browser, path: Path):
    """A page at file://path, and the list its console errors, page errors and dialogs are appended to."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on(
        "console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.goto(path.as_uri())
    return page, problems


def test_dashboard_in_chromium(runs, browser, tmp_path):
    root, _ = runs
    cfg = load_config(root / "retry" / "config.yaml")
    page, problems = open_page(browser, root / "retry" / "report" / "index.html")
    for r in load_history(root / "retry"):
        records = read_eval_records(root / "retry" / f"round_{r.round}" / "eval.jsonl")
        ev = cfg.evaluation
        want = pct(summarize_eval(records, ev.bootstrap, cfg.seed, ev.retry_n, ev.retry_all)[ev.metric])
        shown = page.locator(f'#rounds tr[data-round="{r.round}"] td[data-col="metric"]').inner_text()
        assert " ".join(shown.split()) == want
    sizes = page.eval_on_selector_all("img.plot", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
    assert len(sizes) == len(PLOTS) and all(w > 0 for w in sizes)

    blocks = page.locator("#transcripts select option").evaluate_all("os => os.map(o => o.value)")
    assert {"r0-test", "r1-train", "r1-test"} <= set(blocks)
    for block in blocks:
        k, kind = block[1:].split("-")
        expected = expected_outcomes(root / "retry" / f"round_{k}", kind)
        page.select_option("#transcripts select", block)
        page.click('#transcripts button[data-outcome="all"]')
        rows = page.locator(f'.tx-block[data-block="{block}"] .tx')
        assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.problem)")) == sorted(
            expected
        )  # all shown
        for name in OUTCOMES:
            page.click(f'#transcripts button[data-outcome="{name}"]')
            want = sum(o == name for o in expected.values())
            assert page.locator("#transcripts .tx:visible").count() == want, (block, name)
            assert page.locator(f'#transcripts button[data-outcome="{name}"] .n').inner_text() == str(want)
            visible = page.locator("#transcripts .tx:visible").evaluate_all(
                "rs => rs.map(r => r.dataset.outcome)"
            )
            assert set(visible) <= {name}

    page.click('#transcripts button[data-outcome="all"]')
    page.locator("#transcripts .tx:visible summary").first.click()
    shots = [tmp_path / "dashboard.png"]
    if os.environ.get("SECONDTRY_SCREENSHOT_DIR"):
        shots.append(Path(os.environ["SECONDTRY_SCREENSHOT_DIR"]) / "dashboard.png")
    for shot in shots:
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
    assert not problems, problems


def test_index_and_short_runs_in_chromium(runs, browser):
    root, _ = runs
    page, problems = open_page(browser, root / "index.html")
    assert page.locator("#comparison-conditions tbody tr").count() == 3
    # each of the two other conditions against the first, on sampled and on greedy pass@1; one seed each, so the
    # across-seeds rows say why there is no test, and the within-seed rows give the problem-level one
    pairwise = page.locator("#comparison-pairwise tbody tr")
    assert pairwise.count() == 4 and all(
        "one seed: no test" in pairwise.nth(i).inner_text() for i in range(4)
    )
    assert page.locator("#comparison-within tbody tr").count() == 2
    page.click("#runs a >> text=early")
    assert page.url.endswith("/early/report/index.html")
    assert (
        " ".join(page.locator('#rounds tr[data-round="1"] td[data-col="metric"]').inner_text().split())
        == "not trained"
    )
    assert page.locator("img.plot").count() == len(PLOTS)
    page.goto((root / "base" / "report" / "index.html").as_uri())
    assert page.locator("#rounds tbody tr").count() == 1 and page.locator("img.plot").count() == 2
    page.click("text=← all experiments")
    assert page.url.endswith(f"{root.name}/index.html")
    assert not problems, problems


def test_the_cost_of_a_gain_is_hours_per_point_with_the_range_its_ci_gives():
    from types import SimpleNamespace

    from round_records import round_of
    from secondtry.report.dashboard import Compute, gained_rows

    def rnd(k, device, gain=None, flips=None):
        figures = {
            "eval": {},
            **({"delta_from_base": gain} if gain else {}),
            **({"flips_vs_prev": flips} if flips else {}),
        }
        return round_of(k, figures=figures, cost={"eval_s": 1800.0, "device": device}, reason="go")

    gain = {"value": 0.05, "ci": [0.02, 0.08]}
    rounds = [rnd(0, "2x NVIDIA H100"), rnd(1, "2x NVIDIA H100", gain)]  # an hour of wall time on 2 GPUs
    v = SimpleNamespace(best=rounds[1], metric="pass1_sampled", history=rounds)
    compute = Compute.of(v)
    assert compute.unit == "GPU-hours" and compute.total_hours == 2.0
    assert compute.hours_per_pp(v) == "0.4 [0.25, 1]"  # 2 GPU-hours over +5 pp, [2/8, 2/2]
    assert compute.headline(v)[1] == (
        "GPU-hours per pp of sampled pass@1 gained on the test set: 0.4 [0.25, 1]"
    )
    rounds[1] = rnd(1, "cpu (2 cores)", {"value": 0.05, "ci": [-0.01, 0.11]})
    rounds[0] = rnd(0, "cpu (2 cores)")
    v = SimpleNamespace(best=rounds[1], metric="pass1_sampled", history=rounds)
    assert Compute.of(v).hours_per_pp(v) == "0.2 [0.0909, no bound]"  # the CI reaches 0: no upper bound
    assert Compute.of(v).unit == "hours of wall time (CPU)"
    lost = SimpleNamespace(best=rounds[0], metric="pass1_sampled", history=rounds)
    assert Compute.of(lost).hours_per_pp(lost) == "–"  # no gain reported: no cost of one
    new = {"metric": "pass1_sampled", "gained": 9, "lost": 4, "unchanged": 30, "p_value": 0.2668}
    old = {"outcome": "greedy", "wrong_to_right": 3, "right_to_wrong": 1, "mcnemar_p": 0.625}  # earlier
    v = SimpleNamespace(history=[rnd(0, "cpu"), rnd(1, "cpu", flips=new), rnd(2, "cpu", flips=old)])
    assert gained_rows(v) == [
        ["round 1", "sampled pass@1", "9", "4", "30", "0.267"],
        ["round 2", "greedy right/wrong", "3", "1", "–", "0.625"],
    ]
