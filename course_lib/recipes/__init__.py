"""Layer 4, ``recipes``: the course's named artifacts, trained once and cached.

The only layer that knows where the course keeps them (``notebooks/results``); may import
every layer below it. Each artifact is a folder of the store (``core.store``): its files
and a ``manifest.json`` with their sha256, the spec that made them and provenance.

* ``char_gpt``   — small character-level GPTs of Shakespeare (chapters 13–14)
* ``tiny_bert``  — the 2-layer BERT pretrained on WordNet (chapters 5–6)
* ``pretrained`` — the packaged MiniLM (sha256-checked), Hub names and local folders,
  as classifiers; a classifier from a masked LM (chapters 6–7)
"""
