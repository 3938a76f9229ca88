"""Layer 1, ``data``: text, languages, tokenizers and token arrays.

May import ``core``; never ``models``, ``training``, ``scaling`` or ``recipes``.

* ``corpora``    — Shakespeare, WordNet (and its category task), local files (chapter 3)
* ``synthetic``  — a random Markov language whose entropy rate is known exactly
* ``keyvalue``   — a long-tailed key-value language with an exact entropy rate (ch. 9–10)
* ``tokenizers`` — character, byte-level BPE and WordPiece tokenizers, saved and loaded
* ``tokens``     — token arrays cached on disk, train/validation splits, and the one
  batch sampler every training loop draws from
* ``perturb``    — typos on demand (chapter 14)
"""
