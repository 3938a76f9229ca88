"""Layer 3, ``scaling``: runs, sweeps and the laws fitted to them (chapters 8–12).

May import every layer below it; never ``recipes``.

* ``runs``           — one run of a sweep: its data, its spec, the record it leaves
* ``sweep``          — grids of runs, resumable and shardable: ``python -m
  course_lib.scaling.sweep``; ``results`` — their JSONL files, locked and appended
* ``fits``           — power laws, Chinchilla's three approaches, bootstrap intervals,
  compute-optimal and inference-aware allocation; ``published_laws`` — the papers'
  coefficients
* ``wsd``            — many run lengths from one warmup-stable-decay run: ``python -m
  course_lib.scaling.wsd`` (chapter 11)
* ``budget``         — a FLOP budget that refuses runs it cannot afford (chapter 10)
* ``bench``          — ``python -m course_lib.scaling.bench {hw,train,lora,sweep,stack}``
"""
