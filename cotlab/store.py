"""The run store: trained artifacts and stage results, cached by config and code, written atomically.

Layout (root: ``RunStore(root)``, else ``$COTLAB_RUNS``, else ``runs/`` in the working directory; gitignored)::

    runs/<kind>/<key>/                    a complete run: immutable once published
        run.json                          {"kind", "key", "config", "code", "code_version", "created", "cotlab_version"}
        ...                               whatever the producer wrote (checkpoint, metrics.jsonl, eval results)
        MANIFEST.json                     written LAST: {"files": {relpath: {"size", "sha256"}}} for every file
    runs/<kind>/.tmp-<key>-<pid>-<rand>/  a run being built; renamed to <key>/ (os.replace) only when complete
    runs/<kind>/.scratch-<key>/           checkpoints of an unfinished build; survives a crash, removed on success
    runs/<kind>/.lock-<key>               the builder's lock: one builder per key, across processes
    runs/<kind>/.corrupt-<key>-<time>/    a corrupt run moved aside before it was recomputed

One builder per key: ``get_or_create`` builds under ``.lock-<key>`` (``filelock``: an OS lock, released when its
process dies, so a killed builder never blocks the next one). Other processes asking for the key wait for the lock,
then find the published run. Whoever holds the lock removes the key's ``.tmp-`` leftovers (their builders are gone,
or they could not have been holding it) and resumes from ``.scratch-<key>``, which only the lock holder writes.

``key = artifact_key(kind, config, code)``: sha256 (first 16 hex) of the kind, the canonical JSON of the config and
``code_version(code)``, the sha256 of the source of the named cotlab modules. Changing any of them gives a new key, so
the book rebuilds exactly what changed. A directory is *verified* when its manifest parses and every listed file has
its size and checksum (files added later are ignored; a missing or changed one makes the run corrupt). Producers need
not fsync: a run damaged by a crash after publication fails verification and is recomputed.

What each kind of run the book caches depends on (``BASE_POLICY_CODE``, ``VQ_CODE``, ``REWARD_MODEL_CODE``,
``RL_CODE``, ``EVAL_CODE``) is written here, below every room that builds or reads one, so that a key means the same
wherever it is computed.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import importlib.util
import inspect
import json
import os
import re
import secrets
import shutil
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cotlab
from cotlab.state_files import atomic_write_text

# run.json, not config.json: transformers checkpoints written into a run directory own config.json.
MANIFEST, CONFIG = "MANIFEST.json", "run.json"
_KIND = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # a directory name inside the kind: no '/', no leading '.'
WAIT_MESSAGE_AFTER = 1.0  # seconds of waiting for another builder's lock before saying so


class CorruptRunWarning(UserWarning):
    """A run directory failed verification and was recomputed."""


class CorruptRunError(Exception):
    """Raised by ``verify_or_raise``; the message names the file that does not match."""


@dataclasses.dataclass(frozen=True)
class RunRecord:
    kind: str
    key: str
    path: Path
    created: str
    config: dict[str, Any]


# ---------------------------------------------------------------- atomic single-file writes


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON; serialises first, so a failure leaves any old file intact."""
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def write_jsonl(path: str | Path, records: Sequence[dict[str, Any]], *, append: bool = False) -> None:
    """Write `records` as JSON lines, one object a line (metrics.jsonl), replacing the file or, with `append`, after
    what it holds; every record is serialised first, so one that JSON cannot hold writes nothing (one write,
    flushed)."""
    text = "".join(json.dumps(record) + "\n" for record in records)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a" if append else "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file (`write_jsonl`'s, e.g. a run's metrics.jsonl), in order; blank lines are
    skipped."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# ---------------------------------------------------------------- keys


