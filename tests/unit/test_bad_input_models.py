"""Bad input to the models layer (GPT, KV cache, LoRA, compression, memory, FLOPs,
prompting) gets an error that names the argument, shows the value and says what was
expected — before a CUDA device assert, a NaN output or a silent wrong answer."""

import math

import numpy as np
import pytest
import torch
from bad_input_table import assert_clear_error, case_ids
from torch import nn

from course_lib.core.validate import require_token_ids
from course_lib.models import compress, flops, memory, nf4, prompting
from course_lib.models.gpt import GPT, GPTConfig
from course_lib.models.kv_cache import KVCache
from course_lib.models.lora import LoRALinear, apply_lora, unmerge_lora

V = 16
SHAPE = dict(vocab_size=V, context_length=8, n_layer=1, n_head=2, d_model=8)
CONFIG = GPTConfig(**SHAPE)
torch.manual_seed(0)
MODEL = GPT(CONFIG).eval()
INF, NAN = math.inf, math.nan


def ids(*rows: list[int]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.long)


def config(**changes) -> GPTConfig:
    return GPTConfig(**(SHAPE | changes))


def lora_net() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))


def merged_layer() -> LoRALinear:
    layer = LoRALinear(nn.Linear(4, 3), 2, 4)
    layer.merge()
    return layer


def nf4_lora_layer() -> LoRALinear:
    return LoRALinear(nf4.NF4Linear.from_linear(nn.Linear(4, 16)), 2, 4)


class TiedHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.emb.weight


def full_cache_forward():
    cache = MODEL.new_cache(1)
    MODEL(ids([1] * 6), cache=cache)
    return MODEL(ids([1, 2, 3]), cache=cache)


