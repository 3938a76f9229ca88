"""Parameter and FLOP counts from configs agree with transformers and PyTorch's counter."""

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
)

from course_lib.models import GPT, GPTConfig, flops


def on_meta(cls, config, **kwargs):
    """Build a transformers model without allocating its weights."""
    with torch.device("meta"):
        return cls(config, **kwargs)


GPT2_SIZES = {"small": (12, 768, 12), "medium": (24, 1024, 16), "large": (36, 1280, 20),
              "xl": (48, 1600, 25)}


@pytest.mark.parametrize("size", GPT2_SIZES)
def test_gpt2_family_counts_match_num_parameters(size):
    n_layer, d, n_head = GPT2_SIZES[size]
    config = GPT2Config(n_layer=n_layer, n_embd=d, n_head=n_head)
    model = on_meta(GPT2LMHeadModel, config)
    counts = flops.param_counts(config)
    assert counts.total == model.num_parameters()
    assert counts.non_embedding == model.num_parameters(exclude_embeddings=True)
    assert counts.embedding == (50257 + 1024) * d


def test_gpt2_small_is_124m():
    assert flops.param_counts(GPT2Config()).total == 124_439_808


@pytest.mark.parametrize("config", [
    GPT2Config(n_layer=3, n_embd=96, n_head=4, vocab_size=333, n_positions=77, n_inner=200),
    GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=100, tie_word_embeddings=False),
])
def test_other_gpt2_configs(config):
    model = on_meta(GPT2LMHeadModel, config)
    assert flops.param_counts(config).total == model.num_parameters()


@pytest.mark.parametrize("config", [
    GPTConfig(vocab_size=100, context_length=32, n_layer=2, n_head=2, d_model=32),
    GPTConfig(vocab_size=100, context_length=32, n_layer=2, n_head=2, d_model=32, bias=False),
    GPTConfig(vocab_size=100, context_length=32, n_layer=1, n_head=2, d_model=32, d_ff=50),
    GPTConfig(vocab_size=100, context_length=32, n_layer=2, n_head=2, d_model=32,
              norm="rmsnorm"),
    GPTConfig(vocab_size=100, context_length=32, n_layer=2, n_head=2, d_model=32,
              mlp="swiglu", bias=False),
    GPTConfig(vocab_size=100, context_length=32, n_layer=2, n_head=2, d_model=32,
              position="sinusoidal", tie_embeddings=False),
    GPTConfig(vocab_size=100, context_length=32, n_layer=2, n_head=2, d_model=32,
              norm="rmsnorm", mlp="swiglu", position="rope", d_ff=50),
    GPTConfig(vocab_size=100, context_length=32, n_layer=2, n_head=2, d_model=32,
              norm="rmsnorm", mlp="swiglu", position="rope", bias=False,
              tie_embeddings=False),
])
def test_course_gpt_counts(config):
    model = GPT(config)
    counts = flops.param_counts(config)
    assert counts.total == sum(p.numel() for p in model.parameters())
    assert counts.embedding == sum(p.numel() for m in model.modules()
                                   if isinstance(m, torch.nn.Embedding) for p in m.parameters())


def test_modern_block_counts_by_hand():
    """SwiGLU: three d x d_ff matrices; RMSNorm: a gain only; RoPE: no position table."""
    d, f, L, V = 64, 160, 3, 500
    config = GPTConfig(vocab_size=V, context_length=128, n_layer=L, n_head=4, d_model=d,
                       d_ff=f, norm="rmsnorm", mlp="swiglu", position="rope", bias=False,
                       tie_embeddings=False)
    counts = flops.param_counts(config)
    assert counts.embedding == V * d  # no position parameters
    assert counts.non_embedding == L * (4 * d * d + 3 * d * f + 2 * d) + d + V * d
    assert flops.forward_flops_breakdown(config).feedforward == 2 * L * 3 * d * f


@pytest.mark.parametrize("changes", [
    {}, {"num_key_value_heads": 2}, {"num_key_value_heads": 1, "head_dim": 32},
    {"attention_bias": True, "tie_word_embeddings": True}, {"mlp_bias": True},
])
def test_llama_configs_match_num_parameters(changes):
    """Grouped-query attention too: keys and values of n_kv_head heads."""
    config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=150,
                         num_hidden_layers=2, num_attention_heads=8, **changes)
    model = on_meta(LlamaForCausalLM, config)
    counts = flops.param_counts(config)
    assert counts.total == model.num_parameters()
    assert counts.non_embedding == model.num_parameters(exclude_embeddings=True)


