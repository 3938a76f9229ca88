"""Repeated data (RunSpec.unique_tokens) and the trained weights a sweep keeps."""

import collections

import pytest
import torch

from course_lib.scaling import sweep
from course_lib.scaling.runs import (
    CorpusData,
    KeyValueData,
    RunSpec,
    evaluate_windows,
    load_run_model,
)

DATA = KeyValueData(n_keys=1000, val_tokens=2048)


def _spec(**kw):
    return RunSpec(**({"name": "r", "n_layer": 1, "d_model": 8, "n_head": 1,
                       "tokens": 32 * 4 * 40, "lr": 1e-2, "batch_size": 4,
                       "context_length": 32} | kw))


def test_each_epoch_visits_every_segment_of_the_sample_once():
    """40 segments; a window reads 4 and the next one's first token, then moves on by 4:
    an epoch is 9 windows over 36 distinct segments of the sample, in a new order."""
    from course_lib.scaling.runs import _repeated_pool

    spec = _spec(unique_tokens=8 * 40, batch_size=9)
    get_batch = DATA.batch_fn(spec, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    pool = collections.Counter(
        tuple(s.tolist()) for s in DATA.language().segments(_repeated_pool(DATA.language(), 40, 0)))
    epochs = []
    for _ in range(3):
        x, _ = get_batch("train", g)
        epochs.append(collections.Counter(tuple(row[8 * k: 8 * k + 8].tolist())
                                          for row in x for k in range(4)))
    for seen in epochs:
        assert sum(seen.values()) == 36 and not seen - pool  # a sub-multiset of the sample
    assert epochs[0] != epochs[1]  # a new order: another 4 segments left out


def test_fresh_data_is_unchanged_and_repeats_are_refused_where_they_cannot_be():
    a = DATA.batch_fn(_spec(), torch.device("cpu"))("train", torch.Generator().manual_seed(1))
    b = DATA.batch_fn(_spec(), torch.device("cpu"))("train", torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0])
    with pytest.raises(ValueError, match="unique_tokens is for the key-value language"):
        CorpusData().check(_spec(unique_tokens=4096))
    with pytest.raises(ValueError, match="unique_tokens must be an integer >= one batch"):
        _spec(unique_tokens=10)
    with pytest.raises(ValueError, match="fewer than the 5 segments"):
        DATA.check(_spec(unique_tokens=32, batch_size=1))
    assert sweep.run_id(_spec(), DATA) != sweep.run_id(_spec(unique_tokens=4096), DATA)


def test_kept_weights_load_verified_and_give_the_recorded_loss(tmp_path):
    spec = _spec(unique_tokens=4096)
    [record] = sweep.run_sweep([spec], DATA, tmp_path / "r.jsonl", weights_dir=tmp_path / "w",
                               progress=False, log=lambda _: None)
    folder = tmp_path / "w" / record["weights"]
    model = load_run_model(folder)
    x, y = DATA.validation_windows(32)
    assert evaluate_windows(model, x, y)[0] == pytest.approx(
        record["result"]["final_val_loss"], rel=1e-6)
    with open(folder / "model.safetensors", "r+b") as f:  # one flipped byte
        f.seek(-1, 2)
        byte = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(ValueError, match="sha256"):
        load_run_model(folder)