CASES = [
    # --- GPTConfig ----------------------------------------------------------------------
    (lambda: config(vocab_size=0), ValueError, ["vocab_size", "integer >= 1", "0"]),
    (lambda: config(n_layer=2.0), TypeError, ["n_layer", "integer", "2.0"]),
    (lambda: config(n_head=True), TypeError, ["n_head", "integer", "True"]),
    (lambda: config(context_length=-4), ValueError, ["context_length", ">= 1", "-4"]),
    (lambda: config(d_ff=0), ValueError, ["d_ff", ">= 1", "0"]),
    (lambda: config(dropout=NAN), ValueError, ["dropout", "finite", "nan"]),
    (lambda: config(dropout=-0.1), ValueError, ["dropout", "[0, 1)", "-0.1"]),
    (lambda: config(dropout="0.1"), TypeError, ["dropout", "'0.1'", "str"]),
    (lambda: config(layer_norm_eps=0.0), ValueError, ["layer_norm_eps", "positive", "0.0"]),
    (lambda: config(init_std=-0.02), ValueError, ["init_std", ">= 0", "-0.02"]),
    (lambda: config(init_std=INF), ValueError, ["init_std", "finite", "inf"]),
    (lambda: config(bias="no"), TypeError, ["bias", "True or False", "'no'"]),
    (lambda: config(norm="rms"), ValueError, ["norm", "'layernorm', 'rmsnorm'", "'rms'"]),
    (lambda: config(mlp="relu"), ValueError, ["mlp", "'gelu', 'swiglu'", "'relu'"]),
    (lambda: config(position="alibi"), ValueError,
     ["position", "'learned', 'sinusoidal', 'rope'", "'alibi'"]),
    (lambda: config(d_model=6, position="rope"), ValueError,
     ["position='rope'", "head_dim", "even", "3"]),
    (lambda: config(d_model=7, n_head=1, position="sinusoidal"), ValueError,
     ["position='sinusoidal'", "d_model must be even", "7"]),
    (lambda: config(rope_theta=0), ValueError, ["rope_theta", "positive", "0"]),
    (lambda: config(rope_theta=NAN), ValueError, ["rope_theta", "finite", "nan"]),
    (lambda: config(tie_embeddings="no"), TypeError, ["tie_embeddings", "True or False", "'no'"]),
    (lambda: config(norm="rmsnorm").to_hf(), ValueError,
     ["norm='rmsnorm'", "GPT-2", "norm='layernorm'"]),
    (lambda: config(bias=False).to_hf(), ValueError, ["bias=False", "GPT-2", "bias=True"]),
    (lambda: CONFIG.to_hf_llama(), ValueError, ["norm='layernorm'", "Llama", "norm='rmsnorm'"]),
    (lambda: config(norm="rmsnorm", mlp="swiglu", position="rope", dropout=0.1).to_hf_llama(),
     ValueError, ["dropout=0.1", "Llama", "dropout=0.0"]),
    (lambda: GPTConfig.from_hf_llama(CONFIG.to_hf()), TypeError,
     ["hf_config", "LlamaConfig", "GPT2Config"]),
    (lambda: GPT.from_hf_llama(MODEL), TypeError, ["hf_model", "LlamaForCausalLM", "GPT"]),
    (lambda: GPT(SHAPE), TypeError, ["config", "GPTConfig", "dict"]),
    # --- GPT.forward: token ids outside the vocabulary, before an IndexError/device assert
    (lambda: MODEL(ids([1, 2, V])), ValueError,
     ["idx", f"token id {V}", "position (0, 2)", f"[0, {V})", f"vocab_size={V}"]),
    (lambda: MODEL(ids([1, 2], [-1, 0])), ValueError, ["idx", "token id -1", "position (1, 0)"]),
    (lambda: MODEL(ids([1, 2]), ids([1, V])), ValueError,
     ["targets", f"token id {V}", "position (0, 1)", f"vocab_size={V}", "-100"]),
    (lambda: MODEL(ids([1, 2]), ids([-5, 1])), ValueError, ["targets", "token id -5", "(0, 0)"]),
    (lambda: MODEL(ids([1, 2]), torch.tensor([[1.0, 2.0]])), ValueError,
     ["targets", "integer", "torch.float32"]),
    (lambda: MODEL(ids([1, 2]), ids([1, 2, 3])), ValueError, ["targets", "(1, 3)", "(1, 2)"]),
    (lambda: MODEL(torch.zeros(2, 0, dtype=torch.long)), ValueError, ["idx", "empty", "(2, 0)"]),
    (lambda: MODEL(torch.zeros(1, 3)), ValueError, ["idx", "integer tensor", "torch.float32"]),
    (lambda: MODEL(np.zeros((1, 3), dtype=np.int64)), ValueError, ["idx", "integer tensor"]),
    (lambda: MODEL(torch.zeros(3, dtype=torch.long)), ValueError, ["idx", "(B, T)", "(3,)"]),
    (lambda: MODEL(torch.zeros(1, 9, dtype=torch.long)), ValueError,
     ["T=9", "context_length=8"]),
    # --- GPT.generate ---------------------------------------------------------------------
    (lambda: MODEL.generate(ids([1]), 2, temperature=INF), ValueError,
     ["temperature", "finite", "inf"]),
    (lambda: MODEL.generate(ids([1]), 2, temperature=NAN), ValueError,
     ["temperature", "finite", "nan"]),
    (lambda: MODEL.generate(ids([1]), 2, top_k=0), ValueError, ["top_k", ">= 1", "0"]),
    (lambda: MODEL.generate(ids([1]), -1), ValueError, ["max_new_tokens", ">= 0", "-1"]),
    (lambda: MODEL.generate(ids([1]), 1.5), TypeError, ["max_new_tokens", "integer", "1.5"]),
    (lambda: MODEL.generate(ids([99]), 2), ValueError,
     ["idx", "token id 99", "position (0, 0)", f"vocab_size={V}"]),
    (lambda: MODEL.generate(torch.zeros(1, 0, dtype=torch.long), 2), ValueError,
     ["idx", "empty"]),
    (lambda: MODEL.param_groups(-0.1), ValueError, ["weight_decay", ">= 0", "-0.1"]),
    (lambda: MODEL.param_groups(NAN), ValueError, ["weight_decay", "finite", "nan"]),
    # --- KV cache -------------------------------------------------------------------------
    (lambda: KVCache(1, 0, 1, 4, 2), ValueError, ["batch_size", "positive integer", "0"]),
    (lambda: KVCache(1.0, 1, 1, 4, 2), TypeError, ["n_layer", "positive integer", "1.0"]),
    (lambda: MODEL.new_cache(0), ValueError, ["batch_size", "positive integer", "0"]),
    (lambda: MODEL(ids([1]), cache=MODEL.new_cache(2)), ValueError,
     ["batch_size=2", "batch size 1", "model.new_cache(1)"]),
    (full_cache_forward, ValueError, ["T=3", "context_length=8", "6 cached positions"]),
    # --- LoRA -----------------------------------------------------------------------------
    (lambda: LoRALinear(nn.Linear(4, 3), 2, INF), ValueError, ["alpha", "finite", "inf"]),
    (lambda: LoRALinear(nn.Linear(4, 3), 2, NAN), ValueError, ["alpha", "finite", "nan"]),
    (lambda: LoRALinear(nn.Linear(4, 3), 2, 0), ValueError, ["alpha", "positive number", "0"]),
    (lambda: LoRALinear(nn.Linear(4, 3), 2.0, 4), TypeError,
     ["r (the rank)", "positive integer", "2.0"]),
    (lambda: LoRALinear(nn.Linear(4, 3), 0, 4), ValueError, ["r (the rank)", "0"]),
    (lambda: LoRALinear(nn.Linear(4, 3), 2, 4, dropout=1.0), ValueError,
     ["dropout", "[0, 1)", "1.0"]),
    (lambda: LoRALinear(nn.Linear(4, 3), 2, 4, dropout="0.1"), TypeError,
     ["dropout", "number", "'0.1'"]),
    (lambda: LoRALinear(nn.Conv1d(4, 3, 1), 2, 4), TypeError, ["base", "nn.Linear", "Conv1d"]),
    (lambda: apply_lora(lora_net(), alpha=INF, target_modules=("0",)), ValueError,
     ["alpha", "finite", "inf"]),
    (lambda: apply_lora(lora_net(), target_modules=("query",)), ValueError,
     ["target_modules", "'query'", "match no nn.Linear", "'0'"]),
    (lambda: apply_lora("model"), TypeError, ["model", "nn.Module", "str"]),
    (lambda: merged_layer().merge(), RuntimeError, ["already merged"]),
    (lambda: unmerge_lora(lora_net()) and unmerge_lora(
        apply_lora(lora_net(), target_modules=("0",))), RuntimeError, ["not merged"]),
    # --- compression ----------------------------------------------------------------------
    (lambda: compress.symmetric_int8(torch.zeros(0)), ValueError, ["weight", "empty", "(0,)"]),
    (lambda: compress.symmetric_int8(torch.tensor([1.0, NAN])), ValueError,
     ["weight", "non-finite", "nan", "(1,)"]),
    (lambda: compress.symmetric_int8(torch.tensor([1, 2])), TypeError,
     ["weight", "floating-point"]),
    (lambda: compress.symmetric_int8(torch.ones(3), per_row=True), ValueError,
     ["per_row=True", "2-D", "(3,)"]),
    (lambda: compress.prune_magnitude(lora_net(), 1.0), ValueError, ["amount", "[0, 1)", "1.0"]),
    (lambda: compress.prune_magnitude(lora_net(), NAN), ValueError, ["amount", "finite", "nan"]),
    (lambda: compress.quantize_int8(nn.Sequential(nn.ReLU())), ValueError, ["no nn.Linear"]),
    (lambda: compress.sparsity(nn.Sequential(nn.ReLU())), ValueError, ["no nn.Linear"]),
    (lambda: compress.time_generation(MODEL, ids([1]), 1, use_cache=False, repeats=0),
     ValueError, ["repeats", "positive integer", "0"]),
    (lambda: compress.time_generation(MODEL, [[1]], 1, use_cache=False), TypeError,
     ["prompt", "tensor", "list"]),
    # --- NF4 (QLoRA) ----------------------------------------------------------------------
    (lambda: nf4.quantize_nf4(torch.tensor([1, 2])), TypeError,
     ["weight", "floating-point", "torch.int64"]),
    (lambda: nf4.quantize_nf4(np.ones(64)), TypeError, ["weight", "floating-point", "ndarray"]),
    (lambda: nf4.quantize_nf4(torch.zeros(0)), ValueError, ["weight", "empty", "(0,)"]),
    (lambda: nf4.quantize_nf4(torch.tensor([1.0, INF])), ValueError,
     ["weight", "non-finite", "inf", "(1,)"]),
    (lambda: nf4.quantize_nf4(torch.ones(64), block_size=48), ValueError,
     ["block_size", "power of two", "48"]),
    (lambda: nf4.quantize_nf4(torch.ones(64), block_size=1), ValueError,
     ["block_size", "power of two >= 2", "1"]),
    (lambda: nf4.quantize_nf4(torch.ones(64), block_size=64.0), TypeError,
     ["block_size", "power of two", "64.0"]),
    (lambda: nf4.quantize_nf4(torch.ones(64), constants_block_size=100), ValueError,
     ["constants_block_size", "power of two", "100"]),
    (lambda: nf4.quantize_nf4(torch.ones(64), double_quant="yes"), TypeError,
     ["double_quant", "True or False", "'yes'"]),
    (lambda: nf4.pack_codes(torch.tensor([3, 16])), ValueError,
     ["codes", "16", "position 1", "[0, 15]"]),
    (lambda: nf4.pack_codes(torch.tensor([-1, 2])), ValueError, ["codes", "-1", "position 0"]),
    (lambda: nf4.pack_codes(torch.tensor([1, 2, 3])), ValueError, ["codes", "even", "(3,)"]),
    (lambda: nf4.pack_codes(torch.tensor([1.0, 2.0])), TypeError,
     ["codes", "integer", "torch.float32"]),
    (lambda: nf4.unpack_codes(torch.tensor([1, 2])), TypeError,
     ["packed", "uint8", "torch.int64"]),
    (lambda: nf4.quantize_constants(torch.tensor([1, 2])), TypeError,
     ["absmax", "floating-point", "torch.int64"]),
    (lambda: nf4.dequantize_nf4(torch.ones(4)), TypeError, ["q", "NF4Weight", "Tensor"]),
    (lambda: nf4.dequantize_nf4(nf4.quantize_nf4(torch.ones(64)), torch.int8), TypeError,
     ["dtype", "floating-point", "torch.int8"]),
    (lambda: nf4.bits_per_parameter("q"), TypeError, ["q", "NF4Weight", "str"]),
    (lambda: nf4.NF4Linear(4, 3, compute_dtype=torch.int8), TypeError,
     ["compute_dtype", "torch.int8", "torch.bfloat16"]),
    (lambda: nf4.NF4Linear(0, 3), ValueError, ["in_features", "positive integer", "0"]),
    (lambda: nf4.NF4Linear.from_linear(nn.Conv1d(4, 3, 1)), TypeError,
     ["linear", "nn.Linear", "Conv1d"]),
    (lambda: nf4.NF4Linear.from_linear(nn.Linear(4, 3))(torch.ones(2, 5)), ValueError,
     ["x", "(..., 4)", "(2, 5)"]),
    (lambda: nf4.quantize_linears("model", target_modules=("0",)), TypeError,
     ["model", "nn.Module", "str"]),
    (lambda: nf4.quantize_linears(lora_net(), target_modules=("query",)), ValueError,
     ["target_modules", "'query'", "match no nn.Linear", "'0'"]),
    (lambda: nf4.quantize_linears(TiedHead(), target_modules=("head",)), ValueError,
     ["target_modules", "'head'", "tied to an embedding"]),
    (lambda: nf4.quantize_linears(lora_net(), target_modules=("0",), block_size=3),
     ValueError, ["block_size", "power of two", "3"]),
    (lambda: nf4_lora_layer().merge(), TypeError,
     ["cannot merge", "NF4Linear", "to_linear()"]),
    # --- memory and FLOPs -----------------------------------------------------------------
    (lambda: memory.activation_bytes(CONFIG, 0), ValueError,
     ["batch_size", "positive integer", "0"]),
    (lambda: memory.activation_bytes(CONFIG, 2, 0), ValueError,
     ["seq_len", "positive integer", "0"]),
    (lambda: memory.activation_bytes(CONFIG, 2, bytes_per_value=0), ValueError,
     ["bytes_per_value", "0"]),
    (lambda: memory.training_memory(CONFIG, 2.5), TypeError, ["batch_size", "2.5"]),
    (lambda: memory.training_memory(CONFIG, 2, optimizer_states=-1), ValueError,
     ["optimizer_states", "non-negative", "-1"]),
    (lambda: flops.param_counts("gpt2"), TypeError, ["config", "GPTConfig", "str"]),
    (lambda: flops.forward_flops_breakdown(CONFIG, 0), ValueError,
     ["context_length", "positive integer"]),
    (lambda: flops.training_flops(0, 10), ValueError, ["positive number", "0"]),
    # --- prompting ------------------------------------------------------------------------
    (lambda: prompting.score_answer(MODEL, [], [1]), ValueError, ["prompt_ids", "non-empty"]),
    (lambda: prompting.score_answer(MODEL, [V + 3], [1]), ValueError,
     ["token id 19", f"vocab_size={V}"]),
]


