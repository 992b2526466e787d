"""Node functions for tests/test_executor.py: run in the executor's worker processes (imported by name)."""
import os
import signal
import time
from pathlib import Path


def record(log: str, name: str, seconds: float = 0.0) -> None:
    """Append "start"/"end" lines with times, so the test can tell what ran and what overlapped."""
    with open(log, "a") as f:
        f.write(f"start {name} {time.time()} {os.getpid()}\n")
    time.sleep(seconds)
    with open(log, "a") as f:
        f.write(f"end {name} {time.time()} {os.environ.get('OMP_NUM_THREADS')}\n")


def fail(message: str) -> None:
    raise ValueError(message)


def die_once(marker: str, log: str, name: str) -> None:
    """The first attempt kills its own worker (as the OOM killer would); the retry succeeds."""
    if not Path(marker).exists():
        Path(marker).write_text("died once")
        os.kill(os.getpid(), signal.SIGKILL)
    record(log, name)


def die_always() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
