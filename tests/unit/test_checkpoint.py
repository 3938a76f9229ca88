"""Checkpoints round-trip exactly and an interrupted save never becomes 'latest'."""

import json

import pytest
import safetensors.torch
import torch

from course_lib.models import GPT, GPTConfig
from course_lib.training import checkpoint

CONFIG = GPTConfig(vocab_size=20, context_length=8, n_layer=1, n_head=2, d_model=16)


def trained(seed=0):
    torch.manual_seed(seed)
    model = GPT(CONFIG)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 / (s + 1))
    x = torch.randint(20, (2, 8))
    for _ in range(2):
        model(x, torch.roll(x, -1, 1))[1].backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return model, optimizer, scheduler


def test_round_trip_restores_model_optimizer_scheduler_and_extras(tmp_path):
    model, optimizer, scheduler = trained()
    rng = torch.Generator().manual_seed(5).get_state()
    checkpoint.save_checkpoint(tmp_path, 2, model=model, optimizer=optimizer,
                               scheduler=scheduler, tensors={"rng": rng}, state={"note": "hi"})
    other, other_opt, other_sched = trained(seed=1)
    state, extra = checkpoint.load_checkpoint(checkpoint.latest_checkpoint(tmp_path),
                                              model=other, optimizer=other_opt,
                                              scheduler=other_sched)
    assert state == {"note": "hi"} and torch.equal(extra["rng"], rng)
    for a, b in zip(model.parameters(), other.parameters()):
        assert torch.equal(a, b)
    assert other.lm_head.weight is other.wte.weight  # still tied after loading
    saved, loaded = optimizer.state_dict(), other_opt.state_dict()
    assert saved["param_groups"] == loaded["param_groups"]
    for index, values in saved["state"].items():
        for key, value in values.items():
            assert torch.equal(value, loaded["state"][index][key]), (index, key)
    assert other_sched.state_dict()["last_epoch"] == scheduler.state_dict()["last_epoch"]


def test_keeps_only_the_newest_checkpoints(tmp_path):
    model, _, _ = trained()
    for step in (1, 2, 3):
        checkpoint.save_checkpoint(tmp_path, step, model=model, keep=2)
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_000002", "step_000003"]
    assert json.loads((tmp_path / "latest.json").read_text())["step"] == 3


def test_a_save_that_fails_midway_leaves_the_previous_checkpoint_latest(tmp_path, monkeypatch):
    model, optimizer, _ = trained()
    checkpoint.save_checkpoint(tmp_path, 1, model=model, optimizer=optimizer)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # as if the run were killed while writing

    monkeypatch.setattr(checkpoint, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_checkpoint(tmp_path, 2, model=model, optimizer=optimizer)
    assert checkpoint.latest_checkpoint(tmp_path).name == "step_000001"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert not (tmp_path / "step_000002").exists()


def test_a_killed_save_leaves_only_a_hidden_temporary_that_the_next_save_removes(tmp_path):
    model, _, _ = trained()
    checkpoint.save_checkpoint(tmp_path, 1, model=model)
    stale = tmp_path / ".step_000002.abc.tmp"  # what SIGKILL during a save leaves
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    assert checkpoint.latest_checkpoint(tmp_path).name == "step_000001"
    checkpoint.save_checkpoint(tmp_path, 2, model=model)
    assert not stale.exists()


def test_a_flipped_byte_in_a_checkpoint_is_refused_on_resume(tmp_path):
    model, _, _ = trained()
    folder = checkpoint.save_checkpoint(tmp_path, 1, model=model)
    assert set(json.loads((folder / "manifest.json").read_text())["sha256"]) == {
        "model.safetensors", "state.safetensors", "state.json"}
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="model.safetensors has sha256 .* corrupted"):
        checkpoint.load_checkpoint(checkpoint.latest_checkpoint(tmp_path), model=model)


def test_a_checkpoint_without_a_manifest_is_refused(tmp_path):
    model, _, _ = trained()
    folder = checkpoint.save_checkpoint(tmp_path, 1, model=model)
    (folder / "manifest.json").unlink()
    with pytest.raises(ValueError, match="has no manifest.json"):
        checkpoint.load_checkpoint(folder, model=model)


@pytest.mark.parametrize("text, words", [
    ("{not json", ["latest.json is damaged", "JSONDecodeError", "step_000001"]),
    ('{"step": 1}', ["damaged", "KeyError"]),
    ('{"checkpoint": "../elsewhere"}', ["damaged", "step_NNNNNN"]),
    ('{"checkpoint": "step_000009"}', ["names step_000009", "not a checkpoint"]),
])
def test_a_damaged_latest_json_is_an_error_not_a_fresh_start(tmp_path, text, words):
    model, _, _ = trained()
    checkpoint.save_checkpoint(tmp_path, 1, model=model)
    (tmp_path / "latest.json").write_text(text)
    with pytest.raises(ValueError) as info:
        checkpoint.latest_checkpoint(tmp_path)
    for word in words:
        assert word in str(info.value)
    assert (tmp_path / "step_000001").is_dir()  # nothing deleted


def test_no_latest_json_means_no_checkpoint_yet(tmp_path):
    assert checkpoint.latest_checkpoint(tmp_path) is None


def test_weights_are_plain_safetensors(tmp_path):
    model, _, _ = trained()
    folder = checkpoint.save_checkpoint(tmp_path, 1, model=model)
    tensors = safetensors.torch.load_file(folder / "model.safetensors")
    tied = [name for name in ("wte.weight", "lm_head.weight") if name in tensors]
    assert len(tied) == 1 and tensors[tied[0]].shape == (20, 16)  # stored once


def test_loading_a_non_checkpoint_or_a_wrong_model_is_refused(tmp_path):
    model, _, _ = trained()
    with pytest.raises(FileNotFoundError, match="is not a checkpoint"):
        checkpoint.load_checkpoint(tmp_path, model=model)
    folder = checkpoint.save_checkpoint(tmp_path, 1, model=model)
    bigger = GPT(GPTConfig(vocab_size=20, context_length=8, n_layer=2, n_head=2, d_model=16))
    with pytest.raises(ValueError, match="does not fit the model"):
        checkpoint.load_checkpoint(folder, model=bigger)


def test_file_sha256_and_verify(tmp_path):
    import hashlib

    from course_lib.core.store import file_sha256, verify_sha256

    (tmp_path / "w.bin").write_bytes(b"weights" * 1000)
    digest = file_sha256(tmp_path / "w.bin")
    assert digest == hashlib.sha256(b"weights" * 1000).hexdigest()
    verify_sha256(tmp_path, {"w.bin": digest})  # no error
    with pytest.raises(ValueError, match="w.bin has sha256 .* but 00 was recorded"):
        verify_sha256(tmp_path, {"w.bin": "00"})
    with pytest.raises(FileNotFoundError, match="x.bin is missing"):
        verify_sha256(tmp_path, {"x.bin": digest})


def test_provenance_names_versions_and_device():
    import torch

    from course_lib.core.provenance import provenance

    record = provenance("cpu", command="demo")
    assert record["versions"]["torch"] == torch.__version__
    assert record["device"].startswith("cpu: ") and record["command"] == "demo"
