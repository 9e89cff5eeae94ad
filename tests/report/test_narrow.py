"""Every table the commands print, rendered at 80 columns: no word is split across lines, no line is wider.

Each table is caught as a command builds it (`tables.rich_table`), rendered on its own at 80 columns, and
every word the render shows must be a whole word of its title, header, cells or notes: a word cut in two
("exampl" / "es") shows as two pieces that are not words of the table.
"""

import io
import json

import pytest
from rich.console import Console

from secondtry.report import tables
from secondtry.report.tables import Narrow, column_widths, fit

# the shared runs (tests/conftest.py: report_runs) are made once
pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]

BOX = set("│┃┏┓┗┛┣┫┳┻╋━─┡┩╇┠┨┯┷┼┌┐└┘├┤┬┴╞╡╪═║╔╗╚╝╠╣╦╩╬")
WIDTH = 80


def render(table) -> str:
    console = Console(width=WIDTH, file=io.StringIO(), color_system=None, force_terminal=False)
    console.print(table)
    return console.file.getvalue()


def split_words(title: str, head: list[str], rows: list[list[str]], text: str, notes: list[str]) -> list[str]:
    """The pieces of the render that are not whole words of the table (empty: no word was cut)."""
    words = {w for part in [title, *head, *(c for r in rows for c in r), *notes] for w in part.split()}
    shown = [
        w for line in text.splitlines() for w in "".join(" " if ch in BOX else ch for ch in line).split()
    ]
    return [w for w in shown if w not in words]


class Caught:
    """Every table a command builds, checked at 80 columns."""

    def __init__(self, monkeypatch) -> None:
        self.tables: list[str] = []
        self.problems: list[str] = []
        real = tables.rich_table

        def caught(title, head, rows, width=None, narrow=None):
            table = real(title, head, rows, width, narrow)
            if width is None:
                self.problems.append(f"{title!r}: printed without the terminal's width")
                return table
            assert width == WIDTH
            fitted_head, fitted_rows, _, notes = fit(head, rows, width, narrow or Narrow())
            text = render(table)
            cut = split_words(title, fitted_head, fitted_rows, text, notes)
            wide = [line for line in text.splitlines() if len(line) > WIDTH]
            if cut or wide:
                self.problems.append(
                    f"{title!r}: cut words {cut[:6]}, lines over {WIDTH}: {len(wide)}\n{text}"
                )
            self.tables.append(title)
            return table

        monkeypatch.setattr(tables, "rich_table", caught)
        from secondtry.report import compare

        monkeypatch.setattr(compare, "rich_table", caught)


def test_the_check_finds_a_word_cut_by_a_table_that_does_not_fit():
    head = [
        "stage",
        "sampled pass@1 %",
        "Δ base pp",
        "Δ base greedy pp",
        "Δ prev pp",
        "decay",
        "retry yield %",
        "examples",
        "decision",
    ]
    rows = [
        [
            "round 2 (reported)",
            "77.2 [73.3, 81.0]",
            "+12.1 [+8.0, +16.2]",
            "+0.3 [-1.0, +1.7]",
            "-2.6 [-5.1, -0.1]",
            "0.44 [0.10, 0.90]",
            "31.0 [27.1, 35.2]",
            "1234",
            "would stop",
        ]
    ]
    unfitted = tables.rich_table("t", head, rows)  # no width given: rich squeezes the columns and cuts words
    assert split_words("t", head, rows, render(unfitted), [])
    fitted = tables.rich_table("t", head, rows, WIDTH, tables.ROUND_NARROW)
    h, r, widths, notes = fit(head, rows, WIDTH, tables.ROUND_NARROW)
    assert widths is not None and sum(widths) + 3 * len(widths) + 1 <= WIDTH
    assert split_words("t", h, r, render(fitted), notes) == []
    assert "decay" not in h and any("left out at 80 columns: decay" in n for n in notes)


