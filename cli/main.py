"""``mpm``: the command line. Heavy libraries are imported inside commands, so
``mpm --help`` stays fast; every expected failure is one line and a non-zero exit
(2 for bad input, 1 for a run that failed or ended partial)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from mpm.cli import render


class _OneLineErrors(typer.core.TyperGroup):
    """Usage errors (missing option, unknown command...) as one line on stderr, exit 2,
    like every other bad input, instead of click's usage block."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        from typer import _click
        from typer.exceptions import Abort

        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except _click.exceptions.NoArgsIsHelpError as exc:  # the help was the answer
            sys.exit(exc.exit_code)
        except _click.exceptions.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            where = f"{ctx.command_path}: " if ctx is not None else ""
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            message = " ".join(exc.format_message().split())
            err.print(f"[bold red]error:[/] {render.escape(where + message + hint)}")
            sys.exit(exc.exit_code)
        except Abort:
            err.print("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
    name="mpm",
    help="Governed ML project manager: kickoff, plan, sub-agents, governance, approvals, resume.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# piped output (logs, CI, tests) gets a wide page instead of rich's 80-column default
console = Console(
    highlight=False, width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace directory (env MPM_WORKSPACE; default ./mpm-workspace).",
    ),
]
CheckpointerOpt = Annotated[
    str | None,
    typer.Option(
        "--checkpointer",
        help="sqlite (default), sqlite:///path.db, memory, or postgresql://... (env MPM_CHECKPOINTER).",
    ),
]
# Run settings: kickoff records them in the thread; resume, approve and answer reuse the
# thread's settings unless given again (so a run never silently switches model or tools).
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="'stub' (deterministic, offline; default) or provider:model (env MPM_MODEL).",
        envvar="MPM_MODEL",
    ),
]
ToolsetOpt = Annotated[
    str | None,
    typer.Option("--toolset", help="real (default) or noop (benchmarks).", envvar="MPM_TOOLSET"),
]
TrackingOpt = Annotated[
    bool | None, typer.Option("--tracking/--no-tracking", help="Log to MLflow (default on).")
]
TracingOpt = Annotated[
    bool | None,
    typer.Option(
        "--tracing/--no-tracing",
        help="Trace nodes, model and tool calls in MLflow (env MPM_TRACING; default on with tracking).",
    ),
]
PoliciesOpt = Annotated[
    Path | None,
    typer.Option(
        "--policies",
        help="Governance policy directory (env MPM_POLICIES; default: the packaged reference library).",
    ),
]


IdentityOpt = Annotated[
    Path | None,
    typer.Option(
        "--identity",
        help="Identity directory: allowed_signers (+ members.yaml) binding member ids to keys "
        "(env MPM_IDENTITY; default: <policies>/identity).",
    ),
]


def fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    message = " ".join(message.splitlines())  # one line, whatever the cause's text holds
    err.print(f"[bold red]error:[/] {render.escape(message)}")
    return typer.Exit(code)


def _context(
    workspace: Path | None,
    model: str | None = None,
    toolset: str | None = None,
    tracking: bool | None = None,
    policies: Path | str | None = None,
    tracing: bool | None = None,
    identity: Path | str | None = None,
) -> Any:
    import os

    from mpm.graph.context import RunContext
    from mpm.graph.workspace import Workspace, WorkspaceError

    try:
        ws = Workspace.resolve(workspace)
    except WorkspaceError as exc:
        raise fail(str(exc)) from exc
    model = model or "stub"
    toolset = toolset or "real"
    tracking = True if tracking is None else tracking
    if toolset not in {"real", "noop"}:
        raise fail(f"--toolset {toolset!r}: expected 'real' or 'noop'")
    policy_dir = policies or os.environ.get("MPM_POLICIES")
    if policy_dir is not None and not Path(policy_dir).is_dir():
        raise fail(f"--policies {policy_dir}: not a directory")
    identity_dir = identity or os.environ.get("MPM_IDENTITY")
    if identity_dir is not None and not Path(identity_dir).is_dir():
        raise fail(f"--identity {identity_dir}: not a directory")
    from mpm.graph.llm import ModelSpecError, get_chat_model

    try:
        get_chat_model(model)
    except ModelSpecError as exc:
        raise fail(str(exc)) from exc
    return RunContext(
        workspace=str(ws.root),
        model=model,
        toolset=toolset,
        tracking=tracking,
        policies=str(policy_dir) if policy_dir else None,
        identity=str(Path(identity_dir).resolve()) if identity_dir else None,
        **({} if tracing is None else {"tracing": tracing}),  # None: env MPM_TRACING
    )


