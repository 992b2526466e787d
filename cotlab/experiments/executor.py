"""Execute a study's graph (`cotlab.experiments.graph`) in worker processes, or on a Ray cluster.

Local: `workers` processes (default: the cores this process may use), each with one torch thread, so that the
workers together never run more threads than cores: measured on 2 cores, two GRPO runs side by side with one thread
each did 1.55x the work of the same runs one after the other with two threads, while oversubscribed threads slowed
pretraining 8x. The run store is where workers meet: each node builds (or reuses) its artifact there under the
store's per-key lock.

`Schedule` is the bookkeeping both executors share: a node starts when its dependencies are done; a failed node
stops what depends on it (skipped, each named), and everything else still runs. A worker that dies in the middle of a
node (killed, out of memory) loses the nodes it was running: each is retried once, then reported as failed. Nothing
is half-published: the store publishes a run only when its build finished. Each node's output goes to its own log
file (`<log_dir>/<kind>-<id>.log`), named in the failure report.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

from .graph import COST, Graph, Node, progress_of, run_node

EXCLUSIVE = ("base_policy",)  # kinds run alone with every worker's thread: long, and everything else waits on them
RETRIES = 1  # a node whose worker died is run once more (a crash of the machine, not of the node, is the usual cause)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_workers(workers: int | None) -> int:
    """`workers`, or the available cores when None; 0 or less is refused, more than the cores warned about."""
    cores = available_cores()
    if workers is None:
        return cores
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a whole number >= 1, got {workers!r}; the default is this machine's "
                         f"{cores} cores")
    if workers > cores:
        warnings.warn(f"{workers} workers on {cores} cores: each worker uses one thread, so {workers - cores} of "
                      f"them will wait for a core and slow the others down; use --workers {cores} or fewer",
                      stacklevel=2)
    return workers


@dataclasses.dataclass
class Report:
    """What an execution did: ids of nodes done, failed ({id: message}) and skipped ({id: the failed node})."""

    done: list[str] = dataclasses.field(default_factory=list)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


class Schedule:
    """Which nodes may start, and what a finished or failed node means for the rest."""

    def __init__(self, graph: Graph, workers: int = 1):
        self.graph, self.workers = graph, workers
        self.waiting = dict(graph.nodes)
        self.running: dict[str, float] = {}  # id -> start time
        self.attempts: dict[str, int] = {}
        self.report = Report()

    def ready(self, limit: int | None = None, alone_if=(), busy: int = 0) -> list[Node]:
        """Up to `limit` nodes whose dependencies are done, in graph order, removed from waiting and marked
        running. A node of a kind in `alone_if` comes first and alone, and only once no other node is running
        (`busy` others are): it gets the machine to itself."""
        done = set(self.report.done)
        nodes = [n for n in self.waiting.values() if all(d in done for d in n.deps)]
        first = [n for n in nodes if n.kind in alone_if]
        if first:
            nodes = [] if busy else first[:1]
        nodes = nodes[:limit]
        for n in nodes:
            del self.waiting[n.id]
            self.running[n.id] = time.monotonic()
            self.attempts[n.id] = self.attempts.get(n.id, 0) + 1
        return nodes

    def finished(self, node_id: str) -> None:
        self.report.seconds[node_id] = time.monotonic() - self.running.pop(node_id)
        self.report.done.append(node_id)

    def failed(self, node_id: str, message: str) -> None:
        self.running.pop(node_id, None)
        self.report.failed[node_id] = message
        for dependent in self.graph.dependents(node_id):
            if self.waiting.pop(dependent, None) is not None:
                self.report.skipped[dependent] = node_id

    def lost(self, node_id: str, why: str) -> bool:
        """A node whose worker died: back to waiting if it may be retried (True), else failed."""
        if self.attempts[node_id] <= RETRIES:
            self.running.pop(node_id)
            self.waiting = {node_id: self.graph.nodes[node_id], **self.waiting}
            return True
        self.failed(node_id, f"{why} (after {self.attempts[node_id]} attempts)")
        return False

    @property
    def active(self) -> bool:
        return bool(self.waiting or self.running)

    def status(self) -> str:
        """One line: done / running / waiting counts, the running nodes' names, and an ETA."""
        r = self.report
        names = ", ".join(self.graph.nodes[i].label + progress_of(self.graph.nodes[i]) for i in self.running)
        line = (f"[cotlab] graph: {len(r.done)} done, {len(self.running)} running, {len(self.waiting)} waiting"
                + (f", {len(r.failed)} failed, {len(r.skipped)} skipped" if r.failed else ""))
        eta = self.eta()
        return line + (f"; eta {_minutes(eta)}" if eta is not None else "") + (f" | {names}" if names else "")

    def eta(self) -> float | None:
        """Seconds left: each remaining node at the mean time of its kind so far (else `graph.COST`), spread over
        the workers that are busy."""
        by_kind: dict[str, list[float]] = {}
        for node_id, seconds in self.report.seconds.items():
            by_kind.setdefault(self.graph.nodes[node_id].kind, []).append(seconds)
        cost = {k: sum(v) / len(v) for k, v in by_kind.items()}
        left = [cost.get(n.kind, COST.get(n.kind, 60.0)) for n in self.waiting.values()]
        now = time.monotonic()
        left += [max(0.0, cost.get(self.graph.nodes[i].kind, COST.get(self.graph.nodes[i].kind, 60.0)) - (now - t))
                 for i, t in self.running.items()]
        busy = max(1, min(self.workers, len(self.running) + len(self.waiting)))
        return sum(left) / busy if left else None


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def log_path(log_dir: str | Path, n: Node) -> Path:
    return Path(log_dir) / f"{n.id.replace('/', '-')}.log"


