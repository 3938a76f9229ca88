"""LoRA from scratch equals peft configured alike; merging is exact to float rounding."""

import copy
import warnings

import pytest
import torch
from finetune_fixtures import tiny_classifier
from peft import LoraConfig, TaskType, get_peft_model

from course_lib.models.lora import (
    LoRALinear,
    apply_lora,
    copy_lora_weights_from_peft,
    count_parameters,
    lora_layers,
    merge_lora,
    unmerge_lora,
)
from course_lib.models.nf4 import NF4Linear, quantize_linears

SETTINGS = dict(r=4, alpha=8, target_modules=("query", "value"))


def both(dropout=0.0, **settings):
    settings = SETTINGS | settings
    base = tiny_classifier().eval()
    ours = apply_lora(copy.deepcopy(base), dropout=dropout, modules_to_save=["classifier"],
                      **settings)
    config = LoraConfig(r=settings["r"], lora_alpha=settings["alpha"], lora_dropout=dropout,
                        target_modules=list(settings["target_modules"]),
                        task_type=TaskType.SEQ_CLS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # peft asks an old transformers name
        theirs = get_peft_model(copy.deepcopy(base), config)
    return base, ours, theirs


def random_b(model):
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen))


IDS = torch.randint(5, 45, (3, 9), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("settings", [{}, dict(r=1, alpha=1), dict(
    r=8, alpha=32, target_modules=("query", "key", "value", "dense"))])
def test_same_trainable_parameters_as_peft(settings):
    _, ours, theirs = both(**settings)
    trainable, _ = count_parameters(ours)
    assert trainable == theirs.get_nb_trainable_parameters()[0]
    r = (SETTINGS | settings)["r"]
    n_lora = sum(p.numel() for n, p in ours.named_parameters() if "lora_" in n)
    per_layer = [r * (m.base.in_features + m.base.out_features) for _, m in lora_layers(ours)]
    assert n_lora == sum(per_layer)


def test_same_outputs_as_peft_for_the_same_initial_weights():
    base, ours, theirs = both()
    with torch.no_grad():  # B = 0 at the start: both equal the frozen model
        reference = base(input_ids=IDS).logits
        torch.testing.assert_close(ours(input_ids=IDS).logits, reference, atol=0, rtol=0)
    random_b(theirs)
    assert copy_lora_weights_from_peft(ours, theirs) == 4
    with torch.no_grad():
        torch.testing.assert_close(ours(input_ids=IDS).logits,
                                   theirs(input_ids=IDS).logits, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(ours(input_ids=IDS).logits, reference, atol=1e-3)


def test_same_gradients_as_peft():
    _, ours, theirs = both()
    random_b(theirs)
    copy_lora_weights_from_peft(ours, theirs)
    labels = torch.tensor([0, 1, 2])
    for model in (ours, theirs):
        model(input_ids=IDS, labels=labels).loss.backward()
    grads = {n.replace("base_model.model.", "").replace(".default", "").replace(
        "modules_to_save.", "").replace(".weight", "") if "lora" in n else
        n.replace("base_model.model.", "").replace("modules_to_save.default.", ""): p.grad
        for n, p in theirs.named_parameters() if p.requires_grad}
    for name, p in ours.named_parameters():
        if p.requires_grad:
            key = name.replace(".weight", "") if "lora" in name else name
            torch.testing.assert_close(p.grad, grads[key], atol=1e-5, rtol=1e-5)


def test_merge_gives_the_same_outputs_and_unmerge_restores_the_weights():
    _, ours, theirs = both()
    random_b(theirs)
    copy_lora_weights_from_peft(ours, theirs)
    ours.eval()
    before = {n: p.detach().clone() for n, p in ours.named_parameters()}
    with torch.no_grad():
        unmerged = ours(input_ids=IDS).logits
        merge_lora(ours)
        torch.testing.assert_close(ours(input_ids=IDS).logits, unmerged, atol=1e-5, rtol=1e-5)
        unmerge_lora(ours)
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p, before[name], atol=1e-6, rtol=0)
    layer = next(m for _, m in lora_layers(ours))
    layer.merge()
    with pytest.raises(RuntimeError, match="already merged"):
        layer.merge()


def test_dropout_only_in_training_mode():
    _, ours, _ = both(dropout=0.5)
    random_b(ours)
    with torch.no_grad():
        ours.eval()
        assert torch.equal(ours(input_ids=IDS).logits, ours(input_ids=IDS).logits)
        ours.train()
        assert not torch.equal(ours(input_ids=IDS).logits, ours(input_ids=IDS).logits)


def test_update_has_rank_at_most_r():
    layer = LoRALinear(torch.nn.Linear(20, 30), r=3, alpha=6)
    torch.nn.init.normal_(layer.lora_B)
    assert torch.linalg.matrix_rank(layer.delta_weight()) == 3
    assert layer.scaling == 2.0


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(r=0), ValueError, "r \\(the rank\\) must be a positive integer; got 0"),
    (dict(alpha=-1), ValueError, "alpha must be a positive number; got -1"),
    (dict(dropout=1.0), ValueError, "dropout must be in \\[0, 1\\); got 1.0"),
    (dict(target_modules=("q_proj",)), ValueError,
     "target_modules \\['q_proj'\\] match no nn.Linear of the model; its linear layers are "
     "named \\[.*'query'"),
])
def test_bad_lora_settings(kwargs, error, message):
    with pytest.raises(error, match=message):
        apply_lora(tiny_classifier(), **(dict(SETTINGS) | kwargs))


