"""secondtry: turn a model's correct second tries into weights, round after round."""

__version__ = "0.1.0"
