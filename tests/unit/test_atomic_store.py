"""core.atomic (files, folders, locks) and core.store (hashes, manifests, load-or-build)."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from course_lib.core import atomic, store


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_every_writer_gives_the_mode_of_a_plain_open(tmp_path, umask_022):
    atomic.atomic_write_text(tmp_path / "a.txt", "x")
    atomic.write_json_atomic(tmp_path / "b.json", {"x": 1})
    with atomic.atomic_folder(tmp_path / "folder") as tmp:
        (tmp / "w.bin").write_bytes(b"1")
    assert _mode(tmp_path / "a.txt") == 0o644
    assert _mode(tmp_path / "b.json") == 0o644
    assert _mode(tmp_path / "folder") == 0o755


def test_json_is_written_atomically_and_refuses_nan(tmp_path, monkeypatch):
    target = tmp_path / "result.json"
    atomic.write_json_atomic(target, {"a": 1})
    with pytest.raises(ValueError, match="result.json.*NaN or infinity"):
        atomic.write_json_atomic(target, {"a": float("nan")})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "fsync", crash)
    with pytest.raises(OSError):
        atomic.write_json_atomic(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}
    assert list(tmp_path.iterdir()) == [target]


def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "model"
    with atomic.atomic_folder(target) as tmp:
        (tmp / "v").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic.atomic_folder(target) as tmp:
            (tmp / "v").write_text("2")
            raise RuntimeError("killed")
    assert (target / "v").read_text() == "1"
    with atomic.atomic_folder(target) as tmp:
        (tmp / "v").write_text("3")
    assert (target / "v").read_text() == "3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert sorted(p.name for p in target.iterdir()) == ["v"]


def test_a_dead_writers_temporary_folder_is_cleared_by_the_next(tmp_path):
    stale = tmp_path / ".model.999999999.abc.tmp"  # its writer's pid: no such process
    stale.mkdir()
    live = tmp_path / f".model.{os.getpid()}.xyz.tmp"  # a writer still at work
    live.mkdir()
    with atomic.atomic_folder(tmp_path / "model") as tmp:
        (tmp / "v").write_text("1")
    assert not stale.exists() and live.exists()


def test_the_lock_lives_next_to_the_file_whatever_the_temp_folder(tmp_path):
    target = tmp_path / "runs.jsonl"
    with atomic.file_lock(target):
        env = os.environ | {"TMPDIR": str(tmp_path / "other-tmp")}
        (tmp_path / "other-tmp").mkdir()
        probe = ("import fcntl, sys; h = open(sys.argv[1], 'a');\n"
                 "try:\n    fcntl.flock(h, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
                 "except BlockingIOError:\n    sys.exit(3)\n")
        held = subprocess.run([sys.executable, "-c", probe, f"{target}.lock"], env=env)
    assert held.returncode == 3
    free = subprocess.run([sys.executable, "-c", probe, f"{target}.lock"])
    assert free.returncode == 0


def _build(tmp):
    (tmp / "config.json").write_text('{"layers": 2}')
    (tmp / "sub").mkdir()
    (tmp / "sub" / "tokenizer.json").write_text("{}")
    (tmp / "model.bin").write_bytes(b"weights")
    return {"loss": 1.5}


def test_load_or_build_builds_once_and_verifies_every_file_on_every_load(tmp_path):
    folder = tmp_path / "artifact"
    calls = []
    manifest = store.load_or_build(folder, {"width": 8}, lambda t: calls.append(1) or _build(t))
    assert manifest["result"] == {"loss": 1.5} and calls == [1]
    assert set(manifest["files"]) == {"config.json", "sub/tokenizer.json", "model.bin"}
    assert manifest["key"] == store.spec_key({"width": 8})
    assert "versions" in manifest["provenance"]
    again = store.load_or_build(folder, {"width": 8}, lambda t: 1 / 0)  # not rebuilt
    assert again == manifest
    (folder / "config.json").write_text('{"layers": 3}')  # a config, not only weights
    with pytest.raises(ValueError, match="config.json has sha256"):
        store.load_manifest(folder)


def test_the_store_refuses_extra_files_another_spec_and_a_damaged_manifest(tmp_path):
    folder = tmp_path / "artifact"
    store.load_or_build(folder, {"width": 8}, _build)
    with pytest.raises(ValueError, match="built from spec .*'width': 8.*delete it"):
        store.load_or_build(folder, {"width": 16}, _build)
    (folder / "extra.py").write_text("print('hi')")
    with pytest.raises(ValueError, match="does not list: \\['extra.py'\\]"):
        store.load_manifest(folder)
    (folder / "extra.py").unlink()
    (folder / "manifest.json").write_text("{")
    with pytest.raises(ValueError, match="manifest.json is damaged"):
        store.load_manifest(folder)
    with pytest.raises(FileNotFoundError, match="holds no manifest.json"):
        store.load_manifest(tmp_path)


def test_spec_key_ignores_key_order_and_refuses_nan():
    assert store.spec_key({"a": 1, "b": 2}) == store.spec_key({"b": 2, "a": 1})
    assert store.spec_key({"a": 1}) != store.spec_key({"a": 2})
    with pytest.raises(ValueError):
        store.spec_key({"a": float("nan")})
