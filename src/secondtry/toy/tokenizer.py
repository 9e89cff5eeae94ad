"""A character-level tokenizer over printable ASCII, with role markers and a chat template."""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models
from transformers import PreTrainedTokenizerFast

PAD, UNK, END = "<|pad|>", "<|unk|>", "<|end|>"
ROLES = ("system", "user", "assistant")
SPECIAL = [PAD, UNK, END] + [f"<|{r}|>" for r in ROLES]
CHARS = [chr(c) for c in range(32, 127)] + list("\t\n\r\x0b\x0c")  # all of string.printable

# Assistant turns sit in {% generation %} so return_assistant_tokens_mask (and TRL's assistant_only_loss) work.
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unknown role: ' + m['role']) }}{% endif %}"
    "<|{{ m['role'] }}|>"
    "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}<|end|>{% endgeneration %}"
    "{% else %}{{ m['content'] }}<|end|>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tokenizer(model_max_length: int = 512) -> PreTrainedTokenizerFast:
    """One token per character (unknown characters -> <|unk|>); `<|end|>` is eos."""
    vocab = {t: i for i, t in enumerate(SPECIAL + CHARS)}
    tok = Tokenizer(
        models.BPE(vocab=vocab, merges=[], unk_token=UNK)
    )  # BPE without merges: single characters
    tok.decoder = decoders.Fuse()  # join characters without spaces
    tok.add_special_tokens(SPECIAL)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        unk_token=UNK,
        eos_token=END,
        additional_special_tokens=SPECIAL[3:],
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
        model_max_length=model_max_length,
        padding_side="left",
    )