def _thread_context(
    workspace: Path | None,
    checkpointer: str | None,
    thread: str,
    model: str | None,
    toolset: str | None,
    tracking: bool | None,
    policies: Path | None,
    tracing: bool | None = None,
    identity: Path | None = None,
) -> Any:
    """Options given now win; otherwise the settings the thread was started with."""
    probe = _runner(_context(workspace), checkpointer)
    recorded = _guarded(lambda: probe.snapshot(thread)).values.get("settings") or {}
    return _context(
        workspace,
        model or recorded.get("model"),
        toolset or recorded.get("toolset"),
        tracking if tracking is not None else recorded.get("tracking"),
        policies or recorded.get("policies"),
        tracing if tracing is not None else recorded.get("tracing"),
        identity or recorded.get("identity"),
    )


def _check_policy_library(ctx: Any) -> None:
    """Refuse to start a run on a policy library that cannot be loaded (the run would only
    reach governance to find every gate closed). Loaded once: governance reuses it."""
    from mpm.graph.nodes.governance import governance_context

    try:
        governance_context(ctx)
    except Exception as exc:  # noqa: BLE001 - any unreadable library is a bad --policies
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise fail(f"--policies: {first}") from exc


def _runner(ctx: Any, checkpointer: str | None) -> Any:
    from mpm.graph.checkpointing import CheckpointerError, describe
    from mpm.graph.runner import Runner

    try:
        describe(checkpointer, ctx.ws)
        runner = Runner(ctx, checkpointer, on_event=render.ProgressPrinter(console))
        with runner.graph():
            pass
    except CheckpointerError as exc:
        raise fail(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - unreachable server, unwritable file, ...
        import re

        shown = re.sub(r"//[^@/]*@", "//***@", checkpointer or "sqlite")  # no credentials
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise fail(f"--checkpointer {shown}: cannot open the checkpoint store: {first}") from exc
    return runner


def _guarded(action: Any) -> Any:
    """Run a runner call; known failures become one line and an exit code."""
    from mpm.graph.runner import NotWaitingError, ThreadBusyError, UnknownThreadError
    from mpm.graph.workspace import WorkspaceError

    try:
        return action()
    except (UnknownThreadError, NotWaitingError, WorkspaceError, ValueError) as exc:
        raise fail(str(exc)) from exc
    except ThreadBusyError as exc:
        raise fail(str(exc), code=3) from exc
    except KeyboardInterrupt:
        err.print(
            "interrupted: the last completed step is checkpointed; continue with `mpm resume THREAD`"
        )
        raise typer.Exit(130) from None
    except Exception as exc:  # noqa: BLE001 - the user gets a line, the checkpoint keeps the run
        err.print(
            f"[bold red]run stopped:[/] {render.escape(type(exc).__name__)}: {render.escape(str(exc).splitlines()[0] if str(exc) else '')}\n"
            "The last completed step is checkpointed; fix the cause and continue with `mpm resume THREAD`."
        )
        raise typer.Exit(EXIT_RUN_FAILED) from exc


def _finish(runner: Any, outcome: Any, interactive: bool) -> None:
    """At a terminal, ask the questions the run waits for (kickoff, then governance) while
    there are any; approvals are left to the approvers. Then report and exit."""
    asked_once: set[str] = set()
    while interactive and outcome.waiting:
        questions = [
            i
            for i in outcome.interrupts
            if isinstance(i["value"], dict)
            and i["value"].get("type") in render.QUESTION_INTROS
            and i["id"] not in asked_once
        ]
        if not questions:
            break
        item = questions[0]
        asked_once.add(item["id"])
        answers = render.ask_questions(console, item["value"]["questions"], item["value"]["type"])
        thread_id, key = outcome.thread_id, item["id"]
        outcome = _guarded(lambda t=thread_id, k=key, a=answers: runner.resume(t, {k: a}))
    render.outcome(console, outcome)
    if outcome.status in {"failed", "partial", "failed_governance", "failed_criteria"}:
        raise typer.Exit(EXIT_RUN_FAILED)


@app.command()
def kickoff(
    requirements: Annotated[
        Path | None,
        typer.Option(
            "--requirements", "-r", help="Requirements YAML; without it, a chat in the terminal."
        ),
    ] = None,
    thread: Annotated[
        str | None,
        typer.Option("--thread", "-t", help="Thread id (default: generated, printed first)."),
    ] = None,
    message: Annotated[
        str | None,
        typer.Option("--message", "-m", help="Opening message for the conversational kickoff."),
    ] = None,
    workspace: WorkspaceOpt = None,
    checkpointer: CheckpointerOpt = None,
    model: ModelOpt = None,
    toolset: ToolsetOpt = None,
    tracking: TrackingOpt = None,
    policies: PoliciesOpt = None,
    tracing: TracingOpt = None,
    identity: IdentityOpt = None,
) -> None:
    """Start a project: from a requirements file, or by talking it through."""
    from mpm.graph.requirements_file import RequirementsError, load_requirements
    from mpm.graph.runner import new_thread_id
    from mpm.graph.workspace import WorkspaceError, validate_thread_id

    graph_input: dict[str, Any]
    if requirements is not None:
        try:
            graph_input = {"requirements": load_requirements(requirements).model_dump(mode="json")}
        except RequirementsError as exc:
            raise fail(str(exc)) from exc
    else:
        opening = message
        if opening is None:
            if not sys.stdin.isatty():
                opening = sys.stdin.readline().strip()
            else:
                console.print(
                    "[bold]Project manager:[/] Tell me about the ML initiative: what should it achieve, with which data?"
                )
                opening = console.input("[bold cyan]you>[/] ")
        graph_input = {"conversation": [{"role": "user", "content": opening or ""}]}
    thread_id = thread or new_thread_id()
    try:
        validate_thread_id(thread_id)
    except WorkspaceError as exc:
        raise fail(str(exc)) from exc
    ctx = _context(workspace, model, toolset, tracking, policies, tracing, identity)
    _check_policy_library(ctx)
    runner = _runner(ctx, checkpointer)
    console.print(f"thread: [bold]{thread_id}[/]  workspace: {ctx.ws.root}")
    outcome = _guarded(lambda: runner.start(thread_id, graph_input))
    _finish(runner, outcome, interactive=requirements is None and sys.stdin.isatty())


@app.command()
def resume(
    thread: Annotated[str, typer.Argument(help="Thread id to continue.")],
    workspace: WorkspaceOpt = None,
    checkpointer: CheckpointerOpt = None,
    model: ModelOpt = None,
    toolset: ToolsetOpt = None,
    tracking: TrackingOpt = None,
    policies: PoliciesOpt = None,
    tracing: TracingOpt = None,
) -> None:
    """Continue a thread where it stopped (after a crash, or once answers or approvals are in)."""
    ctx = _thread_context(
        workspace, checkpointer, thread, model, toolset, tracking, policies, tracing
    )
    runner = _runner(ctx, checkpointer)
    outcome = _guarded(lambda: runner.resume(thread))
    _finish(runner, outcome, interactive=sys.stdin.isatty())


@app.command()
def status(
    thread: Annotated[str, typer.Argument(help="Thread id.")],
    workspace: WorkspaceOpt = None,
    checkpointer: CheckpointerOpt = None,
) -> None:
    """Stages, results, deliverables, and anything the run is waiting for."""
    runner = _runner(_context(workspace), checkpointer)
    outcome = _guarded(lambda: runner.snapshot(thread))
    render.status(console, outcome)


@app.command()
def runs(workspace: WorkspaceOpt = None, checkpointer: CheckpointerOpt = None) -> None:
    """List the threads in the workspace's checkpoints."""
    runner = _runner(_context(workspace), checkpointer)
    render.threads(console, _guarded(runner.threads))


@app.command()
def history(
    thread: Annotated[str, typer.Argument(help="Thread id.")],
    workspace: WorkspaceOpt = None,
    checkpointer: CheckpointerOpt = None,
) -> None:
    """List a thread's checkpoints, newest first."""
    runner = _runner(_context(workspace), checkpointer)
    render.history(console, thread, _guarded(lambda: runner.history(thread)))


def _mount_subcommands() -> None:
    from mpm.cli import demo, humans, policies  # noqa: F401 - demo, humans register commands on app

    app.add_typer(
        policies.app, name="policies", help="Validate, list and explain governance policies."
    )


_mount_subcommands()


def main() -> None:  # pragma: no cover
    app()