def canonical_config(obj: Any, _where: str = "config") -> Any:
    """``obj`` as plain JSON values: dataclasses become dicts of their fields (as ``dataclasses.asdict``), tuples
    lists. Anything else that JSON cannot hold exactly raises TypeError naming its key."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        for k in obj:
            if not isinstance(k, str):
                raise TypeError(f"{_where}: key {k!r} is a {type(k).__name__}; config keys must be str")
        return {k: canonical_config(v, f"{_where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [canonical_config(v, f"{_where}[{i}]") for i, v in enumerate(obj)]
    for t in (bool, int, float, str):  # bool before int; subclasses (IntEnum, numpy.float64) become the base type
        if isinstance(obj, t):
            return str.__str__(obj) if t is str else t(obj)  # str.__str__: the value, even for (str, Enum)
    if obj is None:
        return None
    raise TypeError(f"{_where} = {obj!r} ({type(obj).__name__}) is not JSON-able; use str, int, float, bool, None, "
                    "list, dict or a dataclass of those")


def canonical_json(config: Any) -> str:
    """Canonical JSON of a config: sorted keys, no whitespace, floats by repr (``1e-05``)."""
    return json.dumps(canonical_config(config), sort_keys=True, separators=(",", ":"), allow_nan=True)


def _source_files(item: str | os.PathLike) -> list[tuple[str, Path]]:
    """(stable name, file) pairs for a module name ("cotlab.world": a package means all its .py files) or a path."""
    if isinstance(item, os.PathLike) or "/" in item or "\\" in item or item.endswith(".py"):
        root, label = Path(item), Path(item).name
    else:
        spec = importlib.util.find_spec(item)
        if spec is None or (spec.origin is None and not spec.submodule_search_locations):
            raise ModuleNotFoundError(f"code_version: no module named {item!r}")
        locations = list(spec.submodule_search_locations or [])
        root, label = (Path(locations[0]) if locations else Path(spec.origin)), item
    if root.is_file():
        return [(label, root)]
    if not root.is_dir():
        raise FileNotFoundError(f"code_version: {item!r} is neither a module nor an existing path")
    files = [p for p in root.rglob("*.py") if not any(part.startswith(".") for part in p.relative_to(root).parts)]
    return sorted((f"{label}/{p.relative_to(root).as_posix()}", p) for p in files)


def code_version(modules: Sequence[str | os.PathLike] | str | os.PathLike) -> str:
    """sha256 of the source of ``modules`` (module names or file/directory paths; order does not matter)."""
    items = [modules] if isinstance(modules, (str, os.PathLike)) else list(modules)
    h = hashlib.sha256()
    for name, path in sorted({pair for item in items for pair in _source_files(item)}):
        data = path.read_bytes()
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def package_version() -> str:
    """cotlab's version and the first 10 hex of `code_version` over its whole source: what an eval card records."""
    return f"{cotlab.__version__}+{code_version(['cotlab'])[:10]}"


def artifact_key(kind: str, config: Any, code: Sequence[str | os.PathLike] | str | os.PathLike) -> str:
    """Short stable key: first 16 hex of sha256(kind, canonical JSON of config, code version)."""
    payload = f"{kind}\n{canonical_json(config)}\n{code_version(code)}"
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# ---------------------------------------------------------------- what each kind of run depends on
# A change in these sources gives the kind new keys, so the book rebuilds exactly the runs it affects. Single files are
# named by path (the hash records their file name), so that a key is computed without importing their package.

_PACKAGE = Path(cotlab.__file__).parent


def _files(room: str, *names: str) -> tuple[str, ...]:
    return tuple(str(_PACKAGE / room / name) for name in names)


# A base policy (pretraining): the optional VQ, the benchmarks and the sampler, which pretraining never calls, do not.
BASE_POLICY_CODE = ("cotlab.world",
                    *_files("policy", "configs.py", "janus.py", "pretrain.py", "shapeworld.py", "tokenizers.py"))
VQ_CODE = ("cotlab.world", "cotlab.policy.vq", "cotlab.policy.tokenizers")
REWARD_MODEL_CODE = ("cotlab.world", *_files("rewards", "learned.py"))  # a learned ShapeWorld reward model
# The base policy never samples, so the sampler keys what samples (RL runs, evaluations) and not the base.
POLICY_CODE = (*BASE_POLICY_CODE, *_files("policy", "sampling.py"))
# An RL run: trainers, losses, rewards (with the checkpoint loaders of the paper-scale ones), log-prob kernels, the
# official prompt files it may train on, the sampler and the base policy.
RL_CODE = ("cotlab.training", "cotlab.losses", "cotlab.rewards", "cotlab.checkpoints", "cotlab.kernels",
           "cotlab.prompt_files", *POLICY_CODE)
