"""Reports read a run directory only: terminal tables and a Markdown summary (the dashboard builds on these)."""

from .tables import round_rows, gap_rows, markdown, print_tables

__all__ = ["round_rows", "gap_rows", "markdown", "print_tables"]