# --- QLoRA: LoRA adapters over an NF4 base (Dettmers et al. 2023) ---------------------

ALL_LINEAR = ("query", "key", "value", "dense")


def qlora(**settings):
    base = tiny_classifier().eval()
    quantized = quantize_linears(copy.deepcopy(base), target_modules=ALL_LINEAR,
                                 block_size=32)
    model = apply_lora(copy.deepcopy(quantized), modules_to_save=["classifier"],
                       **(SETTINGS | settings))
    return quantized, model


def test_qlora_starts_where_the_nf4_model_is_and_its_base_has_no_trainable_parameters():
    quantized, model = qlora()
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=IDS).logits,
                                   quantized(input_ids=IDS).logits, atol=0, rtol=0)
    layers = dict(lora_layers(model))
    assert len(layers) == 4 and all(isinstance(m.base, NF4Linear) for m in layers.values())
    assert all(not p.requires_grad for m in layers.values() for p in m.base.parameters())
    assert all(m.lora_A.dtype == torch.float32 for m in layers.values())
    n_nf4 = sum(isinstance(m, NF4Linear) for m in model.modules())
    assert n_nf4 == 2 * 6 + 1  # 2 layers x (q, k, v, 3 dense) + the pooler's dense


def test_qlora_gradients_reach_only_the_lora_factors_and_the_saved_modules():
    _, model = qlora()
    random_b(model)
    model.train()
    frozen = {n: b.clone() for n, b in model.named_buffers()}
    model(input_ids=IDS, labels=torch.tensor([0, 1, 2])).loss.backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, p in model.named_parameters()
                         if "lora_" in n or n.startswith("classifier.")}
    for name, p in model.named_parameters():
        assert (p.grad is not None) == (name in trainable), name
        if name in trainable:
            assert float(p.grad.abs().sum()) > 0, name
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    for name, b in model.named_buffers():
        assert torch.equal(b, frozen[name]), name  # the 4-bit weights never move


def test_qlora_refuses_to_merge_and_merges_into_a_dequantized_copy():
    _, model = qlora()
    random_b(model)
    name, layer = next(lora_layers(model))
    with pytest.raises(TypeError, match="cannot merge LoRA into an NF4Linear base"):
        layer.merge()
    with pytest.raises(TypeError, match=r"to_linear\(\).*\(layers \['bert.encoder"):
        merge_lora(model)
    assert not any(m.merged for _, m in lora_layers(model))  # nothing merged on the way
    x = torch.randn(2, 5, layer.base.in_features)
    with torch.no_grad():
        expected = layer(x)
        plain = LoRALinear(layer.base.to_linear(), layer.r, layer.alpha)
        plain.lora_A.copy_(layer.lora_A)
        plain.lora_B.copy_(layer.lora_B)
        plain.merge()
        torch.testing.assert_close(plain(x), expected, atol=1e-5, rtol=1e-5)


def test_qlora_state_dict_round_trip():
    _, model = qlora()
    random_b(model)
    _, fresh = qlora()
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(fresh(input_ids=IDS).logits, model(input_ids=IDS).logits)


def test_qlora_adapters_follow_the_compute_dtype():
    base = torch.nn.Linear(64, 32)
    layer = LoRALinear(NF4Linear.from_linear(base, compute_dtype=torch.bfloat16), 4, 8)
    assert layer.lora_A.dtype == torch.bfloat16 and layer.lora_B.dtype == torch.bfloat16
    torch.nn.init.normal_(layer.lora_B)
    x = torch.randn(3, 64)
    y = layer(x)
    assert y.dtype == torch.float32 and y.shape == (3, 32)
    y.sum().backward()
    assert layer.lora_A.grad.dtype == torch.bfloat16
