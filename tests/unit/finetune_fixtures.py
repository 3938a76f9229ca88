"""A tiny BERT classifier and word-level tokenizer built in memory, for fast tests."""

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    PreTrainedTokenizerFast,
)

SPECIAL = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"]
WORDS = [f"w{i}" for i in range(40)]


def word_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {t: i for i, t in enumerate(SPECIAL + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    from tokenizers.processors import TemplateProcessing

    backend.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]",
                                   mask_token="[MASK]", unk_token="[UNK]")


def tiny_config(num_labels: int = 3, **kwargs) -> BertConfig:
    return BertConfig(vocab_size=len(SPECIAL) + len(WORDS), hidden_size=32,
                      num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                      max_position_embeddings=32, num_labels=num_labels, **kwargs)


def tiny_classifier(num_labels: int = 3, seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    return BertForSequenceClassification(tiny_config(num_labels))


def tiny_masked_lm(seed: int = 0) -> BertForMaskedLM:
    torch.manual_seed(seed)
    return BertForMaskedLM(tiny_config())


def toy_task(n: int, seed: int = 0, num_labels: int = 3) -> list[tuple[str, int]]:
    """Texts of random words; the label is announced by one of words w0..w2."""
    gen = torch.Generator().manual_seed(seed)
    examples = []
    for _ in range(n):
        label = int(torch.randint(num_labels, (1,), generator=gen))
        length = int(torch.randint(2, 8, (1,), generator=gen))
        words = [f"w{int(i)}" for i in torch.randint(3, 40, (length,), generator=gen)]
        words.insert(int(torch.randint(length, (1,), generator=gen)), f"w{label}")
        examples.append((" ".join(words), label))
    return examples
