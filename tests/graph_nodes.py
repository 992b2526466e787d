"""Node functions for tests/test_ray_executor.py: small run-store artifacts in a dependency chain, a failure and
dying workers. They run in the executor's workers (imported by name), which find this folder on their sys.path."""
import hashlib
import os
import signal
from pathlib import Path

from cotlab.store import RunStore, artifact_key

KIND = "toy"


def _config(name: str, after: list) -> dict:
    return {"name": name, "after": list(after)}


def published(name: str, after: list = ()) -> Path:
    """Where the artifact `name` (built on top of the chain `after`) is once published."""
    return RunStore().path(KIND, artifact_key(KIND, _config(name, after), [__name__]))


def publish(name: str, after: list = ()) -> Path:
    """The artifact `name`: files whose text depends on the chain of artifacts `after` (e.g. ["a", "b"] for "c"),
    which their own nodes must have published before (the executor's order)."""
    if after:
        before = published(after[-1], after[:-1])
        if not (before / "MANIFEST.json").is_file():
            raise RuntimeError(f"{name} ran before {after[-1]}, which it depends on, was published")

    def build(tmp: Path) -> None:
        parent = (before / "value.txt").read_text() if after else ""
        (tmp / "value.txt").write_text(hashlib.sha256(f"{parent}{name}".encode()).hexdigest() + "\n")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "name.txt").write_text(f"{name} after {list(after)}\n")

    return RunStore().get_or_create(KIND, _config(name, after), [__name__], build, desc=name)


def fail(message: str) -> None:
    raise ValueError(message)


def die_once(marker: str, name: str) -> None:
    """The first attempt kills its own worker (as the OOM killer would); the retry publishes `name`."""
    if not Path(marker).exists():
        Path(marker).write_text("died once")
        os.kill(os.getpid(), signal.SIGKILL)
    publish(name)


def die_always() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
