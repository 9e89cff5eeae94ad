"""Metrics from per-problem records, each with its uncertainty (bootstrap over problems)."""
