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
from mpm.cli.options import (
    GIVEN_RUN,
    GIVEN_STORE,
    JsonOpt,
    RunOptions,
    StoreOptions,
    run_options,
    store_options,
)


class _LazyGroup(typer.core.TyperGroup):
    """A sub-command group imported only when it is run (``mpm policies`` pulls in the
    whole policy engine; ``mpm --help`` and every other command need none of it)."""

    def __init__(self, name: str, help: str, load: Any) -> None:  # noqa: A002 - click's name
        super().__init__(name=name, help=help)
        self._load = load
        self._real: Any = None

    def real(self) -> Any:
        if self._real is None:
            self._real = typer.main.get_group(self._load())
            self._real.name = self.name
        return self._real

    def make_context(self, info_name: Any, args: Any, parent: Any = None, **extra: Any) -> Any:
        return self.real().make_context(info_name, args, parent=parent, **extra)


def _policies_app() -> Any:
    from mpm.cli import policies

    return policies.app


def _model_app() -> Any:
    from mpm.cli import model

    return model.app


LAZY_GROUPS = {
    "policies": ("Validate, list and explain governance policies.", _policies_app),
    "model": ("Fetch, verify and serve the pinned local model.", _model_app),
}


class _OneLineErrors(typer.core.TyperGroup):
    """Usage errors (missing option, unknown command...) as one line on stderr, exit 2,
    like every other bad input, instead of click's usage block. Also lists and resolves
    the :data:`LAZY_GROUPS`."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in LAZY_GROUPS if n not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in LAZY_GROUPS and cmd_name not in self.commands:
            help_text, load = LAZY_GROUPS[cmd_name]
            self.commands[cmd_name] = _LazyGroup(cmd_name, help_text, load)
        return super().get_command(ctx, cmd_name)

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        from typer import _click
        from typer.exceptions import Abort

        from mpm.graph import stopping

        try:
            with stopping.scope():
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
    # click's own help layout: typer's rich one imports rich's markdown, syntax and
    # traceback machinery (pygments, markdown-it) -- most of what `mpm --help` cost
    rich_markup_mode=None,
)
# piped output (logs, CI, tests) gets a wide page instead of rich's 80-column default
console = Console(
    highlight=False, width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1


def fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    message = " ".join(message.splitlines())  # one line, whatever the cause's text holds
    err.print(f"[bold red]error:[/] {render.escape(message)}")
    return typer.Exit(code)


def _context(opts: StoreOptions, *, check_model: bool = True) -> Any:
    """The run context for these options; settings not given take their defaults.

    ``check_model=False``: the model spec is not instantiated here (that imports the model
    libraries); ``approve`` checks only a ``--model`` given now, and only once the graph
    is to be resumed -- a recorded spec was checked when the thread recorded it."""
    import os

    from mpm.graph.context import RunContext
    from mpm.graph.workspace import Workspace, WorkspaceError

    given = opts if isinstance(opts, RunOptions) else RunOptions(**vars(opts))
    try:
        ws = Workspace.resolve(given.workspace)
    except WorkspaceError as exc:
        raise fail(str(exc)) from exc
    model = given.model or "stub"
    toolset = given.toolset or "real"
    tracking = True if given.tracking is None else given.tracking
    if toolset not in {"real", "noop"}:
        raise fail(f"--toolset {toolset!r}: expected 'real' or 'noop'")
    policy_dir = given.policies or os.environ.get("MPM_POLICIES")
    if policy_dir is not None and not Path(policy_dir).is_dir():
        raise fail(f"--policies {policy_dir}: not a directory")
    identity_dir = given.identity or os.environ.get("MPM_IDENTITY")
    if identity_dir is not None and not Path(identity_dir).is_dir():
        raise fail(f"--identity {identity_dir}: not a directory")
    if check_model:
        check_model_spec(model)
    return RunContext(
        workspace=str(ws.root),
        model=model,
        toolset=toolset,
        tracking=tracking,
        policies=str(policy_dir) if policy_dir else None,
        identity=str(Path(identity_dir).resolve()) if identity_dir else None,
        **({} if given.tracing is None else {"tracing": given.tracing}),  # None: env MPM_TRACING
    )


def check_model_spec(model: str) -> None:
    """``--model``: a spec the model factory can make, or one line and exit 2."""
    from mpm.graph.llm import ModelSpecError, get_chat_model

    try:
        get_chat_model(model)
    except ModelSpecError as exc:
        raise fail(str(exc)) from exc


def _store_context(store: StoreOptions) -> Any:
    """The context a read command needs: only where the workspace is (nothing is created,
    no model or policy library is checked)."""
    from mpm.graph.context import RunContext
    from mpm.graph.workspace import Workspace, WorkspaceError

    try:
        ws = Workspace.locate(store.workspace)
    except WorkspaceError as exc:
        raise fail(str(exc)) from exc
    return RunContext(workspace=str(ws.root), model="stub", toolset="noop", tracking=False)


def _reader(store: StoreOptions) -> Any:
    """The read path (``graph/runner.py`` :class:`Reader`): the SQLite checkpoint store is
    read without building the graph; anything else through a read-only runner. It never
    creates a workspace or a store."""
    from mpm.graph.checkpointing import CheckpointerError
    from mpm.graph.runner import Reader

    ctx = _store_context(store)
    try:
        reader = Reader(ctx, store.checkpointer)
    except CheckpointerError as exc:
        raise fail(str(exc)) from exc
    if reader.fast is None:  # not SQLite: open (and so check) the store the usual way
        reader.use_runner(_runner(ctx, store.checkpointer, read_only=True))
    return reader


def _thread_context(run: RunOptions, thread: str, *, check_model: bool = True) -> Any:
    """Options given now win; otherwise the settings the thread was started with."""
    probe = _reader(run)
    recorded = _guarded(lambda: probe.settings(thread))
    return _context(
        check_model=check_model,
        opts=RunOptions(
            workspace=run.workspace,
            checkpointer=run.checkpointer,
            model=run.model or recorded.get("model"),
            toolset=run.toolset or recorded.get("toolset"),
            tracking=run.tracking if run.tracking is not None else recorded.get("tracking"),
            policies=run.policies or recorded.get("policies"),
            tracing=run.tracing if run.tracing is not None else recorded.get("tracing"),
            identity=run.identity or recorded.get("identity"),
        ),
    )


def _check_policy_library(ctx: Any) -> None:
    """Refuse to start a run on a policy library that cannot be loaded (the run would only
    reach governance to find every gate closed). Loaded once: governance reuses it."""
    from mpm.graph.governance_context import governance_context

    try:
        governance_context(ctx)
    except Exception as exc:  # noqa: BLE001 - any unreadable library is a bad --policies
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise fail(f"--policies: {first}") from exc


def _runner(
    ctx: Any,
    checkpointer: str | None,
    *,
    read_only: bool = False,
    progress: Any = None,
    open_store: bool = True,
) -> Any:
    """A runner on the checkpoint store; progress lines go to ``progress`` (stdout unless
    ``--json`` keeps stdout for the JSON). The store is opened once here, so a bad
    ``--checkpointer`` is one line now rather than a failure mid-run; ``open_store=False``
    when the caller has just read the thread from it (``approve``: a refusal then needs
    no LangGraph import at all). The graph itself is built only when a run is driven."""
    from mpm.graph.checkpointing import CheckpointerError, open_checkpointer
    from mpm.graph.runner import Runner

    try:
        runner = Runner(
            ctx,
            checkpointer,
            on_event=render.ProgressPrinter(progress or console),
            read_only=read_only,
        )
        if open_store:
            with open_checkpointer(checkpointer, runner.workspace, read_only=read_only):
                pass
    except CheckpointerError as exc:
        raise fail(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - unreachable server, unwritable file, ...
        import re

        shown = re.sub(r"//[^@/]*@", "//***@", checkpointer or "sqlite")  # no credentials
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise fail(f"--checkpointer {shown}: cannot open the checkpoint store: {first}") from exc
    if not read_only:
        from mpm.graph import stopping

        stopping.install(runner.activity, _say)
    return runner


def _say(line: str) -> None:
    """One line on stderr from a signal handler: plain writes, no console lock to wait on."""
    sys.stderr.write(render.plain(line) + "\n")
    sys.stderr.flush()


def _guarded(action: Any, thread: str | None = None) -> Any:
    """Run a runner call; known failures become one line and an exit code (naming
    ``thread``, the thread the call drives, in the way to continue it)."""
    hint = f"; continue with `mpm resume {render.escape(thread)}`" if thread else ""
    from mpm.graph.runner import (
        DecisionRefused,
        NotWaitingError,
        ThreadBusyError,
        UnknownThreadError,
    )
    from mpm.graph.workspace import WorkspaceError

    try:
        return action()
    except DecisionRefused:
        raise  # the caller says how (and in which format) it was refused
    except (UnknownThreadError, NotWaitingError, WorkspaceError, ValueError) as exc:
        raise fail(str(exc)) from exc
    except ThreadBusyError as exc:
        raise fail(str(exc), code=3) from exc
    except KeyboardInterrupt:
        err.print(f"interrupted: the last completed step is checkpointed{hint}")
        raise typer.Exit(130) from None
    except Exception as exc:  # noqa: BLE001 - the user gets a line, the checkpoint keeps the run
        err.print(
            f"[bold red]run stopped:[/] {render.escape(type(exc).__name__)}: {render.escape(str(exc).splitlines()[0] if str(exc) else '')}\n"
            f"The last completed step is checkpointed; fix the cause{hint}."
        )
        raise typer.Exit(EXIT_RUN_FAILED) from exc


def print_json(data: Any) -> None:
    """One JSON object on one line of stdout (plain print: rich would wrap or style it)."""
    import json

    sys.stdout.write(json.dumps(data, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _out(as_json: bool) -> Console:
    """Where human-readable lines go: stderr while stdout is kept for ``--json``."""
    return err if as_json else console


def _finish(
    runner: Any,
    outcome: Any,
    interactive: bool,
    as_json: bool = False,
    extra: dict[str, Any] | None = None,
) -> None:
    """At a terminal, ask the questions the run waits for (kickoff, then governance) while
    there are any; approvals are left to the approvers. Then report and exit."""
    interactive = interactive and not as_json
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
        outcome = _guarded(
            lambda t=thread_id, k=key, a=answers: runner.resume(t, {k: a}), thread_id
        )
    if as_json:
        print_json(render.outcome_json(outcome) | (extra or {}))
    else:
        render.outcome(console, outcome)
    if outcome.status in {"failed", "partial", "failed_governance", "failed_criteria"}:
        raise typer.Exit(EXIT_RUN_FAILED)


@app.command()
@run_options
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
    as_json: JsonOpt = False,
    run: RunOptions = GIVEN_RUN,
) -> None:
    """Start a project: from a requirements file, or by talking it through."""
    from mpm.graph.requirements_file import (
        RequirementsError,
        check_requirements_data,
        load_requirements,
    )
    from mpm.graph.runner import new_thread_id
    from mpm.graph.workspace import Workspace, WorkspaceError, validate_thread_id

    graph_input: dict[str, Any]
    loaded = None
    if requirements is not None:
        try:
            loaded = load_requirements(requirements)
        except RequirementsError as exc:
            raise fail(str(exc)) from exc
        graph_input = {"requirements": loaded.model_dump(mode="json")}
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
        if loaded is not None:  # before anything exists: a bad source leaves nothing behind
            check_requirements_data(
                loaded, Workspace.locate(run.workspace).root, thread_id, requirements
            )
    except (WorkspaceError, RequirementsError) as exc:
        raise fail(str(exc)) from exc
    ctx = _context(run)
    _check_policy_library(ctx)
    runner = _runner(ctx, run.checkpointer, progress=_out(as_json))
    _out(as_json).print(f"thread: [bold]{thread_id}[/]  workspace: {render.escape(ctx.ws.root)}")
    outcome = _guarded(lambda: runner.start(thread_id, graph_input), thread_id)
    _finish(
        runner, outcome, interactive=requirements is None and sys.stdin.isatty(), as_json=as_json
    )


@app.command()
@run_options
def resume(
    thread: Annotated[str, typer.Argument(help="Thread id to continue.")],
    worker: Annotated[
        bool,
        typer.Option(
            "--worker",
            hidden=True,
            help="The background worker of `mpm approve`/`answer`: wait for the thread's lock "
            "while its inbox holds decisions, exit when nothing is left to deliver.",
        ),
    ] = False,
    as_json: JsonOpt = False,
    run: RunOptions = GIVEN_RUN,
) -> None:
    """Continue a thread where it stopped (after a crash, or once answers or approvals are in)."""
    runner = _runner(_thread_context(run, thread), run.checkpointer, progress=_out(as_json))
    if worker:
        _out(as_json).print(f"worker pid {os.getpid()}: applying what thread {thread} received")
    outcome = _guarded(lambda: runner.resume(thread, worker=worker), thread)
    if outcome is None:  # a worker that found nothing left: another process delivered it
        _out(as_json).print(f"nothing left to deliver for thread {thread}: already applied")
        return
    _finish(runner, outcome, interactive=sys.stdin.isatty() and not worker, as_json=as_json)


@app.command()
@store_options
def status(
    thread: Annotated[str, typer.Argument(help="Thread id.")],
    as_json: JsonOpt = False,
    store: StoreOptions = GIVEN_STORE,
) -> None:
    """Stages, results, deliverables, and anything the run is waiting for."""
    from mpm.graph import inbox

    runner = _reader(store)
    outcome = _guarded(lambda: runner.snapshot(thread))
    received = inbox.received(runner.workspace, thread)  # decided, not yet applied
    if as_json:
        print_json(render.outcome_json(outcome) | {"received": received})
        return
    render.status(console, outcome)
    if received:
        console.print(f"[yellow]{render.escape(inbox.received_line(thread, received))}[/]")


@app.command()
@store_options
def runs(as_json: JsonOpt = False, store: StoreOptions = GIVEN_STORE) -> None:
    """List the threads in the workspace's checkpoints."""
    runner = _reader(store)
    rows = _guarded(runner.threads)
    if as_json:
        print_json({"version": render.JSON_VERSION, "threads": rows})
    else:
        render.threads(console, rows)


@app.command()
@store_options
def history(
    thread: Annotated[str, typer.Argument(help="Thread id.")],
    as_json: JsonOpt = False,
    store: StoreOptions = GIVEN_STORE,
) -> None:
    """List a thread's checkpoints, newest first."""
    runner = _reader(store)
    rows = _guarded(lambda: runner.history(thread))
    if as_json:
        print_json({"version": render.JSON_VERSION, "thread_id": thread, "checkpoints": rows})
    else:
        render.history(console, thread, rows)


def _mount_subcommands() -> None:
    """``demo`` and ``humans`` register their commands on ``app``; ``policies`` is a lazy
    group (:data:`LAZY_GROUPS`)."""
    from mpm.cli import demo, humans  # noqa: F401


_mount_subcommands()


def main() -> None:  # pragma: no cover
    app()
