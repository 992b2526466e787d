"""`cotlab reproduce`: execute every chapter notebook with a tier's parameters, then build the book.

Steps, all under ``build_dir`` (``_build/`` by default), once :func:`check_root` found the book's sources under the
root (nothing is created otherwise):

1. stage the book's sources in ``book_src/``: ``_config.yml`` and ``book/`` (its pages) copied fresh, and the table of
   contents ``book/_toc.yml`` written from :data:`CHAPTERS` (:func:`table_of_contents`);
2. execute each notebook of :data:`CHAPTERS`, in order, with papermill (kernel ``python3``, cwd = the repository root)
   from ``notebooks/<chapter>.ipynb`` to ``book_src/notebooks/<chapter>.ipynb``; each is written under a temporary
   name and renamed on success, so a half-executed notebook never takes a chapter's place (a failed one is kept in
   ``failed/`` for inspection). A chapter whose stamp (a hash of its notebook, its parameters, cotlab's source and
   the stamps of the chapters it depends on, :data:`DEPENDS`) matches the one of its executed copy is not rerun;
3. build the book with Jupyter Book 1.x, warnings as errors, offline; the HTML lands in ``html/`` (``index.html``).

A tier of ``tiers.NO_BOOK`` (``paper-tiny``: the paper tier's path on random stand-ins, whose numbers mean nothing)
executes ``tiers.PAPER_CHAPTERS`` by default and stops after step 2: no book is built from it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from cotlab.experiments.tiers import (APPENDIX, DEPENDS, NO_BOOK, PAPER_CHAPTERS, PRESETS, check_tier,
                                      notebook_parameters)
from cotlab.store import BASE_POLICY_CODE, RunStore, artifact_key, atomic_write_json

#: The book's chapters in reading order: stems of ``notebooks/*.ipynb``, registered with their parameters in
#: `cotlab.experiments.tiers` (``PRESETS``, ``DEPENDS``, ``APPENDIX``). A chapter added later keeps its number and goes
#: where it is read, e.g. the domain gap (11) before the findings (9), which carry its verdicts (renumbering would move
#: every chapter's stamp and link).
CHAPTERS: list[str] = list(PRESETS)

#: Under the build directory: each chapter's last execution time per tier, written as the pipeline goes.
TIMINGS_FILE = "timings.json"

KERNEL_NAME = "python3"
_INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class ReproduceError(RuntimeError):
    """A step of the reproduce pipeline failed (a notebook raised, or the book did not build)."""


class RootError(ReproduceError, ValueError):
    """`--root` is not a cotlab repository (the user's mistake: the CLI exits 2)."""


def _strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def kernel_python(kernel_name: str = KERNEL_NAME) -> str:
    """The Python executable that the ``kernel_name`` kernel will run, as jupyter_client resolves it."""
    from jupyter_client.kernelspec import KernelSpecManager

    argv = KernelSpecManager().get_kernel_spec(kernel_name).argv
    exe = argv[0]
    # jupyter_client runs a kernelspec whose argv[0] is a bare python name with the current interpreter.
    if exe in {"python", f"python{sys.version_info[0]}", "python%i.%i" % sys.version_info[:2]}:
        return sys.executable
    return exe


@contextlib.contextmanager
def environment_variables(values: dict[str, str]) -> Iterator[None]:
    """Environment variables set for the duration (for kernels and workers started meanwhile), then restored."""
    old = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


#: What makes a directory a cotlab repository that `reproduce` can build: (path, "dir" or "file").
ROOT_LAYOUT: tuple[tuple[str, str], ...] = (("notebooks", "dir"), ("book", "dir"), ("_config.yml", "file"))


def check_root(root: Path) -> Path:
    """Return ``root`` if it holds a cotlab repository's book sources (:data:`ROOT_LAYOUT`); else raise
    ReproduceError saying what is missing. Runs before anything is created, so a wrong ``--root`` leaves no trace."""
    if not root.is_dir():
        raise RootError(f"--root {root} is not a directory; give the cotlab repository's root")
    missing = [f"{name}/" if kind == "dir" else name for name, kind in ROOT_LAYOUT
               if not ((root / name).is_dir() if kind == "dir" else (root / name).is_file())]
    if missing:
        raise RootError(f"{root} is not a cotlab repository: it has no {', no '.join(missing)} "
                             f"(give the repository's root with --root)")
    return root


def table_of_contents() -> str:
    """The book's ``_toc.yml`` (Jupyter Book 1.x, sphinx-external-toc; paths relative to the staged root): the
    introduction, the method page and the metrics glossary, then :data:`CHAPTERS` in order, those in ``tiers.APPENDIX`` under "Appendix"."""
    def entries(chapters):
        return "".join(f"      - file: notebooks/{chapter}\n" for chapter in chapters)

    return ("# Written by cotlab.experiments.reproduce.table_of_contents from the chapter registry "
            "(cotlab/experiments/tiers.py).\n"
            "format: jb-book\nroot: book/intro\nparts:\n"
            "  - caption: Method\n    chapters:\n      - file: book/method\n      - file: book/glossary\n"
            "  - caption: Experiments\n    chapters:\n" + entries(c for c in CHAPTERS if c not in APPENDIX) +
            "  - caption: Appendix\n    chapters:\n" + entries(c for c in CHAPTERS if c in APPENDIX))


def stage_sources(root: Path, book_src: Path) -> None:
    """Copy ``_config.yml`` and ``book/`` from ``root`` into ``book_src`` (replacing earlier copies) and write the table
    of contents there."""
    book_src.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "_config.yml", book_src / "_config.yml")
    if (book_src / "book").exists():
        shutil.rmtree(book_src / "book")
    shutil.copytree(root / "book", book_src / "book", ignore=shutil.ignore_patterns(".ipynb_checkpoints", "_build"))
    (book_src / "book" / "_toc.yml").write_text(table_of_contents())
    (book_src / "notebooks").mkdir(exist_ok=True)
    # Executed notebooks of chapters that no longer exist would otherwise linger.
    for stale in (book_src / "notebooks").glob("*.ipynb"):
        if stale.stem not in CHAPTERS:
            stale.unlink()


