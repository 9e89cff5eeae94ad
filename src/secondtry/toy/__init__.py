"""The embedded default model: a small Llama pretrained here on the synthetic task.

`toy_model("demo")` returns a local HF folder (model, tokenizer with chat template,
generation config), pretraining it on first use and caching it by recipe.
"""

from __future__ import annotations

from .model import RECIPES, SIZES, Recipe, build_model, pretrain, toy_model
from .tokenizer import CHAT_TEMPLATE, build_tokenizer

__all__ = [
    "RECIPES",
    "SIZES",
    "Recipe",
    "build_model",
    "pretrain",
    "toy_model",
    "CHAT_TEMPLATE",
    "build_tokenizer",
]