@pytest.mark.parametrize("call, exc, words", CASES, ids=case_ids(CASES, "models"))
def test_bad_input_gets_a_clear_error(call, exc, words):
    assert_clear_error(call, exc, words)


# NumPy scalars are numbers: everywhere a Python int or float is accepted, so are they.
ACCEPTED = [
    lambda: config(vocab_size=np.int64(V), dropout=np.float32(0.1), bias=np.bool_(True)),
    lambda: config(position="rope", rope_theta=np.float32(500.0),
                   tie_embeddings=np.bool_(False)),
    lambda: MODEL.generate(ids([1]), np.int64(2), temperature=np.float32(0.5),
                           top_k=np.int32(3)),
    lambda: MODEL.new_cache(np.int64(2)),
    lambda: LoRALinear(nn.Linear(4, 3), np.int64(2), np.float32(4.0), np.float64(0.1)),
    lambda: compress.prune_magnitude(lora_net(), np.float32(0.5)),
    lambda: memory.training_memory(CONFIG, np.int64(2), np.int32(4)),
    lambda: nf4.quantize_nf4(torch.ones(64), block_size=np.int64(32),
                             constants_block_size=np.int32(4), double_quant=np.bool_(True)),
]


@pytest.mark.parametrize("call", ACCEPTED, ids=case_ids(ACCEPTED, "numpy"))
def test_numpy_scalars_are_accepted(call):
    call()


