"""Models built in the course: the GPT of chapter 4 (``gpt``)."""

from .gpt import GPT, GPTConfig

__all__ = ["GPT", "GPTConfig"]
