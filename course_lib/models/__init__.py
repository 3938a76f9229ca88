"""Models built in the course: the GPT of chapter 4 (``gpt``) and its KV cache (chapter 11)."""

from .gpt import GPT, GPTConfig
from .kv_cache import KVCache

__all__ = ["GPT", "GPTConfig", "KVCache"]
