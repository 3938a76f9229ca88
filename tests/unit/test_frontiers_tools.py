"""Chapter 14's tools: replay batches, typos, answer scoring."""

import pytest
import torch

from course_lib.data.perturb import add_typos
from course_lib.models import GPT, GPTConfig
from course_lib.models.prompting import score_answer
from course_lib.training.continual import replay_batches


def constant(value):
    def get(split, generator):
        torch.randint(2, (1,), generator=generator)  # consume randomness like get_batch
        x = torch.full((8, 5), value if split == "train" else value + 10)
        return x, x + 1
    return get


def test_replay_mixes_the_requested_share_and_validates_on_the_old_task():
    get = replay_batches(constant(1), constant(2), 0.25)
    x, y = get("train", torch.Generator().manual_seed(0))
    assert x.shape == (8, 5) and (x == 2).sum() == 2 * 5 and (x == 1).sum() == 6 * 5
    assert torch.equal(y, x + 1)
    assert (get("val", torch.Generator())[0] == 12).all()
    plain = replay_batches(constant(1), constant(2), 0.0, val_from="new")
    assert (plain("train", torch.Generator())[0] == 1).all()
    assert (plain("val", torch.Generator())[0] == 11).all()


@pytest.mark.parametrize("kwargs, match", [
    (dict(replay_fraction=1.0), "replay_fraction must be a number in"),
    (dict(replay_fraction=0.1, val_from="both"), "val_from must be 'old' or 'new'"),
])
def test_replay_refuses_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        replay_batches(constant(1), constant(2), **kwargs)


def test_typos_are_reproducible_proportional_and_spare_non_letters():
    text = "the quick brown fox jumps over the lazy dog, " * 40
    assert add_typos(text, 0.0) == text
    noisy = add_typos(text, 0.1, seed=3)
    assert noisy == add_typos(text, 0.1, seed=3) != add_typos(text, 0.1, seed=4)
    assert noisy.count(",") == text.count(",") and noisy.count(" ") == text.count(" ")
    changed = sum(a != b for a, b in zip(text.split(), noisy.split()))
    assert 0.2 < changed / len(text.split()) < 0.6  # about 10% of ~3.5 letters per word
    with pytest.raises(ValueError, match=r"rate must be a fraction of letters in \[0, 1\]"):
        add_typos(text, 1.5)


def test_score_answer_matches_a_manual_computation_and_greedy_generation():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=9, context_length=16, n_layer=1, n_head=1,
                          d_model=8)).eval()
    prompt = [1, 2, 3]
    greedy = model.generate(torch.tensor([prompt]), 3, temperature=0)[0, 3:].tolist()
    score = score_answer(model, prompt, greedy)
    assert score.greedy and score.n_tokens == 3
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([prompt + greedy]))[0][0], -1)
    manual = sum(logp[2 + i, t].item() for i, t in enumerate(greedy))
    assert score.logprob == pytest.approx(manual, abs=1e-5)
    other = [(greedy[0] + 1) % 9] + greedy[1:]
    assert not score_answer(model, prompt, other).greedy
    with pytest.raises(ValueError, match="must be non-empty"):
        score_answer(model, [], [1])
