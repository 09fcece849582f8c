"""Tests of degen.store: round trips, keys, corruption, atomicity, locking."""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from degen import store as store_mod
from degen.store import (
    SCHEMA_VERSION,
    CorruptEntryWarning,
    Entry,
    Store,
    StoreError,
)

KIND = "ensemble"
CONFIG = {"task": "flipflop", "n_hidden": 16, "lr": 1e-3, "seeds": (0, 1, 2)}


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "W_h": torch.randn(3, 16, 16, generator=g),  # [net, unit, unit]
        "f64": torch.randn(5, generator=g, dtype=torch.float64),
        "bf16": torch.randn(4, generator=g).to(torch.bfloat16),
        "steps": torch.arange(7),
        "converged": torch.tensor([True, False, True]),
    }


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "loss": rng.standard_normal((3, 50)),  # [net, epoch]
        "epochs": np.array([10, 20, 30], dtype=np.int32),
        "names": np.array(["a", "bc"]),
        "scalar": np.array(2.5),
    }


def _store(tmp_path: Path) -> Store:
    return Store(tmp_path / "results")


def _saved(tmp_path: Path) -> tuple[Store, str, Path]:
    store = _store(tmp_path)
    key = store.save(KIND, CONFIG, tensors=_tensors(), arrays=_arrays())
    return store, key, store.path(KIND, key)


def _rewrite(folder: Path, name: str, data: bytes) -> None:
    """Replace a file and fix its checksum, so only its content is wrong."""
    (folder / name).write_bytes(data)
    meta = json.loads((folder / "meta.json").read_text())
    meta["files"][name] = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    (folder / "meta.json").write_text(json.dumps(meta))


def _edit_meta(folder: Path, **changes) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    meta.update(changes)
    (folder / "meta.json").write_text(json.dumps(meta))


def _corrupt_dirs(store: Store) -> list[Path]:
    aside = store.root / KIND / ".corrupt"
    return sorted(aside.iterdir()) if aside.exists() else []


# -- round trip and keys ------------------------------------------------------


def test_round_trip_is_exact(tmp_path):
    store = _store(tmp_path)
    tensors, arrays = _tensors(), _arrays()
    meta = {"device": "cpu", "seconds": 1.25, "final_loss": float("nan")}
    key = store.save(KIND, CONFIG, tensors=tensors, arrays=arrays, meta=meta)

    entry = store.load(KIND, key)
    assert isinstance(entry, Entry)
    assert entry.key == key == store.key(KIND, CONFIG)
    assert entry.config == {**CONFIG, "seeds": [0, 1, 2]}  # tuples become lists
    assert entry.tensors.keys() == tensors.keys()
    for name, t in tensors.items():
        got = entry.tensors[name]
        assert got.device.type == "cpu"
        assert got.dtype == t.dtype and got.shape == t.shape
        assert torch.equal(got.view(torch.uint8), t.view(torch.uint8))  # bitwise
    assert entry.arrays.keys() == arrays.keys()
    for name, a in arrays.items():
        assert entry.arrays[name].dtype == a.dtype
        np.testing.assert_array_equal(entry.arrays[name], a)
    assert entry.meta["device"] == "cpu" and entry.meta["seconds"] == 1.25
    assert math.isnan(entry.meta["final_loss"])  # meta may hold NaN
    assert entry.meta["schema"] == SCHEMA_VERSION
    assert entry.meta["kind"] == KIND and entry.meta["key"] == key
    assert set(entry.meta["versions"]) == {
        "degen",
        "torch",
        "numpy",
        "python",
        "git_commit",
    }
    commit = entry.meta["versions"]["git_commit"]
    assert commit == "unknown" or len(commit.removesuffix("+dirty")) == 40
    assert entry.meta["versions"]["torch"] == torch.__version__
    assert set(entry.meta["files"]) == {"tensors.safetensors", "arrays.npz"}
    assert "created" in entry.meta
    assert "config" not in entry.meta
    assert "W_h" not in repr(entry)  # tensors are left out of the repr
    assert store.has(KIND, key) and store.keys(KIND) == [key]


