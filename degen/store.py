"""Results on disk, content-addressed by a hash of the full config.

An entry lives at ``root/<kind>/<key[:2]>/<key>/`` and holds three files:
``tensors.safetensors``, ``arrays.npz`` and ``meta.json``. The key is the
sha256 of the canonical JSON of the kind, :data:`SCHEMA_VERSION` and the
config, so the same config finds the same entry from any process.

Writes go to a temporary folder that is renamed into place, so an entry is
either complete or absent; a temporary folder left by a killed write is
never read, and the next writer of that key removes it. ``meta.json`` is
written last and records the checksums of the other two files; an entry
whose files do not match it is moved aside to ``root/<kind>/.corrupt/``
(never deleted) and recomputed. The same arrays and tensors give the same
bytes, so checksums can be compared across runs. Loading never unpickles.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import functools
import hashlib
import io
import json
import logging
import math
import os
import platform
import re
import secrets
import shutil
import subprocess
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch

from degen import killpoints

logger = logging.getLogger(__name__)

# Bump when the layout of an entry or the meaning of stored values changes;
# entries written under another version are moved aside and recomputed.
SCHEMA_VERSION = 1

TENSORS_FILE = "tensors.safetensors"
ARRAYS_FILE = "arrays.npz"
META_FILE = "meta.json"

# meta.json fields written by the store; user meta may not use these names.
RESERVED_META = frozenset(
    {"kind", "key", "schema", "config", "created", "versions", "files"}
)
# Every member of arrays.npz gets this zip timestamp (the earliest zip can
# hold), so that the same arrays always give the same bytes and checksum.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_KIND_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_KEY_RE = re.compile(r"[0-9a-f]{64}")
_COMPUTE_FIELDS = frozenset({"tensors", "arrays", "meta"})


class StoreError(RuntimeError):
    """A value the store cannot hash or write, or a name it cannot use."""


class CorruptEntryWarning(UserWarning):
    """An entry on disk was partial or corrupt; it was moved aside."""


class _Corrupt(Exception):
    """Internal: why an entry on disk cannot be used."""


@dataclasses.dataclass(frozen=True, eq=False)
class Entry:
    """One stored result; tensors are on the CPU."""

    key: str
    config: dict  # exactly what was hashed (tuples as lists)
    tensors: dict[str, torch.Tensor] = dataclasses.field(repr=False)
    arrays: dict[str, np.ndarray] = dataclasses.field(repr=False)
    # everything else in meta.json: the user's meta, versions, created, files
    meta: dict


class Store:
    """A folder of results keyed by ``(kind, config)``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # -- naming -----------------------------------------------------------

    def key(self, kind: str, config: dict) -> str:
        """sha256 hex of the canonical JSON of kind, schema and config."""
        _check_kind(kind)
        if not isinstance(config, dict):
            raise StoreError(
                f"config = {config!r} has type {type(config).__name__}; expected "
                "a dict (for a config dataclass pass degen.config.to_dict(config))"
            )
        doc = {
            "kind": kind,
            "schema": SCHEMA_VERSION,
            "config": _plain(config, "config", finite=True),
        }
        return hashlib.sha256(_canonical_json(doc)).hexdigest()

    def path(self, kind: str, key: str) -> Path:
        """Folder of an entry: ``root/kind/key[:2]/key``."""
        _check_kind(kind)
        _check_key(key)
        return self.root / kind / key[:2] / key

    # -- reading ----------------------------------------------------------

    def has(self, kind: str, key: str) -> bool:
        """True when a complete, valid entry exists; moves nothing."""
        folder = self.path(kind, key)
        try:
            self._verify(folder, kind, key)
        except _Corrupt:
            return False
        return True

    def load(self, kind: str, key: str) -> Entry | None:
        """The entry, or None when absent or unusable.

        A partial or corrupt entry gives a :class:`CorruptEntryWarning` naming
        it and the reason, is moved to ``root/kind/.corrupt/`` and gives None,
        so the caller recomputes.
        """
        entry, problem = self._load(kind, key, locked=False)
        if problem:
            warnings.warn(problem, CorruptEntryWarning, stacklevel=2)
        return entry

    def state(self, kind: str, key: str) -> tuple[str, str]:
        """("done" | "running" | "missing" | "corrupt", reason) of an entry.

        "running" means that another process holds the key's lock (it is
        computing the entry). Moves and writes nothing.
        """
        folder = self.path(kind, key)
        try:
            self._verify(folder, kind, key)
        except _Corrupt as exc:
            reason = str(exc)
        else:
            return "done", "complete, checksums match"
        if self._lock_held(kind, key):
            return "running", "another process holds its lock"
        if not folder.exists():
            return "missing", "not computed yet"
        return "corrupt", reason

    def keys(self, kind: str) -> list[str]:
        """Sorted keys of the complete, valid entries of ``kind``."""
        _check_kind(kind)
        base = self.root / kind
        if not base.is_dir():
            return []
        found = []
        for shard in base.iterdir():
            # .tmp, .locks and .corrupt never match a two-hex-digit shard
            if not (shard.is_dir() and re.fullmatch(r"[0-9a-f]{2}", shard.name)):
                continue
            for folder in shard.iterdir():
                name = folder.name
                if _KEY_RE.fullmatch(name) and name.startswith(shard.name):
                    if self.has(kind, name):
                        found.append(name)
        return sorted(found)

    # -- writing ----------------------------------------------------------

    def save(
        self,
        kind: str,
        config: dict,
        *,
        tensors: dict[str, torch.Tensor] | None = None,
        arrays: dict[str, np.ndarray] | None = None,
        meta: dict | None = None,
    ) -> str:
        """Write an entry and return its key; an existing valid one is kept."""
        key = self.key(kind, config)
        with self._lock(kind, key):
            problem = self._save(kind, key, config, tensors, arrays, meta)
        if problem:
            warnings.warn(problem, CorruptEntryWarning, stacklevel=2)
        return key

    def get_or_compute(
        self, kind: str, config: dict, compute: Callable[[], dict]
    ) -> Entry:
        """Load the entry for ``config``, or call ``compute()`` and save it.

        ``compute()`` returns ``dict(tensors=..., arrays=..., meta=...)`` (each
        optional). A per-key file lock makes concurrent callers, in this or
        other processes, compute once: the others wait, then load. The lock
        is held while ``compute`` runs, so ``compute`` must not itself save
        or get_or_compute the same key (it would wait on itself).
        """
        key = self.key(kind, config)
        with self._lock(kind, key):
            entry, problem = self._load(kind, key, locked=True)
            if problem:
                warnings.warn(problem, CorruptEntryWarning, stacklevel=2)
            if entry is not None:
                return entry
            logger.info("computing %s/%s", kind, key)
            result = compute()
            _check_compute_result(result)
            killpoints.reached("compute")
            problem = self._save(kind, key, config, **result)
            if problem:  # only when the disk changed under the lock
                warnings.warn(problem, CorruptEntryWarning, stacklevel=2)
            entry, problem = self._load(kind, key, locked=True)
        if entry is None:
            raise StoreError(
                f"entry {kind}/{key} could not be read back right after it was "
                f"written ({problem}); is {self.root} on a working file system?"
            )
        return entry

    # -- internals --------------------------------------------------------

    def _load(
        self, kind: str, key: str, *, locked: bool
    ) -> tuple[Entry | None, str | None]:
        """(entry, None), (None, None) when absent, or (None, warning text)."""
        folder = self.path(kind, key)
        if not folder.exists():
            return None, None
        try:
            return self._read(folder, kind, key), None
        except _Corrupt as exc:
            reason = str(exc)
        if locked:
            moved = self._move_aside(kind, key)
        else:
            with self._lock(kind, key):
                # another process may have moved or replaced it meanwhile
                if not folder.exists():
                    return None, None
                try:
                    return self._read(folder, kind, key), None
                except _Corrupt as exc:
                    reason = str(exc)
                moved = self._move_aside(kind, key)
        return None, (
            f"store entry {kind}/{key} is unusable: {reason}; moved it to "
            f"{moved}; it will be recomputed"
        )

    def _verify(self, folder: Path, kind: str, key: str) -> tuple[dict, dict]:
        """Check an entry against its meta.json; return (meta, file bytes)."""
        if not folder.is_dir():
            raise _Corrupt(f"{folder} does not exist")
        meta_path = folder / META_FILE
        try:
            text = meta_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise _Corrupt(f"{META_FILE} is missing (partial write)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise _Corrupt(f"{META_FILE} cannot be read: {exc}") from None
        try:
            meta = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _Corrupt(f"{META_FILE} is not valid JSON: {exc}") from None
        if not isinstance(meta, dict):
            raise _Corrupt(f"{META_FILE} holds a {type(meta).__name__}, not an object")
        schema = meta.get("schema")
        if schema != SCHEMA_VERSION:
            raise _Corrupt(
                f"it was written with schema version {schema!r}; this degen reads "
                f"schema version {SCHEMA_VERSION}"
            )
        if meta.get("kind") != kind or meta.get("key") != key:
            raise _Corrupt(
                f"{META_FILE} names kind/key {meta.get('kind')!r}/"
                f"{meta.get('key')!r}, not the folder it is in"
            )
        try:
            rehashed = self.key(kind, meta.get("config"))
        except StoreError as exc:
            raise _Corrupt(
                f"the config in {META_FILE} cannot be hashed: {exc}"
            ) from None
        if rehashed != key:
            raise _Corrupt(
                f"the config in {META_FILE} hashes to {rehashed}, not to the key "
                "(edited config)"
            )
        blobs = {}
        files = meta.get("files")
        for name in (TENSORS_FILE, ARRAYS_FILE):
            blobs[name] = _checked_bytes(folder / name, _file_record(files, name))
        return meta, blobs

    def _read(self, folder: Path, kind: str, key: str) -> Entry:
        meta, blobs = self._verify(folder, kind, key)
        try:
            tensors = safetensors.torch.load(blobs[TENSORS_FILE])
        except Exception as exc:  # the parser raises its own error types
            raise _Corrupt(f"{TENSORS_FILE} cannot be parsed: {exc}") from None
        try:
            with np.load(io.BytesIO(blobs[ARRAYS_FILE]), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except Exception as exc:  # zipfile, format and pickle refusals alike
            raise _Corrupt(f"{ARRAYS_FILE} cannot be parsed: {exc}") from None
        config = meta.pop("config")
        logger.debug("loaded %s/%s", kind, key)
        return Entry(key=key, config=config, tensors=tensors, arrays=arrays, meta=meta)

    def _save(
        self,
        kind: str,
        key: str,
        config: dict,
        tensors: dict | None = None,
        arrays: dict | None = None,
        meta: dict | None = None,
    ) -> str | None:
        """Write under the held lock; return warning text if an entry moved."""
        plain_config = _plain(config, "config", finite=True)
        tensors = _cpu_tensors(tensors)
        arrays = _checked_arrays(arrays)
        user_meta = _checked_meta(meta)
        if self.has(kind, key):
            logger.debug("%s/%s already stored; keeping it", kind, key)
            return None
        self._remove_stale_tmp(kind, key)
        tmp = self._write_tmp(kind, key, plain_config, tensors, arrays, user_meta)
        killpoints.reached("publish")
        return self._publish(kind, key, tmp)

    def _remove_stale_tmp(self, kind: str, key: str) -> None:
        """Remove temporary folders of ``key`` left by killed writes; only
        called under the key's lock, so no live writer owns one."""
        tmp_root = self.root / kind / ".tmp"
        if not tmp_root.is_dir():
            return
        for stale in tmp_root.glob(f"{key}-*"):
            logger.info("removing %s, left by an interrupted write", stale)
            shutil.rmtree(stale, ignore_errors=True)

    def _write_tmp(
        self,
        kind: str,
        key: str,
        config: Any,
        tensors: dict[str, torch.Tensor],
        arrays: dict[str, np.ndarray],
        user_meta: dict,
    ) -> Path:
        tmp_root = self.root / kind / ".tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        tmp = tmp_root / f"{key}-{os.getpid()}-{secrets.token_hex(4)}"
        tmp.mkdir()
        try:
            safetensors.torch.save_file(tensors, str(tmp / TENSORS_FILE))
            killpoints.reached("write")
            _write_npz(tmp / ARRAYS_FILE, arrays)
            files = {}
            for name in (TENSORS_FILE, ARRAYS_FILE):
                _fsync_file(tmp / name)
                data = (tmp / name).read_bytes()
                files[name] = {
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                }
            doc = {
                **user_meta,
                "kind": kind,
                "key": key,
                "schema": SCHEMA_VERSION,
                "config": config,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                "versions": _versions(),
                "files": files,
            }
            # user meta may hold NaN (a diverged loss); Python's json reads it
            text = json.dumps(doc, sort_keys=True, indent=1, allow_nan=True)
            with open(tmp / META_FILE, "w", encoding="utf-8") as fh:
                fh.write(text)
            _fsync_file(tmp / META_FILE)
            _fsync_dir(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return tmp

    def _publish(self, kind: str, key: str, tmp: Path) -> str | None:
        """Rename ``tmp`` into place; keep a valid entry already there."""
        final = self.path(kind, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        problem = None
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            if self.has(kind, key):
                # another writer won (e.g. flock is a no-op on this file system)
                logger.debug("%s/%s appeared meanwhile; keeping it", kind, key)
                shutil.rmtree(tmp, ignore_errors=True)
                return None
            _, problem = self._load(kind, key, locked=True)
            os.rename(tmp, final)
        _fsync_dir(final.parent)
        logger.debug("saved %s/%s", kind, key)
        return problem

    def _move_aside(self, kind: str, key: str) -> Path:
        """Move an unusable entry to ``.corrupt/<key>-<timestamp>``."""
        aside = self.root / kind / ".corrupt"
        aside.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y%m%dT%H%M%S%fZ"
        )
        dest = aside / f"{key}-{stamp}"
        os.rename(self.path(kind, key), dest)
        return dest

    def _lock_path(self, kind: str, key: str) -> Path:
        return self.root / kind / ".locks" / f"{key}.lock"

    def _lock_held(self, kind: str, key: str) -> bool:
        return lock_held(self._lock_path(kind, key))

    def _lock(self, kind: str, key: str) -> contextlib.AbstractContextManager:
        """Exclusive lock of ``root/kind/.locks/<key>.lock``."""
        return file_lock(self._lock_path(kind, key), f"{kind}/{key}")


@contextlib.contextmanager
def file_lock(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (created if needed), waiting for
    another process that holds it; ``what`` names the locked thing in the log.

    Lock files are left in place: deleting one while another process waits
    on it would let a third process lock a new file and run too.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for another process on %s", what)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def lock_held(path: Path) -> bool:
    """Whether another process holds the lock :func:`file_lock` takes on
    ``path`` now (never creates the file; a lock this process holds through
    another descriptor counts too)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        # a shared lock is refused while someone holds the exclusive one
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


# -- checks and conversions -------------------------------------------------


def _check_kind(kind: Any) -> None:
    if not isinstance(kind, str) or not _KIND_RE.fullmatch(kind):
        raise StoreError(
            f"kind = {kind!r} is not valid; use letters, digits, '_', '-' or '.', "
            "not starting with '.' or '-'"
        )


def _check_key(key: Any) -> None:
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise StoreError(
            f"key = {key!r} is not valid; expected 64 lowercase hex digits "
            "(as returned by Store.key)"
        )


def _plain(value: Any, where: str, *, finite: bool) -> Any:
    """A JSON-ready copy of ``value``: tuples become lists, nothing else bends."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)  # an int subclass (IntEnum) is written as a plain int
    if isinstance(value, float):
        if finite and not math.isfinite(value):
            raise StoreError(
                f"{where} = {value!r} is not a finite number; the key hash needs "
                "finite floats (JSON has no NaN or infinity)"
            )
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]", finite=finite) for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise StoreError(
                    f"{where} has key {k!r} of type {type(k).__name__}; "
                    "keys must be str"
                )
            out[k] = _plain(v, f"{where}.{k}", finite=finite)
        return out
    raise StoreError(
        f"{where} = {value!r} has type {type(value).__name__}, which is not JSON; "
        "use None, bool, int, float, str, list, tuple or dict"
    )


def _canonical_json(doc: Any) -> bytes:
    # json writes floats with float.__repr__, which round-trips exactly
    return json.dumps(
        doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def _check_names(items: Any, what: str) -> dict:
    if items is None:
        return {}
    if not isinstance(items, dict):
        raise StoreError(
            f"{what} = {items!r} has type {type(items).__name__}; expected a dict "
            "of name -> value"
        )
    for name in items:
        if not isinstance(name, str):
            raise StoreError(f"{what} has name {name!r}; names must be str")
    return items


def _cpu_tensors(tensors: Any) -> dict[str, torch.Tensor]:
    out = {}
    for name, t in _check_names(tensors, "tensors").items():
        if not isinstance(t, torch.Tensor):
            raise StoreError(
                f"tensors[{name!r}] has type {type(t).__name__}; expected a "
                "torch.Tensor"
            )
        if t.layout != torch.strided:
            raise StoreError(
                f"tensors[{name!r}] has layout {t.layout}; safetensors stores "
                "dense tensors only, so call .to_dense() first"
            )
        # a fresh copy: safetensors refuses tensors that share memory, and the
        # caller's tensor is never touched
        out[name] = t.detach().to(
            "cpu", memory_format=torch.contiguous_format, copy=True
        )
    return out


def _checked_arrays(arrays: Any) -> dict[str, np.ndarray]:
    arrays = _check_names(arrays, "arrays")
    for name, a in arrays.items():
        if not isinstance(a, np.ndarray):
            raise StoreError(
                f"arrays[{name!r}] has type {type(a).__name__}; expected a "
                "numpy.ndarray"
            )
        if a.dtype.hasobject:
            raise StoreError(
                f"arrays[{name!r}] has dtype {a.dtype}, which holds Python "
                "objects; the store never pickles, so convert it to a numeric "
                "or string dtype"
            )
    return arrays


def _checked_meta(meta: Any) -> dict:
    meta = _check_names(meta, "meta")
    taken = sorted(RESERVED_META & set(meta))
    if taken:
        raise StoreError(
            f"meta uses reserved name(s) {taken}; the store writes "
            f"{sorted(RESERVED_META)} itself"
        )
    return _plain(meta, "meta", finite=False)


def _check_compute_result(result: Any) -> None:
    if not isinstance(result, dict):
        raise StoreError(
            f"compute() returned {type(result).__name__}; expected "
            "dict(tensors=..., arrays=..., meta=...)"
        )
    unknown = sorted(set(result) - _COMPUTE_FIELDS)
    if unknown:
        raise StoreError(
            f"compute() returned unknown field(s) {unknown}; valid: "
            f"{sorted(_COMPUTE_FIELDS)}"
        )


def _file_record(files: Any, name: str) -> dict:
    record = files.get(name) if isinstance(files, dict) else None
    if not (
        isinstance(record, dict)
        and isinstance(record.get("sha256"), str)
        and isinstance(record.get("size"), int)
    ):
        raise _Corrupt(f"{META_FILE} has no checksum for {name}")
    return record


def _checked_bytes(path: Path, record: dict) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _Corrupt(f"{path.name} is missing") from None
    except OSError as exc:
        raise _Corrupt(f"{path.name} cannot be read: {exc}") from None
    if len(data) != record["size"]:
        raise _Corrupt(
            f"{path.name} has {len(data)} bytes, {record['size']} expected "
            "(truncated or edited)"
        )
    if hashlib.sha256(data).hexdigest() != record["sha256"]:
        raise _Corrupt(f"{path.name} does not match its checksum (edited)")
    return data


def _versions() -> dict[str, str]:
    import degen  # here, not at the top: degen/__init__ may import this module

    return {
        "degen": str(getattr(degen, "__version__", "unknown")),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "git_commit": _git_commit(),
    }


@functools.cache
def _git_commit() -> str:
    """The commit of the degen checkout that wrote an entry ("unknown" outside
    a git checkout); a "+dirty" suffix marks uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    suffix = "+dirty" if dirty.stdout.strip() else ""
    return head.stdout.strip() + suffix


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """What ``np.savez`` writes, less the wall-clock time it stamps on each
    member (which would give the same arrays a new checksum every time)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, a in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, a, allow_pickle=False)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    # makes the rename itself durable, not only the files' contents
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