def run_logged(n: Node, log_file: str, threads: int = 1) -> float:
    """Run a node with its stdout and stderr in `log_file` and `threads` torch threads; returns its seconds. Raises
    RuntimeError with the last lines of the log when the node fails (the exception text, for the report)."""
    began = time.monotonic()
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a", encoding="utf-8") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        print(f"[cotlab] {n.label} ({n.id}), pid {os.getpid()}", flush=True)
        try:
            run_node(n)
        except BaseException:
            traceback.print_exc()
            log.flush()
            tail = Path(log_file).read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
            raise RuntimeError(f"{n.label} failed: {tail[0] if tail else 'no output'} (log: {log_file})") from None
    return time.monotonic() - began


def _worker(connection, log_dir: str) -> None:
    """A worker process: one torch thread (set before torch is first imported); runs the (node, threads) it is sent,
    answers (node id, seconds, None) or (node id, None, message) for each; stops on None."""
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    while (task := connection.recv()) is not None:
        n, threads = task
        try:
            connection.send((n.id, run_logged(n, str(log_path(log_dir, n)), threads), None))
        except Exception as e:  # noqa: BLE001 (a node's own failure goes back to the scheduler)
            connection.send((n.id, None, str(e)))


class _Worker:
    """A worker process and the node it is running (None when idle)."""

    def __init__(self, context, log_dir: str):
        self.connection, theirs = context.Pipe()
        self.process = context.Process(target=_worker, args=(theirs, log_dir), daemon=True)
        self.process.start()
        theirs.close()
        self.node: str | None = None

    def stop(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError):
                self.connection.send(None)
            self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def execute_local(graph: Graph, *, workers: int | None = None, log_dir: str | Path = "_build/logs",
                  progress: Callable[[str], None] | None = None, interval: float = 10.0) -> Report:
    """Run `graph` in `workers` processes (one torch thread each); returns the `Report`. `progress` gets a status
    line whenever a node starts or ends and every `interval` seconds. A worker that dies is replaced, and only the
    node it was running is blamed (retried once, then failed)."""
    import multiprocessing
    from multiprocessing.connection import wait

    workers = check_workers(workers)
    schedule = Schedule(graph, workers)
    say = progress or (lambda line: None)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch threads inherited from a fork
    pool = [_Worker(context, str(log_dir)) for _ in range(workers)]
    try:
        while schedule.active:
            idle = [w for w in pool if w.node is None]
            # An exclusive node (the base policy: everything RL waits for it) runs alone with every core's thread.
            alone = any(graph.nodes[w.node].kind in EXCLUSIVE for w in pool if w.node)
            for worker, n in zip(idle, [] if alone else schedule.ready(len(idle), alone_if=EXCLUSIVE,
                                                                         busy=len(pool) - len(idle))):
                worker.node = n.id
                worker.connection.send((n, workers if n.kind in EXCLUSIVE else 1))
            say(schedule.status())
            if not any(w.node for w in pool):
                break  # nothing running and nothing ready: the rest was skipped
            busy = [w for w in pool if w.node]
            events = wait([w.connection for w in busy] + [w.process.sentinel for w in busy], timeout=interval)
            for k, worker in enumerate(pool):
                if worker.node is None or not (worker.connection in events or worker.process.sentinel in events):
                    continue
                try:  # a dead worker's pipe reads as end of file
                    node_id, seconds, error = worker.connection.recv()
                except (EOFError, OSError):
                    worker.process.join(timeout=5)
                    n = graph.nodes[worker.node]
                    schedule.lost(n.id, f"its worker process died (exit code {worker.process.exitcode}; log: "
                                        f"{log_path(log_dir, n)})")
                    worker.stop()
                    pool[k] = _Worker(context, str(log_dir))
                    continue
                worker.node = None
                schedule.finished(node_id) if error is None else schedule.failed(node_id, error)
    finally:
        for worker in pool:
            worker.stop()
    return schedule.report


def describe_failures(graph: Graph, report: Report) -> str:
    """Lines naming each failed node with its message and log, and what was skipped because of it."""
    lines = []
    for node_id, message in report.failed.items():
        lines.append(f"- {graph.nodes[node_id].label}: {message}")
        skipped = [graph.nodes[s].label for s, cause in report.skipped.items() if cause == node_id]
        if skipped:
            lines.append(f"  skipped because of it: {', '.join(skipped[:6])}"
                         + (f" and {len(skipped) - 6} more" if len(skipped) > 6 else ""))
    return "\n".join(lines)


def execute(graph: Graph, *, executor: str = "local", workers: int | None = None, address: str | None = None,
            log_dir: str | Path = "_build/logs", progress: Callable[[str], None] | None = None) -> Report:
    """Run `graph` with the local process pool (`executor="local"`) or on Ray (`"ray"`, `address` of a running
    cluster, or None for a local Ray instance)."""
    if executor == "local":
        if address is not None:
            raise ValueError("--address is for --executor ray; the local executor runs on this machine")
        return execute_local(graph, workers=workers, log_dir=log_dir, progress=progress)
    if executor == "ray":
        from .ray_executor import execute_ray

        return execute_ray(graph, address=address, workers=workers, log_dir=log_dir, progress=progress)
    raise ValueError(f"unknown executor {executor!r}; known: local, ray")


def print_progress(line: str, stream: io.TextIOBase | None = None) -> None:
    """A status line on stderr (the terminal; never the book, which drops stderr)."""
    print(line, file=stream or sys.stderr, flush=True)


__all__ = ["Report", "Schedule", "available_cores", "check_workers", "describe_failures", "execute",
           "execute_local", "print_progress", "run_logged"]
