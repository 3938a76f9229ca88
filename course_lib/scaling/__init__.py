"""Layer 3, ``scaling``: runs, sweeps and the laws fitted to them (chapters 8–10).

May import every layer below it; never ``recipes``.

* ``runs``           — one run of a sweep: its data, its spec, the record it leaves
* ``sweep``          — grids of runs, resumable and shardable: ``python -m
  course_lib.scaling.sweep``; ``results`` — their JSONL files, locked and appended
* ``fits``           — power laws, Chinchilla's three approaches, bootstrap intervals,
  compute-optimal allocation; ``published_laws`` — the papers' coefficients
* ``budget``         — a FLOP budget that refuses runs it cannot afford (chapter 10)
* ``bench``          — ``python -m course_lib.scaling.bench {hw,train,lora,sweep}``
"""