# What an evaluation's numbers depend on besides the policy's weights (the policy's own code is part of its key).
EVAL_CODE = (*_files("evaluation", "shapeworld.py"), "cotlab.world", *POLICY_CODE)


# ---------------------------------------------------------------- the store


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _takes_two(build: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(build).parameters.values()
    except (TypeError, ValueError):
        return False
    kinds = [p.kind for p in params]
    return inspect.Parameter.VAR_POSITIONAL in kinds or sum(
        k in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) for k in kinds) >= 2


class RunStore:
    """Content-addressed run directories under ``root`` (see the module docstring for the layout)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root if root is not None else os.environ.get("COTLAB_RUNS") or "runs").expanduser().absolute()
        if self.root.exists() and not self.root.is_dir():
            where = "$COTLAB_RUNS" if root is None and os.environ.get("COTLAB_RUNS") else "the run store's root"
            raise NotADirectoryError(f"{where} {self.root} is a file, not a directory; point it at a directory")

    def path(self, kind: str, key: str) -> Path:
        """``root/<kind>/<key>``; a kind or key that would name a path outside its place (``..``, ``/``, a leading
        ``.``) is refused."""
        for what, name in (("kind", kind), ("key", key)):
            if not isinstance(name, str) or not _KIND.fullmatch(name) or name.strip(".") == "":
                raise ValueError(f"bad {what} {name!r}: use letters, digits, '_', '.', '-' (not starting with '.'; "
                                 f"no '/'), so that the run stays inside the store {self.root}")
        return self.root / kind / key

    def lock(self, kind: str, key: str):
        """The builder's lock of (kind, key): a `filelock.FileLock` on ``root/<kind>/.lock-<key>``."""
        from filelock import FileLock

        path = self.path(kind, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(path.parent / f".lock-{key}")

    def _remove_leftovers(self, kind: str, key: str) -> None:
        """Remove ``.tmp-<key>-*`` directories (call with the key's lock held: their builders are dead)."""
        for tmp in self.path(kind, key).parent.glob(f".tmp-{key}-*"):
            print(f"[cotlab] removing {tmp.name}, left by a build that did not finish", file=sys.stderr, flush=True)
            shutil.rmtree(tmp, ignore_errors=True)

    def scratch(self, kind: str, config: Any, code: Sequence[str | os.PathLike] | str) -> Path:
        """``runs/<kind>/.scratch-<key>/`` (created): a build's checkpoints, kept until the build succeeds."""
        key = artifact_key(kind, config, code)
        d = self.path(kind, key).parent / f".scratch-{key}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def verify_or_raise(self, path: str | Path) -> None:
        """Raise CorruptRunError naming the first file that is missing or whose size/sha256 mismatch."""
        path = Path(path)
        try:
            files = json.loads((path / MANIFEST).read_text(encoding="utf-8"))["files"]
            assert isinstance(files, dict) and CONFIG in files
        except (OSError, ValueError, KeyError, TypeError, AssertionError) as e:
            raise CorruptRunError(f"{path / MANIFEST}: missing or invalid manifest ({type(e).__name__})") from None
        for rel, meta in sorted(files.items()):
            f = path / rel
            if not (isinstance(meta, dict) and type(meta.get("size")) is int and isinstance(meta.get("sha256"), str)):
                raise CorruptRunError(f"{path / MANIFEST}: the entry of {rel!r} is not {{'size': int, 'sha256': str}}")
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise CorruptRunError(f"{path / MANIFEST}: lists {rel!r}, a path outside the run")
            if not f.is_file():
                raise CorruptRunError(f"{f}: listed in the manifest but missing")
            if f.stat().st_size != meta["size"] or _sha256(f) != meta["sha256"]:
                raise CorruptRunError(f"{f}: size or sha256 does not match the manifest")

    def verify(self, path: str | Path) -> bool:
        try:
            self.verify_or_raise(path)
            return True
        except CorruptRunError:
            return False

    def find(self, kind: str, config: Any, code: Sequence[str | os.PathLike] | str) -> Path | None:
        """The verified run for (kind, config, code), or None."""
        p = self.path(kind, artifact_key(kind, config, code))
        return p if p.is_dir() and self.verify(p) else None

    def list(self, kind: str | None = None) -> list[RunRecord]:
        """Published runs (those with a manifest; not re-hashed: use ``verify``), oldest first."""
        kinds = [kind] if kind else sorted(p.name for p in self.root.glob("*") if p.is_dir())
        records = []
        for k in kinds:
            for d in sorted((self.root / k).glob("[!.]*")):
                try:
                    c = json.loads((d / CONFIG).read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                if (d / MANIFEST).is_file():
                    records.append(RunRecord(k, d.name, d, c.get("created", ""), c.get("config", {})))
        return sorted(records, key=lambda r: (r.created, r.kind, r.key))

    def get_or_create(self, kind: str, config: Any, code: Sequence[str | os.PathLike] | str,
                      build: Callable[..., None], *, desc: str | None = None) -> Path:
        """The verified run directory for (kind, config, code), calling ``build(tmpdir)`` (or ``build(tmpdir,
        scratch)`` when it takes two arguments) to make it if needed. ``build`` writes its files into the directory
        it is given (run.json and MANIFEST.json are the store's); a build that raises leaves nothing behind but
        its scratch directory, which a rerun gets back to resume from and which is removed once a build succeeds."""
        key = artifact_key(kind, config, code)
        final, label = self.path(kind, key), f"{kind}/{key}" + (f" ({desc})" if desc else "")
        if final.exists() and self.verify(final):
            print(f"[cotlab] reusing {label}: {final}", file=sys.stderr, flush=True)
            return final
        from filelock import Timeout

        lock = self.lock(kind, key)
        try:
            lock.acquire(timeout=WAIT_MESSAGE_AFTER)
        except Timeout:
            print(f"[cotlab] waiting for another process building {label} (lock {lock.lock_file})", file=sys.stderr,
                  flush=True)
            lock.acquire()
        try:
            if final.exists() and self.verify(final):  # built by the process we waited for
                print(f"[cotlab] reusing {label} (built by another process): {final}", file=sys.stderr, flush=True)
                return final
            self._remove_leftovers(kind, key)
            self._build(kind, key, config, code, build, final, label)
        finally:
            lock.release()
        return final

    def _build(self, kind: str, key: str, config: Any, code, build: Callable[..., None], final: Path,
               label: str) -> None:
        """Build into a temporary directory and publish it as `final` (the key's lock is held)."""
        tmp = final.parent / f".tmp-{key}-{os.getpid()}-{secrets.token_hex(4)}"
        tmp.mkdir(parents=True)
        two = _takes_two(build)
        try:
            print(f"[cotlab] building {label}", file=sys.stderr, flush=True)
            build(tmp, self.scratch(kind, config, code)) if two else build(tmp)
            for reserved in (CONFIG, MANIFEST):
                if (tmp / reserved).exists():
                    raise ValueError(f"build wrote {reserved}, which the run store reserves for itself")
            atomic_write_json(tmp / CONFIG, {
                "kind": kind, "key": key, "config": canonical_config(config),
                "code": [str(c) for c in ([code] if isinstance(code, (str, os.PathLike)) else code)],
                "code_version": code_version(code), "created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
                "cotlab_version": cotlab.__version__})
            files = sorted(p for p in tmp.rglob("*") if p.is_file())
            atomic_write_json(tmp / MANIFEST, {"files": {p.relative_to(tmp).as_posix(): {
                "size": p.stat().st_size, "sha256": _sha256(p)} for p in files}})
            if final.exists():  # corrupt (verified runs were returned before building): keep it aside for a look
                stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
                aside = final.parent / f".corrupt-{key}-{stamp}"
                os.replace(final, aside)
                warnings.warn(f"run {label} at {final} was corrupt; moved it to {aside} and recomputed it",
                              CorruptRunWarning, stacklevel=3)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(final.parent / f".scratch-{key}", ignore_errors=True)
