"""course_lib — the small, tested package behind the course
"LLM Scaling Laws — Principles and Engineering Practice".

One module per concept, in the order the chapters need them:

* ``device``    — cuda → mps → cpu, overridable with ``$COURSE_DEVICE``
* ``seeding``   — one call seeds Python, NumPy and PyTorch
* ``plotting``  — the course's figure style (colour-blind-safe palette)
* ``glue``      — values computed in a notebook, quoted by the book's prose
* ``validate``  — clear errors for bad input (used by every module)
* ``losses``    — surprisal, entropy, cross-entropy, KL, softmax/sigmoid losses,
  perplexity, bits per byte (chapter 1)
* ``checks``    — self-checks for exercise solutions
* ``atomic``    — files written completely or not at all (temp file + ``os.replace``)
* ``corpora``   — Shakespeare, WordNet (and its category task), a synthetic language,
  local text files (chapter 3)
* ``synthetic`` — a random Markov language whose entropy rate is known exactly
* ``tokenizers`` — character and byte-level BPE tokenizers, saved and loaded;
  WordPiece for BERT
* ``data``      — token arrays cached on disk (memory-mapped), train/validation
  splits, language-model batches and the batch function of ``train``
* ``models``    — the GPT of chapter 4 (``models.gpt``) and its KV cache (chapter 11)
* ``flops``     — exact parameter counts and FLOPs per token (chapter 4)
* ``memory``    — training-memory estimate and measurement (chapter 4)
* ``train``     — one training loop for causal and masked LMs, single- or
  multi-process (chapter 5); ``python -m course_lib.train`` (``train_cli``)
* ``checkpoint`` — atomic safetensors checkpoints; ``distributed`` — torchrun setup
* ``mlm``       — BERT's 80/10/10 masking, a tiny BERT, and that BERT pretrained on
  WordNet (``pretrained_tiny_bert``, chapters 5 and 6)
* ``pretrained`` — the packaged MiniLM (sha256-checked), Hub names and local folders,
  as classifiers; a classifier from a masked LM (chapter 6)
* ``finetune``  — the fine-tuning loop: dynamic padding, warmup, early stopping on
  macro-F1, an optional auxiliary masked-LM loss; metrics (chapter 6)
* ``lora``      — LoRA from scratch, merge and unmerge, checked against ``peft`` (chapter 7)
* ``run_cache`` — results of expensive runs: load if present, else compute and store
* ``provenance`` — versions, device and time recorded in every result file
* ``bench``     — ``python -m course_lib.bench {hw,train,lora}``: FLOP/s, step time, MFU,
  LoRA merge latency
* ``scaling``   — power-law and Chinchilla fits, bootstrap, IsoFLOP minima,
  compute-optimal allocation (chapter 8); ``published_laws`` — the papers' coefficients
* ``sweep``     — grids of training runs, resumable and shardable:
  ``python -m course_lib.sweep`` (chapters 9–10); ``results`` — their JSONL files
* ``budget``    — a FLOP budget that refuses runs it cannot afford (chapter 10)
* ``char_gpt``  — small character-level GPTs of Shakespeare, trained once and cached
  (load-if-present-else-train, SHA-256 checked) (chapters 11–12)
* ``compress``  — int8 quantization, magnitude pruning, sizes on disk, generation
  timing (chapter 11); ``distill`` — Hinton's distillation loss
* ``continual`` — replay batches against forgetting; ``perturb`` — typos;
  ``prompting`` — scoring a model's answer to a prompt (chapter 12)

Import what you need: ``from course_lib import losses``.
"""

__version__ = "0.1.0"