def test_numpy_settings_are_stored_as_python_numbers():
    cfg = config(vocab_size=np.int64(V), dropout=np.float32(0.5))
    assert type(cfg.vocab_size) is int and type(cfg.dropout) is float
    assert type(config(rope_theta=np.float32(500.0)).rope_theta) is float
    layer = LoRALinear(nn.Linear(4, 3), np.int64(2), np.float32(4.0))
    assert type(layer.r) is int and type(layer.alpha) is float and layer.scaling == 2.0
    assert repr(LoRALinear(nn.Linear(4, 3), 2, 16)).count("alpha=16,") == 1  # 16 stays 16


def test_a_token_id_equal_to_vocab_size_is_named_with_its_position():
    idx = torch.zeros(2, 6, dtype=torch.long)
    idx[1, 4] = V
    with pytest.raises(ValueError) as info:
        MODEL(idx)
    assert str(info.value) == (f"idx holds token id {V} at position (1, 4), outside the "
                               f"vocabulary [0, {V}) of vocab_size={V}")


def test_ignored_targets_pass_the_check_and_the_loss_is_unchanged():
    x, y = ids([1, 2, 3]), ids([2, 3, -100])
    _, loss = MODEL(x, y)
    logits = MODEL(x)[0]
    expected = nn.functional.cross_entropy(logits[0, :2], y[0, :2])
    assert torch.allclose(loss, expected)
    _, loss32 = MODEL(x, y.int())  # int32 targets are accepted, like int32 ids
    assert torch.equal(loss, loss32)


def test_generate_checks_the_prompt_once_and_gives_the_same_tokens():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = MODEL.generate(ids([1, 2]), 5, generator=g1)
    b = MODEL.generate(ids([1, 2]), 5, generator=g2, use_cache=True)
    assert torch.equal(a, b) and int(a.max()) < V


def test_the_id_check_locates_the_bad_id_only_on_failure(monkeypatch):
    from course_lib.core import validate

    located, search = [], validate.first_index
    monkeypatch.setattr(validate, "first_index", lambda mask: located.append(mask) or search(mask))
    idx = torch.randint(V, (4, 8))
    require_token_ids("idx", idx, V)  # the common case: comparisons and one any(), no search
    assert located == []
    idx[3, 7] = V
    with pytest.raises(ValueError, match=r"position \(3, 7\)"):
        require_token_ids("idx", idx, V)
    assert len(located) == 1
