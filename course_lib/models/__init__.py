"""Layer 1, ``models``: the networks and what can be counted or changed about them.

May import ``core``; never ``data``, ``training``, ``scaling`` or ``recipes``.

* ``gpt``        — the GPT of chapter 4; ``kv_cache`` — its cache for generation (ch. 13)
* ``bert``       — a tiny ``transformers`` BERT built from a config (chapters 4–6)
* ``flops``      — exact parameter counts and FLOPs per token; the one FLOP-accounting API
* ``memory``     — training-memory estimate and measurement (chapter 4)
* ``nf4``        — QLoRA's 4-bit NormalFloat weights, double quantization, ``NF4Linear``
                   (the frozen base that ``lora`` wraps, ch. 7)
* ``lora``       — LoRA from scratch, merged and unmerged, checked against ``peft`` (ch. 7)
* ``compress``   — int8 quantization, pruning, sizes on disk, generation timing (ch. 13)
* ``prompting``  — scoring a model's answer to a prompt (chapter 14)
"""

from course_lib.models.gpt import GPT, GPTConfig
from course_lib.models.kv_cache import KVCache

__all__ = ["GPT", "GPTConfig", "KVCache"]
