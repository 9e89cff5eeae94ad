"""Reports read run directories only: terminal tables, Markdown summaries, comparisons across runs,
and the HTML dashboard."""

from .compare import compare_rows, comparison_markdown, print_comparison
from .dashboard import build_dashboard, build_index
from .tables import gap_rows, markdown, print_tables, round_rows

__all__ = [
    "round_rows",
    "gap_rows",
    "markdown",
    "print_tables",
    "compare_rows",
    "comparison_markdown",
    "print_comparison",
    "build_dashboard",
    "build_index",
]
