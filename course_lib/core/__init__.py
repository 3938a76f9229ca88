"""Layer 0, ``core``: what every other layer uses, and nothing course-specific.

Imports only the standard library, NumPy and PyTorch — never another ``course_lib`` layer.

* ``validate``   — clear errors for bad input: the argument, the value, what was expected
* ``device``     — cuda → mps → cpu, overridable with ``$COURSE_DEVICE``
* ``seeding``    — seeds and generators, for notebooks; library code takes a ``seed``
* ``atomic``     — files and folders written completely or not at all; file locks
* ``store``      — load-if-present-else-compute with sha256 and provenance
* ``provenance`` — versions, device and time recorded in every result file
* ``losses``     — surprisal, entropy, cross-entropy, KL, perplexity (chapter 1);
  ``IGNORE_INDEX``, the target every loss leaves out
* ``plotting``, ``glue``, ``checks`` — figures, quoted values, self- and tolerance checks
"""