def test_empty_entry_round_trips(tmp_path):
    store = _store(tmp_path)
    key = store.save(KIND, {})
    entry = store.load(KIND, key)
    assert entry.tensors == {} and entry.arrays == {} and entry.config == {}


def test_inputs_are_not_modified(tmp_path):
    store = _store(tmp_path)
    weight = torch.randn(4, 6, requires_grad=True)
    view = weight.t()  # not contiguous
    config = {"shape": (4, 6), "nested": {"a": [1, (2, 3)]}}
    arrays = {"x": np.arange(3.0)}
    meta = {"note": ("kept", "as", "tuple")}
    before = (json.dumps(config, default=str), repr(meta), arrays["x"].copy())

    key = store.save(KIND, config, tensors={"v": view}, arrays=arrays, meta=meta)

    assert not view.is_contiguous() and view.requires_grad
    assert config["shape"] == (4, 6) and isinstance(config["nested"]["a"][1], tuple)
    assert (json.dumps(config, default=str), repr(meta)) == before[:2]
    np.testing.assert_array_equal(arrays["x"], before[2])
    entry = store.load(KIND, key)
    assert entry.tensors["v"].is_contiguous()
    assert not entry.tensors["v"].requires_grad
    assert torch.equal(entry.tensors["v"], view.detach())


def test_same_config_same_key_and_each_field_matters(tmp_path):
    store = _store(tmp_path)
    key = store.key(KIND, CONFIG)
    assert key == store.key(KIND, dict(reversed(list(CONFIG.items()))))
    assert key == store.key(KIND, {**CONFIG, "seeds": [0, 1, 2]})  # tuple == list
    assert key == Store(tmp_path / "elsewhere").key(KIND, CONFIG)
    for field, value in [
        ("task", "cdi"),
        ("n_hidden", 17),
        ("lr", 1.0000000000000002e-3),  # one ulp away
        ("seeds", (0, 1)),
    ]:
        assert store.key(KIND, {**CONFIG, field: value}) != key, field
    assert store.key(KIND, {**CONFIG, "extra": None}) != key
    assert store.key("weights", CONFIG) != key


def test_key_is_sha256_of_documented_canonical_json(tmp_path):
    # pins the key format: changing it orphans every stored result
    config = {"b": [1, 2.5], "a": 0.1}
    doc = {"kind": KIND, "schema": SCHEMA_VERSION, "config": config}
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    assert canonical == (
        '{"config":{"a":0.1,"b":[1,2.5]},"kind":"ensemble","schema":1}'
    )
    expected = hashlib.sha256(canonical.encode()).hexdigest()
    assert _store(tmp_path).key(KIND, config) == expected


def test_path_layout(tmp_path):
    store = _store(tmp_path)
    key = store.key(KIND, CONFIG)
    assert store.path(KIND, key) == store.root / KIND / key[:2] / key


def test_save_keeps_a_finished_entry(tmp_path):
    store, key, folder = _saved(tmp_path)
    created = store.load(KIND, key).meta["created"]
    other = {"W_h": torch.zeros(1)}
    assert store.save(KIND, CONFIG, tensors=other) == key
    entry = store.load(KIND, key)
    assert entry.meta["created"] == created
    assert torch.equal(entry.tensors["W_h"], _tensors()["W_h"])


# -- corruption ---------------------------------------------------------------


def _truncate_tensors(folder):
    path = folder / "tensors.safetensors"
    path.write_bytes(path.read_bytes()[:-10])


