"""Layer 2, ``training``: the one training loop and the objectives that plug into it.

May import ``core``, ``data`` and ``models``; never ``scaling`` or ``recipes``.

* ``loop``        — :func:`~course_lib.training.loop.train`: AdamW with decay groups,
  warmup and cosine or warmup-stable-decay schedules, clipping, evaluation, checkpoints
  (and branches from them), one or many processes
* ``checkpoint``  — atomic, sha256-checked safetensors checkpoints; resume
* ``distributed`` — the few ``torch.distributed`` calls the loop needs (torchrun)
* ``masked``      — BERT's 80/10/10 masking, packing, batches and loss (ch. 5)
* ``finetune``    — sequence classification: padding, early stopping, metrics (ch. 6)
* ``noise_scale`` — the gradient noise scale B_simple, measured during training (ch. 11)
* ``distill``     — Hinton's distillation loss (ch. 13); ``continual`` — replay (ch. 14)
* ``cli``         — ``python -m course_lib.training.cli``
"""