def test_llama_2_7b_is_6_74b():
    """LlamaConfig's defaults are Llama-2-7B's shape (Touvron et al. 2023)."""
    assert flops.param_counts(LlamaConfig()).total == 6_738_415_616


BERT = BertConfig(vocab_size=500, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=128, max_position_embeddings=64, num_labels=5)


@pytest.mark.parametrize("head, cls, kwargs", [
    ("none", BertModel, {"add_pooling_layer": False}),
    ("pooler", BertModel, {}),
    ("mlm", BertForMaskedLM, {}),
    ("classifier", BertForSequenceClassification, {}),
])
def test_bert_counts_match_num_parameters(head, cls, kwargs):
    model = on_meta(cls, BERT, **kwargs)
    counts = flops.param_counts(BERT, head=head)
    assert counts.total == model.num_parameters()
    assert counts.non_embedding == model.num_parameters(exclude_embeddings=True)


def test_bert_base_is_110m():
    assert flops.param_counts(BertConfig(), head="pooler").total == 109_482_240


def test_unknown_config_and_head_are_refused():
    with pytest.raises(TypeError, match="GPTConfig, GPT2Config, LlamaConfig or BertConfig; "
                                        "got dict"):
        flops.param_counts({})
    with pytest.raises(ValueError, match="head must be"):
        flops.param_counts(BERT, head="nsp")


CONFIG = GPTConfig(vocab_size=300, context_length=64, n_layer=2, n_head=4, d_model=64)


def test_flops_follow_kaplan_table_1():
    b = flops.forward_flops_breakdown(CONFIG)
    d, L, T, V = 64, 2, 64, 300
    n_weights = 12 * L * d * d  # non-embedding weight matrices with d_ff = 4d
    assert b.non_embedding == 2 * n_weights + 2 * L * T * d
    assert b.unembedding == 2 * d * V
    assert flops.flops_per_token(CONFIG) == 3 * b.non_embedding
    assert flops.flops_per_token(CONFIG, training=False, include_unembedding=True) == b.total
    assert flops.forward_flops_breakdown(CONFIG, 16).attention_scores == 2 * L * 16 * d


MODERN = GPTConfig(vocab_size=300, context_length=64, n_layer=2, n_head=4, d_model=64,
                   d_ff=176, norm="rmsnorm", mlp="swiglu", position="rope", bias=False,
                   tie_embeddings=False)


@pytest.mark.parametrize("config", [CONFIG, MODERN], ids=["gpt2", "modern"])
def test_flop_count_matches_pytorch_flop_counter(config):
    """A dense (math) attention computes Q K^T and A V in full: twice Kaplan's masked count.
    The modern block: three SwiGLU matrices and an untied head; norms, SiLU and RoPE are
    not matrix products."""
    model = GPT(config)
    x = torch.randint(300, (2, 64))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(x, torch.roll(x, -1, 1))[1].backward()
    b = flops.forward_flops_breakdown(config)
    assert counter.get_total_flops() == 3 * x.numel() * (b.total + b.attention_scores)


def test_attention_term_is_the_causal_average_over_positions():
    """Position t of n attends to t positions: 4 t d FLOPs per layer; the mean over
    t = 1..n is 2 (n + 1) d, Kaplan's 2 n d up to the + 1."""
    n, d, L = 64, 64, 2
    causal_mean = sum(4 * t * d for t in range(1, n + 1)) / n
    assert causal_mean == 2 * (n + 1) * d
    b = flops.forward_flops_breakdown(CONFIG)
    assert b.attention_scores == L * 2 * n * d == pytest.approx(L * causal_mean, rel=1 / n)




def test_grouped_query_llama_forward_matches_pytorch_flop_counter():
    config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=150,
                         num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2,
                         max_position_embeddings=32, attn_implementation="eager")
    model = LlamaForCausalLM(config).eval()
    x = torch.randint(300, (2, 32))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(input_ids=x)
    b = flops.forward_flops_breakdown(config)
    assert counter.get_total_flops() == x.numel() * (b.total + b.attention_scores)


def test_training_flops_is_six_n_d():
    assert flops.training_flops(1e9, 2e10) == 1.2e20
    with pytest.raises(ValueError, match=r"n_tokens must be a positive number \(or an array "
                                         r"of them\); got 0"):
        flops.training_flops(1e6, 0)
    both = flops.training_flops(np.array([1e9, 2e9]), 2e10)  # arrays broadcast
    assert both.tolist() == [1.2e20, 2.4e20]
    assert flops.training_flops(1e9, 2e10, flops_per_param_token=8) == 1.6e20
    with pytest.raises(ValueError, match="context_length must be a positive integer"):
        flops.forward_flops_breakdown(CONFIG, 0)
