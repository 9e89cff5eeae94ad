"""Training: SFT on the filtered examples (TRL SFTTrainer + PEFT LoRA, or full fine-tuning)."""

from .sft import train, write_model_card

__all__ = ["train", "write_model_card"]
