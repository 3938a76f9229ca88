"""course_lib — the small, tested package behind the course
"LLM Scaling Laws — Principles and Engineering Practice".

Five layers, top to bottom; each imports only the layers below it (checked by
``lint-imports`` in ``make test``; the contract is in ``pyproject.toml``):

* ``recipes``  — the course's named artifacts (char GPTs, tiny BERT, MiniLM); the only
  layer that knows ``notebooks/results``
* ``scaling``  — runs, sweeps, their results files, fits, published laws, budgets
* ``training`` — the training loop, checkpoints, objectives (masked LM, fine-tuning,
  distillation, replay), the command line
* ``data`` | ``models`` — side by side, never importing each other: corpora, languages,
  tokenizers, token arrays and the sampler | the GPT, KV cache, FLOPs, memory, LoRA,
  compression
* ``core``     — validation, device, seeds, atomic files and locks, the store,
  provenance, losses, figures, glue, checks

A new chapter's reusable code goes in the lowest layer that can hold it. Each layer's
``__init__`` lists its modules. Import what you need:
``from course_lib.core import losses``.
"""

__version__ = "0.1.0"
