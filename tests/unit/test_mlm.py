"""BERT's 80/10/10 masking, checked against transformers' collator; a tiny BERT round trip."""

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import BertForMaskedLM, DataCollatorForLanguageModeling, PreTrainedTokenizerFast

from course_lib.core.losses import IGNORE_INDEX
from course_lib.models.bert import tiny_bert, tiny_bert_config
from course_lib.training.masked import mask_tokens

SPECIAL = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"]
VOCAB = {name: i for i, name in enumerate(SPECIAL)} | {f"w{i}": i + 5 for i in range(45)}


def word_tokenizer() -> PreTrainedTokenizerFast:
    """A 50-token word-level tokenizer built in memory (nothing is downloaded)."""
    tok = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", unk_token="[UNK]")


def corpus(rows=200, length=256, seed=0) -> torch.Tensor:
    ids = torch.randint(5, 50, (rows, length), generator=torch.Generator().manual_seed(seed))
    ids[:, 0], ids[:, -1] = VOCAB["[CLS]"], VOCAB["[SEP]"]
    return ids


def statistics(ids, inputs, labels) -> dict[str, float]:
    """Share of ordinary tokens selected; among the selected, share masked / random / kept."""
    selected = labels != IGNORE_INDEX
    masked = selected & (inputs == VOCAB["[MASK]"])
    kept = selected & (inputs == ids)
    return {"selected": selected.float().sum().item() / (ids >= 5).sum().item(),
            "masked": (masked.sum() / selected.sum()).item(),
            "random": ((selected & ~masked & ~kept).sum() / selected.sum()).item(),
            "kept": (kept.sum() / selected.sum()).item()}


def test_masking_statistics_match_the_transformers_collator():
    ids = corpus()
    tokenizer = word_tokenizer()
    ours = statistics(ids, *mask_tokens(
        ids, mask_token_id=VOCAB["[MASK]"], vocab_size=len(VOCAB),
        generator=torch.Generator().manual_seed(1), special_token_ids=tokenizer.all_special_ids))
    torch.manual_seed(2)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    batch = collator([{"input_ids": row} for row in ids.tolist()])
    theirs = statistics(ids, batch["input_ids"], batch["labels"])
    # a random replacement hits the original token 1 time in 50: it then counts as kept
    nominal = {"selected": 0.15, "masked": 0.8, "random": 0.1 * 49 / 50,
               "kept": 0.1 + 0.1 / 50}
    for key, value in nominal.items():
        tolerance = 0.006 if key == "selected" else 0.02  # about 4 standard errors
        assert abs(ours[key] - value) < tolerance, (key, ours)
        assert abs(theirs[key] - value) < tolerance, (key, theirs)


def test_labels_and_special_tokens():
    ids = corpus(rows=20)
    inputs, labels = mask_tokens(ids, mask_token_id=3, vocab_size=50,
                                 generator=torch.Generator().manual_seed(0),
                                 special_token_ids=[0, 1, 2, 3, 4])
    selected = labels != IGNORE_INDEX
    assert torch.equal(labels[selected], ids[selected])
    assert torch.equal(inputs[~selected], ids[~selected])  # unselected tokens untouched
    assert not selected[:, 0].any() and not selected[:, -1].any()  # [CLS], [SEP] never chosen
    assert torch.equal(ids, corpus(rows=20))  # the input is not modified


def test_masking_is_reproducible_with_a_generator():
    ids = corpus(rows=4)
    a = mask_tokens(ids, mask_token_id=3, vocab_size=50, generator=torch.Generator().manual_seed(7))
    b = mask_tokens(ids, mask_token_id=3, vocab_size=50, generator=torch.Generator().manual_seed(7))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("kwargs, message", [
    (dict(mlm_probability=1.5), "mlm_probability must be a probability in \\[0, 1\\]; got 1.5"),
    (dict(mask_token_id=50), "mask_token_id must be an id in \\[0, vocab_size=50\\); got 50"),
    (dict(mask_replace_prob=0.9, random_replace_prob=0.2), "must be <= 1"),
])
def test_bad_masking_arguments(kwargs, message):
    arguments = dict(mask_token_id=3, vocab_size=50) | kwargs
    with pytest.raises(ValueError, match=message):
        mask_tokens(corpus(rows=1), **arguments)
    with pytest.raises(TypeError, match="input_ids must be an int64 tensor"):
        mask_tokens(corpus(rows=1).float(), mask_token_id=3, vocab_size=50)


def test_tiny_bert_save_pretrained_from_pretrained_round_trip(tmp_path):
    torch.manual_seed(0)
    model = tiny_bert(vocab_size=50, context_length=32, n_layer=1, n_head=2, d_model=32).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "config.json").is_file()
    loaded = BertForMaskedLM.from_pretrained(tmp_path).eval()
    ids = corpus(rows=2, length=32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits,
                                   atol=0, rtol=0)


def test_tiny_bert_config():
    config = tiny_bert_config(100, d_model=64, n_head=4, num_labels=3)
    assert (config.hidden_size, config.intermediate_size, config.num_labels) == (64, 256, 3)
    with pytest.raises(ValueError, match=r"d_model \(64\) must be divisible by n_head \(5\)"):
        tiny_bert_config(100, d_model=64, n_head=5)
    with pytest.raises(TypeError, match="either config or keyword"):
        tiny_bert(config, vocab_size=5)