def _flip_a_byte(folder):
    path = folder / "arrays.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _object_array_npz(folder):
    import io

    buf = io.BytesIO()
    np.savez(buf, x=np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    _rewrite(folder, "arrays.npz", buf.getvalue())


def _config_not_a_dict(folder):
    _edit_meta(folder, config=[1, 2])


CORRUPTIONS = {
    "truncated tensors": (_truncate_tensors, "tensors.safetensors has"),
    "edited arrays": (_flip_a_byte, "arrays.npz does not match its checksum"),
    "missing tensors": (
        lambda f: (f / "tensors.safetensors").unlink(),
        "tensors.safetensors is missing",
    ),
    "arrays file is a folder": (
        lambda f: ((f / "arrays.npz").unlink(), (f / "arrays.npz").mkdir()),
        "arrays.npz cannot be read",
    ),
    "missing meta": (lambda f: (f / "meta.json").unlink(), "meta.json is missing"),
    "meta not JSON": (
        lambda f: (f / "meta.json").write_text('{"schema": 1,'),
        "meta.json is not valid JSON",
    ),
    "meta not UTF-8": (
        lambda f: (f / "meta.json").write_bytes(b"\xff\xfe{"),
        "meta.json cannot be read",
    ),
    "meta not an object": (
        lambda f: (f / "meta.json").write_text("[1]"),
        "holds a list, not an object",
    ),
    "edited config": (
        lambda f: _edit_meta(f, config={**CONFIG, "n_hidden": 99}),
        "(edited config)",
    ),
    "config not a dict": (_config_not_a_dict, "cannot be hashed"),
    "wrong key": (lambda f: _edit_meta(f, key="0" * 64), "names kind/key"),
    "wrong kind": (lambda f: _edit_meta(f, kind="other"), "names kind/key"),
    "no checksums": (lambda f: _edit_meta(f, files={}), "no checksum for"),
    "garbage tensors": (
        lambda f: _rewrite(f, "tensors.safetensors", b"not safetensors"),
        "tensors.safetensors cannot be parsed",
    ),
    "pickled arrays": (_object_array_npz, "arrays.npz cannot be parsed"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupt_entry_is_warned_moved_aside_and_not_used(tmp_path, case):
    damage, reason = CORRUPTIONS[case]
    store, key, folder = _saved(tmp_path)
    damage(folder)

    if case not in ("garbage tensors", "pickled arrays"):
        assert not store.has(KIND, key)  # parse errors show only on load
    assert folder.exists() and _corrupt_dirs(store) == []  # has moves nothing
    with pytest.warns(CorruptEntryWarning) as record:
        assert store.load(KIND, key) is None
    message = str(record[0].message)
    assert f"{KIND}/{key}" in message and reason in message
    assert record[0].filename == __file__  # stacklevel points at the caller
    assert not folder.exists()
    (aside,) = _corrupt_dirs(store)
    assert aside.name.startswith(f"{key}-") and str(aside) in message
    assert store.keys(KIND) == []
    assert store.load(KIND, key) is None  # now simply absent, no warning


def test_truncated_tensors_are_recomputed(tmp_path):
    store, key, folder = _saved(tmp_path)
    _truncate_tensors(folder)
    calls = []

    def compute():
        calls.append(1)
        return {"tensors": _tensors(), "arrays": _arrays()}

    with pytest.warns(CorruptEntryWarning, match="tensors.safetensors") as record:
        entry = store.get_or_compute(KIND, CONFIG, compute)
    assert record[0].filename == __file__
    assert calls == [1]
    assert torch.equal(entry.tensors["W_h"], _tensors()["W_h"])
    assert store.has(KIND, key) and len(_corrupt_dirs(store)) == 1


def test_unknown_schema_version_names_both_versions(tmp_path):
    store, key, folder = _saved(tmp_path)
    _edit_meta(folder, schema=SCHEMA_VERSION + 41)
    assert not store.has(KIND, key)
    with pytest.warns(CorruptEntryWarning) as record:
        assert store.load(KIND, key) is None
    message = str(record[0].message)
    assert f"schema version {SCHEMA_VERSION + 41}" in message
    assert f"schema version {SCHEMA_VERSION}" in message


def test_entry_copied_under_another_key_is_refused(tmp_path):
    store, key, folder = _saved(tmp_path)
    other = store.key(KIND, {**CONFIG, "n_hidden": 32})
    target = store.path(KIND, other)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(folder, target)
    with pytest.warns(CorruptEntryWarning, match="names kind/key"):
        assert store.load(KIND, other) is None


def test_save_over_a_corrupt_entry_moves_it_aside(tmp_path):
    store, key, folder = _saved(tmp_path)
    _truncate_tensors(folder)
    with pytest.warns(CorruptEntryWarning, match="truncated") as record:
        store.save(KIND, CONFIG, tensors=_tensors())
    assert record[0].filename == __file__
    assert store.has(KIND, key) and len(_corrupt_dirs(store)) == 1


# -- atomic writes ------------------------------------------------------------


def test_leftover_temp_folder_is_not_an_entry(tmp_path):
    store = _store(tmp_path)
    key = store.key(KIND, CONFIG)
    # what a write killed before its rename leaves behind
    tmp = store.root / KIND / ".tmp" / f"{key}-12345-deadbeef"
    tmp.mkdir(parents=True)
    (tmp / "tensors.safetensors").write_bytes(b"partial")
    # and a final folder without meta.json, as a crash might leave on a
    # file system without atomic rename
    store.path(KIND, key).mkdir(parents=True)

    assert not store.has(KIND, key)
    assert store.keys(KIND) == []
    calls = []
    with pytest.warns(CorruptEntryWarning, match="meta.json is missing"):
        store.get_or_compute(KIND, CONFIG, lambda: calls.append(1) or {})
    assert calls == [1]
    assert store.keys(KIND) == [key]
    # the writer held the key's lock, so no one owned it: removed
    assert not tmp.exists()


def test_temp_folders_of_other_keys_are_left_alone(tmp_path):
    store = _store(tmp_path)
    other = store.key(KIND, {**CONFIG, "n_hidden": 32})
    tmp = store.root / KIND / ".tmp" / f"{other}-12345-deadbeef"
    tmp.mkdir(parents=True)
    store.save(KIND, CONFIG)
    assert tmp.exists()


def test_failed_write_leaves_no_temp_folder(tmp_path, monkeypatch):
    store = _store(tmp_path)

    def broken_write(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(store_mod.np.lib.format, "write_array", broken_write)
    with pytest.raises(OSError, match="disk full"):
        store.save(KIND, CONFIG, arrays=_arrays())
    assert list((store.root / KIND / ".tmp").iterdir()) == []
    assert not store.has(KIND, store.key(KIND, CONFIG))


def test_failed_rename_leaves_no_temp_folder(tmp_path, monkeypatch):
    store = _store(tmp_path)
    real_rename = os.rename

    def broken_rename(src, dst):
        if ".tmp" in str(src):
            raise OSError("rename refused")
        real_rename(src, dst)

    monkeypatch.setattr(store_mod.os, "rename", broken_rename)
    with pytest.raises(OSError, match="rename refused"):
        store.save(KIND, CONFIG)
    assert list((store.root / KIND / ".tmp").iterdir()) == []


def test_publish_keeps_the_winner_when_another_writer_finished_first(tmp_path):
    # flock can be a no-op (some network file systems); then two writers can
    # both reach the rename and the second must keep the first's entry
    store, key, folder = _saved(tmp_path)
    created = store.load(KIND, key).meta["created"]
    tmp = store._write_tmp(KIND, key, CONFIG, {}, {}, {"late": True})
    assert store._publish(KIND, key, tmp) is None
    assert not tmp.exists()
    entry = store.load(KIND, key)
    assert entry.meta["created"] == created and "late" not in entry.meta


def test_same_arrays_give_the_same_bytes(tmp_path):
    # np.savez stamps the wall-clock time on each member; the store does not,
    # so checksums can be compared across runs
    store, key, folder = _saved(tmp_path)
    with zipfile.ZipFile(folder / "arrays.npz") as zf:
        assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    again = Store(tmp_path / "again")
    again.save(KIND, CONFIG, tensors=_tensors(), arrays=_arrays())
    for name in ("tensors.safetensors", "arrays.npz"):
        assert (folder / name).read_bytes() == (
            again.path(KIND, key) / name
        ).read_bytes()


def test_array_names_np_savez_would_refuse_round_trip(tmp_path):
    store = _store(tmp_path)
    arrays = {"file": np.arange(3), "allow_pickle": np.ones(2)}
    key = store.save(KIND, CONFIG, arrays=arrays)
    entry = store.load(KIND, key)
    assert entry.arrays.keys() == arrays.keys()
    np.testing.assert_array_equal(entry.arrays["file"], arrays["file"])


# -- state ------------------------------------------------------------------


def test_state_tells_done_missing_running_and_corrupt_apart(tmp_path):
    store = _store(tmp_path)
    key = store.key(KIND, CONFIG)
    assert store.state(KIND, key) == ("missing", "not computed yet")
    with store._lock(KIND, key):  # what a process computing it holds
        assert store.state(KIND, key)[0] == "running"
    store.save(KIND, CONFIG, tensors=_tensors())
    assert store.state(KIND, key)[0] == "done"
    _truncate_tensors(store.path(KIND, key))
    state, reason = store.state(KIND, key)
    assert state == "corrupt" and "tensors.safetensors has" in reason
    assert store.path(KIND, key).exists()  # state moves nothing


# -- the three damages a reader must catch -------------------------------------


def _truncate_and_fix_checksum(folder):
    data = (folder / "tensors.safetensors").read_bytes()
    _rewrite(folder, "tensors.safetensors", data[: len(data) // 2])


DAMAGES = {
    "truncated safetensors": (_truncate_tensors, r"tensors\.safetensors has \d+ bytes"),
    # a truncation the checksums were made to agree with: the parser catches it
    "truncated safetensors, checksum fixed": (
        _truncate_and_fix_checksum,
        r"tensors\.safetensors cannot be parsed",
    ),
    "changed config": (
        lambda f: _edit_meta(f, config={**CONFIG, "lr": 0.5}),
        r"the config in meta\.json hashes to [0-9a-f]{64}, not to the key",
    ),
    "unknown schema version": (
        lambda f: _edit_meta(f, schema=SCHEMA_VERSION + 1),
        rf"schema version {SCHEMA_VERSION + 1}; this degen reads schema "
        rf"version {SCHEMA_VERSION}",
    ),
}


@pytest.mark.parametrize("case", sorted(DAMAGES))
def test_damaged_entry_is_named_and_recomputed(tmp_path, case):
    damage, reason = DAMAGES[case]
    store, key, folder = _saved(tmp_path)
    damage(folder)
    if case != "truncated safetensors, checksum fixed":  # seen only when parsed
        state, why = store.state(KIND, key)
        assert state == "corrupt" and re.search(reason, why)
    calls = []

    def compute():
        calls.append(1)
        return {"tensors": _tensors(), "arrays": _arrays()}

    with pytest.warns(CorruptEntryWarning) as record:
        entry = store.get_or_compute(KIND, CONFIG, compute)
    message = str(record[0].message)
    assert message.startswith(f"store entry {KIND}/{key} is unusable: ")
    assert re.search(reason, message) and "it will be recomputed" in message
    assert calls == [1]
    assert torch.equal(entry.tensors["W_h"], _tensors()["W_h"])
    assert store.state(KIND, key)[0] == "done"


# -- killed writers -------------------------------------------------------------

# A process that loads entry A, then computes entry B and is killed at the
# point DEGEN_KILL_AT names (the store's deliberate-crash hook).
KILLED_WRITER = textwrap.dedent(
    """
    import json, sys
    import numpy as np, torch
    from degen import killpoints
    from degen.store import Store

    killpoints.arm()
    store = Store(sys.argv[1])
    config_a, config_b = json.loads(sys.argv[2]), json.loads(sys.argv[3])
    store.get_or_compute("ensemble", config_a, dict)
    store.get_or_compute(
        "ensemble",
        config_b,
        lambda: {"tensors": {"w": torch.arange(12.0)}, "arrays": {"x": np.ones(5)}},
    )
    sys.exit(3)
    """
)
CONFIG_B = {**CONFIG, "n_hidden": 32}


def _payload() -> dict:
    # what KILLED_WRITER computes for entry B
    return {"tensors": {"w": torch.arange(12.0)}, "arrays": {"x": np.ones(5)}}


def _stat(folder: Path) -> dict:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.mark.parametrize(
    "point, left_in_tmp",
    [
        ("compute", set()),  # computed, nothing written
        ("write", {"tensors.safetensors"}),  # half of the temporary folder
        ("publish", {"tensors.safetensors", "arrays.npz", "meta.json"}),
    ],
)
def test_a_write_killed_at_any_point_is_redone_cleanly(tmp_path, point, left_in_tmp):
    store = _store(tmp_path)
    key_a = store.save(KIND, CONFIG)
    finished = _stat(store.path(KIND, key_a))
    key_b = store.key(KIND, CONFIG_B)
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(store.root)]
        + [json.dumps(CONFIG), json.dumps(CONFIG_B)],
        env={**os.environ, "DEGEN_KILL_AT": point},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    tmp_root = store.root / KIND / ".tmp"
    left = sorted(tmp_root.iterdir())
    assert [set(os.listdir(d)) for d in left] == ([left_in_tmp] if left_in_tmp else [])
    # the killed writer's folder is not an entry, and its lock died with it
    assert store.state(KIND, key_b) == ("missing", "not computed yet")
    assert store.keys(KIND) == [key_a]

    calls = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptEntryWarning)
        store.get_or_compute(KIND, CONFIG_B, lambda: calls.append(1) or _payload())
    assert calls == [1]
    assert list(tmp_root.iterdir()) == []  # the retry removed what was left
    assert store.keys(KIND) == sorted([key_a, key_b])
    assert _stat(store.path(KIND, key_a)) == finished  # never rewritten
    clean = Store(tmp_path / "uninterrupted")
    clean.save(KIND, CONFIG_B, **_payload())
    for name in ("tensors.safetensors", "arrays.npz"):
        got = (store.path(KIND, key_b) / name).read_bytes()
        assert got == (clean.path(KIND, key_b) / name).read_bytes()


# -- get_or_compute and locking ----------------------------------------------


def test_get_or_compute_computes_once_then_loads(tmp_path):
    store = _store(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"tensors": _tensors(), "arrays": _arrays(), "meta": {"n": 1}}

    first = store.get_or_compute(KIND, CONFIG, compute)
    second = store.get_or_compute(KIND, CONFIG, compute)
    assert calls == [1]
    assert first.key == second.key == store.key(KIND, CONFIG)
    assert torch.equal(first.tensors["W_h"], second.tensors["W_h"])
    assert first.meta["n"] == second.meta["n"] == 1
    assert (store.root / KIND / ".locks" / f"{first.key}.lock").exists()


def test_get_or_compute_fails_loudly_when_entry_cannot_be_read_back(
    tmp_path, monkeypatch
):
    store = _store(tmp_path)

    def broken_load(data):
        raise ValueError("bad header")

    monkeypatch.setattr(store_mod.safetensors.torch, "load", broken_load)
    with pytest.raises(StoreError, match="could not be read back.*bad header"):
        store.get_or_compute(KIND, CONFIG, dict)


def _compute_in_child(root: str, marker: str, delay: float) -> dict:
    with open(marker, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(f"{os.getpid()}\n")
    time.sleep(delay)  # hold the key lock long enough for the other to wait
    g = torch.Generator().manual_seed(os.getpid())  # differs per process
    return {"tensors": {"w": torch.randn(8, 8, generator=g)}}


def _child(root, marker, barrier, queue):
    store = Store(root)
    barrier.wait()
    entry = store.get_or_compute(
        KIND, CONFIG, lambda: _compute_in_child(root, marker, 0.5)
    )
    queue.put((entry.key, entry.tensors["w"].numpy()))


def test_two_processes_compute_once(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    root, marker = str(tmp_path / "results"), str(tmp_path / "marker.txt")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_child, args=(root, marker, barrier, queue))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(Path(marker).read_text().splitlines()) == 1
    (key_a, w_a), (key_b, w_b) = results
    assert key_a == key_b == Store(root).key(KIND, CONFIG)
    np.testing.assert_array_equal(w_a, w_b)


# -- refused inputs -----------------------------------------------------------


def test_nan_in_config_is_refused_naming_the_field(tmp_path):
    store = _store(tmp_path)
    with pytest.raises(StoreError, match=r"config\.opt\.lr = nan is not a finite"):
        store.key(KIND, {"opt": {"lr": float("nan")}})
    with pytest.raises(StoreError, match=r"config\.grid\[1\] = inf"):
        store.save(KIND, {"grid": [0.0, float("inf")]})


def test_object_arrays_are_refused(tmp_path):
    store = _store(tmp_path)
    with pytest.raises(StoreError, match=r"arrays\['bad'\] has dtype object.*pickle"):
        store.save(KIND, CONFIG, arrays={"bad": np.array([{"a": 1}], dtype=object)})
    assert store.keys(KIND) == []


@pytest.mark.parametrize(
    "config, match",
    [
        ({"x": np.arange(3)}, r"config\.x = .* has type ndarray, which is not JSON"),
        ({"a": {1: "b"}}, r"config\.a has key 1 of type int; keys must be str"),
        ({"s": {1, 2}}, r"config\.s = .* has type set"),
        ([("a", 1)], r"config = .* has type list; expected a dict"),
    ],
)
def test_non_json_config_is_refused(tmp_path, config, match):
    with pytest.raises(StoreError, match=match):
        _store(tmp_path).key(KIND, config)


def test_json_subclasses_are_written_as_plain_values(tmp_path):
    store = _store(tmp_path)
    assert store.key(KIND, {"lr": np.float64(0.5), "ok": True}) == store.key(
        KIND, {"lr": 0.5, "ok": True}
    )
    assert store.key(KIND, {"ok": True}) != store.key(KIND, {"ok": 1})


@pytest.mark.parametrize("kind", ["", ".tmp", "-x", "a/b", "../up", 3])
def test_bad_kind_is_refused(tmp_path, kind):
    with pytest.raises(StoreError, match="kind = .* is not valid"):
        _store(tmp_path).key(kind, CONFIG)


@pytest.mark.parametrize("key", ["abc", "A" * 64, "../" + "0" * 61, None])
def test_bad_key_is_refused(tmp_path, key):
    store = _store(tmp_path)
    with pytest.raises(StoreError, match="key = .* is not valid"):
        store.load(KIND, key)
    with pytest.raises(StoreError, match="key = .* is not valid"):
        store.has(KIND, key)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"tensors": [torch.zeros(1)]}, r"tensors = .* has type list; expected a dict"),
        ({"tensors": {1: torch.zeros(1)}}, r"tensors has name 1; names must be str"),
        ({"tensors": {"w": np.zeros(2)}}, r"tensors\['w'\] has type ndarray"),
        (
            {"tensors": {"w": torch.eye(2).to_sparse()}},
            r"tensors\['w'\] has layout torch.sparse_coo.*to_dense",
        ),
        ({"arrays": {"x": [1, 2]}}, r"arrays\['x'\] has type list; expected"),
        ({"meta": {"config": 1}}, r"meta uses reserved name\(s\) \['config'\]"),
        ({"meta": {"t": object()}}, r"meta\.t = .* has type object"),
    ],
)
def test_bad_save_inputs_are_refused(tmp_path, kwargs, match):
    store = _store(tmp_path)
    with pytest.raises(StoreError, match=match):
        store.save(KIND, CONFIG, **kwargs)
    assert store.keys(KIND) == []


@pytest.mark.parametrize(
    "result, match",
    [
        ([torch.zeros(1)], r"compute\(\) returned list; expected dict"),
        ({"weights": {}}, r"unknown field\(s\) \['weights'\]"),
    ],
)
def test_bad_compute_result_is_refused(tmp_path, result, match):
    store = _store(tmp_path)
    with pytest.raises(StoreError, match=match):
        store.get_or_compute(KIND, CONFIG, lambda: result)
    assert store.keys(KIND) == []
