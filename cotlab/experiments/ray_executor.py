"""Execute a study's graph on Ray (`pip install cotlab[cluster]`): each node is a Ray task with one CPU.

The same bookkeeping as the local executor (`executor.Schedule`): a node is submitted when its dependencies are done,
a failed node stops what depends on it (each skipped node named) and everything else still runs. A task whose worker
died (killed, out of memory, its machine gone) is retried once by Ray itself (`max_retries`), then reported as failed.

Where the results go: every task builds its artifact in the driver's run store (`RunStore().root`: `$COTLAB_RUNS`,
else ./runs, resolved on the driver), which the task is told explicitly; the store publishes a run only once its
build finished (a temporary directory renamed into place), so a task killed midway leaves nothing half-published.
On a real cluster that path must therefore be a shared filesystem (NFS, Lustre, ...) mounted at the same path on
every machine, and so must the log directory; a local Ray instance (no `address`) needs nothing.
"""
from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Callable
from pathlib import Path

from cotlab.store import RunStore

from .executor import RETRIES, Report, Schedule, check_workers, log_path, run_logged
from .graph import Graph, Node

CONNECT_TIMEOUT = 5.0  # seconds to reach a cluster's head before refusing its address


def _ray():
    """The `ray` module, imported on first use: Ray is an optional extra."""
    try:
        import ray
    except ImportError as e:
        raise ImportError("--executor ray needs Ray, an optional extra: pip install cotlab[cluster] "
                          "(or pip install -e .[cluster] in a checkout)") from e
    return ray


def check_address(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Refuse (ValueError naming it) a Ray address whose head does not answer within `timeout` seconds: `ray.init`
    itself would retry for minutes. "auto" (the cluster `ray start` last started here, or $RAY_ADDRESS) is left to
    Ray."""
    if address == "auto":
        return
    target = address.removeprefix("ray://")
    try:  # as ray.init will: "localhost"/127.0.0.1 become this machine's address, which the head listens on
        from ray._private.services import canonicalize_bootstrap_address

        target = canonicalize_bootstrap_address(target) or target
    except Exception:  # noqa: BLE001 (a private helper: fall back to the address as given)
        pass
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"Ray address {address!r} is not host:port (e.g. 10.0.0.1:6379, the head's "
                         "`ray start --head --port=6379`)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise ValueError(f"no Ray cluster answers at {address} ({e}); start its head there with "
                         f"`ray start --head --port={port}` (and `ray start --address=<head>:{port}` on each "
                         "worker machine), or leave out --address for a Ray instance on this machine") from None


def _run_on_worker(n: Node, log_file: str, store: str) -> float:
    """A node in a Ray worker: the driver's run store and one thread per numerical library, then `run_logged`."""
    os.environ["COTLAB_RUNS"] = store
    return run_logged(n, log_file, threads=1)


def _connect(ray, address: str | None, workers: int | None) -> bool:
    """Connect to the cluster at `address`, or start a local instance with `workers` CPUs; False when this process
    was already connected (then the caller leaves Ray running)."""
    if ray.is_initialized():
        if address is not None or workers is not None:
            warnings.warn("Ray is already initialised in this process: its cluster is used as it is "
                          f"(address={address!r}, workers={workers!r} ignored)", stacklevel=3)
        return False
    options = dict(include_dashboard=False, log_to_driver=False)  # each node's output is in its own log file
    if address is None:
        ray.init(address="local", num_cpus=check_workers(workers), **options)  # a new one, never the last `ray start`
        return True
    if workers is not None:
        warnings.warn(f"workers={workers} is for a local Ray instance: the cluster at {address} runs as many nodes "
                      "at once as it has CPUs", stacklevel=3)
    try:
        ray.init(address=address, **options)
    except ConnectionError as e:  # the head answers but refuses this driver (Ray retried for a while first)
        raise ValueError(f"could not connect to the Ray cluster at {address}: {e}. A cluster with token "
                         "authentication needs RAY_AUTH_MODE=token here, with its token (`ray get-auth-token` on the "
                         "head) in ~/.ray/auth_token or $RAY_AUTH_TOKEN") from None
    return True


def execute_ray(graph: Graph, *, address: str | None = None, workers: int | None = None,
                log_dir: str | Path = "_build/logs", progress: Callable[[str], None] | None = None,
                interval: float = 10.0) -> Report:
    """Run `graph` as Ray tasks (one CPU each) on the cluster at `address` (host:port of its head), or on a local Ray
    instance with `workers` CPUs (default: this machine's cores) when `address` is None, or on the Ray this process
    is already connected to. Returns the `Report`; `progress` gets a status line whenever a node starts or ends and
    every `interval` seconds. Ray is shut down at the end only if this call started it."""
    ray = _ray()
    if address is not None:
        check_address(address)  # before any work: ray.init would retry an unreachable head for minutes
    if not graph:
        return Report()
    store = str(RunStore().root)
    log_dir = Path(log_dir).absolute()
    started = _connect(ray, address, workers)
    task = ray.remote(num_cpus=1, max_retries=RETRIES)(_run_on_worker)
    schedule = Schedule(graph, max(1, int(ray.cluster_resources().get("CPU", 1))))
    say = progress or (lambda line: None)
    refs: dict = {}
    try:
        while schedule.active:
            for n in schedule.ready():
                refs[task.remote(n, str(log_path(log_dir, n)), store)] = n.id
                say(schedule.status())
            if not refs:
                break
            finished, _ = ray.wait(list(refs), num_returns=1, timeout=interval)
            if finished:  # and whatever else has finished by now
                finished, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0)
            for ref in finished:
                node_id = refs.pop(ref)
                try:
                    ray.get(ref)
                    schedule.finished(node_id)
                except ray.exceptions.RayTaskError as e:  # the node's own failure: run_logged's message
                    schedule.failed(node_id, str(e.cause) if e.cause is not None else str(e).splitlines()[-1])
                except ray.exceptions.RayError as e:  # its worker died (Ray already ran it 1 + RETRIES times)
                    why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    schedule.failed(node_id, f"its Ray worker died ({type(e).__name__}: {why}) (after "
                                             f"{1 + RETRIES} attempts; log: {log_path(log_dir, graph.nodes[node_id])})")
            say(schedule.status())
    finally:
        for ref in refs:  # interrupted: stop what still runs (the store publishes nothing unfinished)
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 (finished meanwhile, or Ray is going down)
                pass
        if started:
            ray.shutdown()
    return schedule.report


__all__ = ["check_address", "execute_ray"]
