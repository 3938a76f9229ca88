"""A tiny BERT, built from a config with no download (chapters 4–6).

:func:`tiny_bert_config` gives a ``transformers.BertConfig`` of a small shape (MLP width
``4 d_model``, as in BERT); :func:`tiny_bert` a randomly initialised ``BertForMaskedLM``
of it, small enough to train on a CPU. The course pretrains one on WordNet
(:mod:`course_lib.recipes.tiny_bert`) and fine-tunes it (chapter 6).
"""

from __future__ import annotations

__all__ = ["tiny_bert_config", "tiny_bert"]


def tiny_bert_config(vocab_size: int, *, context_length: int = 128, n_layer: int = 2,
                     n_head: int = 4, d_model: int = 128, dropout: float = 0.1, **kwargs):
    """A ``transformers.BertConfig`` for a small BERT (MLP width ``4 d_model``).

    Extra keyword arguments go to ``BertConfig`` (for example ``num_labels``,
    ``pad_token_id``).
    """
    from transformers import BertConfig

    if d_model % n_head:
        raise ValueError(f"d_model ({d_model}) must be divisible by n_head ({n_head})")
    return BertConfig(
        vocab_size=vocab_size, hidden_size=d_model, num_hidden_layers=n_layer,
        num_attention_heads=n_head, intermediate_size=4 * d_model,
        max_position_embeddings=context_length, hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout, **kwargs)


def tiny_bert(config=None, **kwargs):
    """A randomly initialised ``BertForMaskedLM``; ``config`` or :func:`tiny_bert_config` kwargs."""
    from transformers import BertForMaskedLM

    if config is None:
        config = tiny_bert_config(**kwargs)
    elif kwargs:
        raise TypeError("pass either config or keyword arguments for tiny_bert_config, not both")
    return BertForMaskedLM(config)