def test_letters_stand_for_long_names_with_a_key_and_whole_lines_go_to_the_columns_that_need_least():
    head, rows = ["condition", "Δ pp"], [["a-very-long-condition-name-" * 3, "+1.0 [+0.5, +1.5]"]]
    h, r, widths, notes = fit(head, rows, 40, Narrow(steps=(("letters", "condition"),)))
    assert r[0][0] == "A" and notes == [f"condition: A = {rows[0][0]}"]
    assert column_widths(["a", "b"], [["x y", "1 2 3 4 5 6 7 8"]], 20) == [3, 10]


def test_a_title_or_note_whose_longest_word_is_wider_than_the_columns_widens_the_table():
    title = "completions-of-the-second-model.jsonl: 3 rows, verifier math"
    head, rows = ["outcome", "rows"], [["correct", "2"]]
    narrow = Narrow(steps=(("letters", "outcome"),))
    text = render(tables.rich_table(title, head, rows, WIDTH))
    assert split_words(title, head, rows, text, []) == [] and "completions-of-the-second-model.jsonl:" in text
    rows = [["long-" * 14 + "name", "+1.0 [+0.5, +1.5]"]]  # 74 characters: wider than its column can be
    h, r, _, notes = fit(head, rows, WIDTH, narrow)  # the name as a letter; the key, one long word, below
    text = render(tables.rich_table("t", head, rows, WIDTH, narrow))
    assert r[0][0] == "A" and split_words("t", h, r, text, notes) == [] and rows[0][0] in text


def test_every_table_the_commands_print_fits_80_columns_without_cutting_a_word(
    report_runs, monkeypatch, tmp_path
):
    from typer.testing import CliRunner

    from secondtry.cli import app
    from secondtry.report import print_comparison, print_tables

    monkeypatch.setenv("COLUMNS", str(WIDTH))
    caught = Caught(monkeypatch)
    console = Console(width=WIDTH, file=io.StringIO())
    for run in (
        report_runs / "demo" / "demo",
        report_runs / "tiny" / "tiny-cpu",
        report_runs / "compare" / "tiny-cpu-star-try-again-seed42",
    ):
        print_tables(run, console)
    compared = sorted(p for p in (report_runs / "compare").iterdir() if (p / "summary.json").is_file())
    print_comparison(compared, console)
    runner = CliRunner()
    assert runner.invoke(app, ["ls"]).exit_code == 0
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "\n".join(
            json.dumps({"problem": "1+1", "answer": "2", "completion": c})
            for c in ("\\boxed{2}", "it is 3", "\\boxed{2}")
        )
        + "\n"
    )
    done = runner.invoke(
        app,
        [
            "verify",
            str(rows),
            "--workers",
            "0",
            "--extractor",
            "boxed",
            "--extractor",
            "last_number",
            "--each",
        ],
    )
    assert done.exit_code == 0, done.output
    assert not caught.problems, "\n".join(caught.problems)
    # the 3 runs' tables (7), the comparison's (5), ls's (4) and verify's (3)
    assert len(caught.tables) >= 19, caught.tables
    assert any(t.startswith("conditions compared") for t in caught.tables)
    assert any(t.startswith("within each seed") for t in caught.tables)


def test_a_comparison_between_runs_of_no_common_seed_is_made_unpaired_and_says_so(report_runs, tmp_path):
    """Runs named apart (other base names, other seeds) still compare: Welch's t over seeds, named as such."""
    import shutil

    import yaml

    from secondtry.report.compare import notes, pairwise_rows

    src = report_runs / "compare"
    for seed in (42, 43, 44):
        shutil.copytree(src / f"tiny-cpu-star-try-again-seed{seed}", tmp_path / f"a-seed{seed}")
        moved = tmp_path / f"b-seed{seed + 10}"
        shutil.copytree(src / f"tiny-cpu-resampling-seed{seed}", moved)
        cfg = yaml.safe_load((moved / "config.yaml").read_text())
        cfg["seed"] = seed + 10
        (moved / "config.yaml").write_text(yaml.safe_dump(cfg))
    runs = sorted(tmp_path.iterdir())
    head, rows = pairwise_rows(runs)
    assert rows and all("no seed in common (42,43,44 vs 52,53,54)" in r[-1] for r in rows)
    assert all(r[3] == "3+3" and "(Welch, df " in r[5] or "no test" in r[-1] for r in rows), rows
    assert any("Welch's t on the per-seed means" in line for line in notes(runs))