def chapter_stamp(chapter: str, tier: str, root: Path, upstream: dict[str, str]) -> str:
    """Hash of what a chapter's executed notebook depends on: the notebook, the tier's parameters, cotlab's source and
    the stamps of the chapters in :data:`DEPENDS` (computed earlier in the run, or now for those not in it)."""
    deps = {d: upstream.get(d) or chapter_stamp(d, tier, root, upstream) for d in DEPENDS[chapter]}
    config = {"chapter": chapter, "tier": tier, "parameters": notebook_parameters(chapter, tier), "upstream": deps}
    return artifact_key("chapter", config, ["cotlab", root / "notebooks" / f"{chapter}.ipynb"])


def execute_chapter(chapter: str, tier: str, root: Path, out_dir: Path, failed_dir: Path) -> Path:
    """Execute ``notebooks/<chapter>.ipynb`` with the tier's parameters into ``out_dir``; return the output path."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = root / "notebooks" / f"{chapter}.ipynb"
    if not source.is_file():
        raise ReproduceError(f"chapter {chapter}: notebook {source} not found")
    target = out_dir / f"{chapter}.ipynb"
    partial = out_dir / f".{chapter}.partial.ipynb"
    parameters = notebook_parameters(chapter, tier)
    print(f"[cotlab] {chapter}: parameters {parameters}", flush=True)
    try:
        # Kernels draw inline figures even when the caller set MPLBACKEND (e.g. Agg for tests), and learn where this
        # run's timings file is (the benchmarks appendix reads it); out_dir is <build>/book_src/notebooks.
        with environment_variables({"MPLBACKEND": _INLINE_BACKEND,
                           "COTLAB_TIMINGS_FILE": str(out_dir.parents[1] / TIMINGS_FILE)}):
            papermill.execute_notebook(
                str(source),
                str(partial),
                parameters=parameters,
                kernel_name=KERNEL_NAME,
                cwd=str(root),
                progress_bar=True,
            )
    except PapermillExecutionError as err:
        failed = _keep_failed(partial, failed_dir, chapter)
        traceback = _strip_ansi("\n".join(err.traceback))
        raise ReproduceError(
            f"notebook notebooks/{chapter}.ipynb failed in cell {err.cell_index} (In [{err.exec_count}]): "
            f"{err.ename}: {err.evalue}\n{traceback}\nexecuted notebook kept at {failed}"
        ) from err
    except Exception as err:
        failed = _keep_failed(partial, failed_dir, chapter)
        raise ReproduceError(
            f"notebook notebooks/{chapter}.ipynb could not be executed: {type(err).__name__}: {err}"
            + (f"\npartial output kept at {failed}" if failed else "")
        ) from err
    os.replace(partial, target)
    (failed_dir / f"{chapter}.ipynb").unlink(missing_ok=True)  # an earlier failure of this chapter is now stale
    with contextlib.suppress(OSError):
        failed_dir.rmdir()  # only if empty
    return target


def _keep_failed(partial: Path, failed_dir: Path, chapter: str) -> Path | None:
    if not partial.exists():
        return None
    failed_dir.mkdir(parents=True, exist_ok=True)
    failed = failed_dir / f"{chapter}.ipynb"
    os.replace(partial, failed)
    return failed


def build_book(book_src: Path, build_dir: Path) -> Path:
    """Build the staged book with Jupyter Book 1.x (warnings as errors); return the path of ``html/index.html``.

    Jupyter Book writes into ``<path-output>/_build/``: for a build directory named ``_build`` that is the build
    directory itself, so the HTML lands in ``<build_dir>/html`` directly; otherwise it is built in
    ``<build_dir>/jupyter_book/`` and copied to ``<build_dir>/html``.
    """
    in_place = build_dir.name == "_build"
    path_output = build_dir.parent if in_place else build_dir / "jupyter_book"
    command = [
        sys.executable,
        "-c",
        "import sys; from jupyter_book.cli.main import main; sys.exit(main(prog_name='jupyter-book'))",
        "build",
        str(book_src),
        "--toc",
        str(book_src / "book" / "_toc.yml"),
        "--config",
        str(book_src / "_config.yml"),
        "--path-output",
        str(path_output),
        "--all",  # every page: a changed table of contents must reach the navigation of unchanged pages too
        "-W",
        "-n",
        "--keep-going",
    ]
    print("[cotlab] jupyter-book " + " ".join(command[3:]), flush=True)
    result = subprocess.run(command, check=False)
    built = path_output / "_build" / "html"
    if result.returncode != 0 or not (built / "index.html").is_file():
        raise ReproduceError(f"the book did not build (jupyter-book exited with {result.returncode}); see above")
    html = build_dir / "html"
    if not in_place:
        staging = build_dir / ".html.partial"
        if staging.exists():
            shutil.rmtree(staging)
        shutil.copytree(built, staging)
        if html.exists():
            shutil.rmtree(html)
        os.replace(staging, html)
    return html / "index.html"


def record_timing(path: Path, tier: str, chapter: str, seconds: float) -> None:
    """Add a chapter's execution time to the timings file ({tier: {chapter: {"seconds", "finished"}}}), atomically;
    a chapter not rerun keeps the time of the run that executed it."""
    import datetime as dt
    import json

    data = json.loads(path.read_text()) if path.is_file() else {}
    data.setdefault(tier, {})[chapter] = {"seconds": round(seconds, 1),
                                          "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    atomic_write_json(path, data)


def book_timings(path, tier: str):
    """The pipeline's own log of a tier's book (:data:`TIMINGS_FILE`; `path` "" or None: the one `cotlab reproduce`
    names in $COTLAB_TIMINGS_FILE for its kernels, else _build's) as a table: seconds and finishing time per chapter,
    plus the base policy's one-time training (its `pretrain.json` in the run store; it runs inside chapter 1 when the
    store lacks it). None when the file or the tier is absent."""
    import json

    import pandas as pd

    from cotlab.policy.pretrain import PRETRAIN_TIERS, base_key

    path = Path(path or os.environ.get("COTLAB_TIMINGS_FILE", f"_build/{TIMINGS_FILE}"))
    data = json.loads(path.read_text()).get(tier) if path.is_file() else None
    if not data:
        return None
    table = pd.DataFrame.from_dict(data, orient="index").rename_axis("chapter")
    base_tier = "smoke" if tier == "smoke" else "default"
    found = RunStore().find("base_policy", base_key(PRETRAIN_TIERS[base_tier]), BASE_POLICY_CODE)
    if found is not None and (found / "pretrain.json").is_file():
        seconds = json.loads((found / "pretrain.json").read_text())["train_seconds"]
        table.loc[f"(base policy training, {base_tier} tier; in 01 when not cached)"] = [round(seconds, 1), ""]
    return table


def execute_graph(tier: str, chapters: Sequence[str], root: Path, build: Path, *, workers: int | None,
                  executor: str, address: str | None) -> None:
    """Plan every run-store artifact of `chapters` and build them with the executor (workers, or Ray), so that the
    notebooks then only read. Raises ReproduceError naming each failed node and its log (what finished is kept)."""
    from cotlab.experiments.executor import describe_failures, execute, print_progress
    from cotlab.experiments.graph import plan

    print(f"[cotlab] stage: planning the runs of {len(chapters)} chapters", file=sys.stderr, flush=True)
    # Workers must use the store the notebooks' kernels use (cwd = root): runs/ under the root unless $COTLAB_RUNS.
    # The planner too: paper-tiny's stand-ins live in the store, and their paths are part of its runs' configs.
    store = os.environ.get("COTLAB_RUNS") or str(root / "runs")
    with environment_variables({"COTLAB_RUNS": store}):
        graph = plan(tier, chapters)
    if not graph:
        return
    counts = ", ".join(f"{n} {kind}" for kind, n in graph.counts().items())
    print(f"[cotlab] stage: executing the graph ({len(graph)} nodes: {counts}) with the {executor} executor",
          file=sys.stderr, flush=True)
    with environment_variables({"COTLAB_RUNS": store}):
        report = execute(graph, executor=executor, workers=workers, address=address, log_dir=build / "logs",
                         progress=print_progress)
    if not report.ok:
        raise ReproduceError(f"{len(report.failed)} runs failed ({len(report.done)} done and kept, "
                             f"{len(report.skipped)} skipped):\n{describe_failures(graph, report)}")


def reproduce(
    tier: str,
    root: str | os.PathLike[str] = ".",
    build_dir: str | os.PathLike[str] = "_build",
    chapters: Sequence[str] | None = None,
    *,
    workers: int | None = None,
    executor: str = "local",
    address: str | None = None,
) -> Path:
    """Execute the chapters (all of :data:`CHAPTERS` by default) with ``tier``'s parameters and build the book (a tier
    of ``tiers.NO_BOOK``: ``tiers.PAPER_CHAPTERS`` by default, no book; returns the executed notebooks' directory).

    The run-store artifacts of the chapters to execute are built first, in parallel (`execute_graph`: `workers`
    processes, default the cores; or `executor="ray"` on a Ray cluster at `address`); the notebooks then read them.
    ``build_dir`` is taken relative to ``root`` unless absolute. Returns the path of the built ``index.html``.
    """
    from cotlab.experiments.executor import check_workers

    check_tier(tier)
    root = check_root(Path(root).resolve())
    if executor not in ("local", "ray"):
        raise ValueError(f"unknown executor {executor!r}; known: local, ray")
    if executor == "local":
        workers = check_workers(workers)
        if address is not None:
            raise ValueError("--address is for --executor ray; the local executor runs on this machine")
    elif address is not None:
        from cotlab.experiments.ray_executor import check_address

        check_address(address)  # before any work
    build = Path(build_dir)
    build = (build if build.is_absolute() else root / build).resolve()
    chapters = list((PAPER_CHAPTERS if tier in NO_BOOK else CHAPTERS) if chapters is None else chapters)
    unknown = [c for c in chapters if c not in CHAPTERS]
    if unknown:
        raise ValueError(f"unknown chapters {unknown}; chapters: {', '.join(CHAPTERS)}")

    book_src = build / "book_src"
    print(f"[cotlab] tier {tier}; kernel {KERNEL_NAME} runs {kernel_python()}", flush=True)
    stage_sources(root, book_src)

    stamps: dict[str, str] = {}
    todo = []
    for chapter in chapters:
        stamps[chapter] = chapter_stamp(chapter, tier, root, stamps)
        stamp_file = book_src / "notebooks" / f".{chapter}.stamp"
        executed = book_src / "notebooks" / f"{chapter}.ipynb"
        if executed.is_file() and stamp_file.is_file() and stamp_file.read_text() == stamps[chapter]:
            print(f"[cotlab] {chapter}: unchanged since its last run (stamp {stamps[chapter]}), not rerun", flush=True)
            continue
        todo.append(chapter)

    timings: list[tuple[str, float]] = []
    if todo:
        start = time.perf_counter()
        execute_graph(tier, todo, root, build, workers=workers, executor=executor, address=address)
        timings.append(("(run graph)", time.perf_counter() - start))
        record_timing(build / TIMINGS_FILE, tier, "(run graph)", timings[-1][1])
    for k, chapter in enumerate(todo, 1):
        print(f"[cotlab] stage: chapter {k} of {len(todo)}: {chapter}", file=sys.stderr, flush=True)
        stamp_file = book_src / "notebooks" / f".{chapter}.stamp"
        stamp_file.unlink(missing_ok=True)
        start = time.perf_counter()
        execute_chapter(chapter, tier, root, book_src / "notebooks", build / "failed")
        stamp_file.write_text(stamps[chapter])
        timings.append((chapter, time.perf_counter() - start))
        record_timing(build / TIMINGS_FILE, tier, chapter, timings[-1][1])
        print(f"[cotlab] {chapter}: executed in {timings[-1][1]:.1f} s", flush=True)

    if tier in NO_BOOK:
        print("[cotlab] wall time per step:")
        for name, seconds in timings:
            print(f"  {name:<24} {seconds:8.1f} s")
        print(f"[cotlab] tier {tier}: no book is built (its numbers come from random stand-ins and mean nothing); "
              f"the executed chapters are in {book_src / 'notebooks'}", flush=True)
        return book_src / "notebooks"
    missing = [c for c in CHAPTERS if not (book_src / "notebooks" / f"{c}.ipynb").is_file()]
    if missing:
        raise ReproduceError(f"chapters not executed yet: {', '.join(missing)} (run them first, or all chapters)")
    print("[cotlab] stage: building the book", file=sys.stderr, flush=True)
    start = time.perf_counter()
    index = build_book(book_src, build)
    timings.append(("(book build)", time.perf_counter() - start))
    record_timing(build / TIMINGS_FILE, tier, "(book build)", timings[-1][1])

    print("[cotlab] wall time per step:")
    for name, seconds in timings:
        print(f"  {name:<24} {seconds:8.1f} s")
    print(f"[cotlab] the book is at {index}", flush=True)
    return index
