"""The KV cache of chapter 13: same logits, same tokens, clear errors."""

import pytest
import torch

from course_lib.models import GPT, GPTConfig, KVCache

CONFIG = GPTConfig(vocab_size=61, context_length=24, n_layer=3, n_head=4, d_model=32)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(CONFIG).eval()


def test_incremental_logits_equal_a_full_forward(model):
    x = torch.randint(CONFIG.vocab_size, (3, 20))
    with torch.no_grad():
        full = model(x)[0]
        cache = model.new_cache(3)
        pieces = [model(x[:, :7], cache=cache)[0]]  # a prompt, then one token at a time
        pieces += [model(x[:, t:t + 1], cache=cache)[0] for t in range(7, 12)]
        pieces.append(model(x[:, 12:], cache=cache)[0])  # and a block of 8 at once
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=0)
    assert cache.length == 20


@pytest.mark.parametrize("prompt_len, new", [(5, 15), (1, 30), (24, 6), (30, 4)])
def test_greedy_tokens_are_identical_with_and_without_the_cache(model, prompt_len, new):
    """Within the context, and past it (the window slides and the cache is refilled)."""
    start = torch.randint(CONFIG.vocab_size, (2, prompt_len))
    plain = model.generate(start, new, temperature=0)
    cached = model.generate(start, new, temperature=0, use_cache=True)
    assert torch.equal(plain, cached)


def test_sampled_tokens_are_identical_with_the_same_generator(model):
    start = torch.randint(CONFIG.vocab_size, (4, 3))
    a = model.generate(start, 15, top_k=10, generator=torch.Generator().manual_seed(3))
    b = model.generate(start, 15, top_k=10, generator=torch.Generator().manual_seed(3),
                       use_cache=True)
    assert torch.equal(a, b)


def test_cache_size_and_reset(model):
    cache = model.new_cache(2)
    assert isinstance(cache, KVCache)
    # keys and values, 3 layers, 2 sequences, 24 positions, 32 features, 4 bytes
    assert cache.nbytes == 2 * 3 * 2 * 24 * 32 * 4
    with torch.no_grad():
        model(torch.zeros(2, 5, dtype=torch.long), cache=cache)
    assert cache.length == 5 and "length=5/24" in repr(cache)
    cache.reset()
    assert cache.length == 0


def test_cache_errors_name_the_problem(model):
    cache = model.new_cache(2)
    with pytest.raises(ValueError, match=r"batch_size=2; the input has batch size 3"):
        model(torch.zeros(3, 4, dtype=torch.long), cache=cache)
    with torch.no_grad():
        model(torch.zeros(2, 20, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match=r"minus the 20 cached positions"):
        model(torch.zeros(2, 5, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="capacity must be a positive integer"):
        KVCache(1, 1, 1, 0, 4)
