"""Stopping a run on Ctrl-C or SIGTERM without stranding its thread.

Why not let ``KeyboardInterrupt`` unwind: unwinding runs every ``except``/``finally`` on
the way out -- a node's error handling, LangGraph saving the writes of tasks that went on
finishing in worker threads without the checkpoint that should follow them, MLflow ending
runs at exit -- so what is saved after an interrupt is whatever those handlers happened to
do (the thread could be left with every task written and no next step: `mpm resume` then
had nothing to run, forever). A SIGKILL, by contrast, is known to be safe: every
checkpoint is one SQLite/PostgreSQL transaction, and the torture test shows that a run
killed anywhere resumes to the same result.

So a stop is made to be exactly a kill at a known moment, minus the surprise:

1. the first SIGINT/SIGTERM prints at once what is being stopped and sets :data:`STOP`
   (a watcher thread does it, woken by the signal, whatever the main thread is doing);
2. from then on nothing more is saved: the next checkpoint write ends the process instead
   (:func:`guard_saver`), a stage waiting on its agent ends it at once (``nodes/stage.py``
   polls :func:`requested`), and a watchdog ends it after :data:`GRACE_S` whatever it is
   doing (a tool stuck in C code cannot be interrupted any other way);
3. a second signal ends the process immediately.

The process ends with ``os._exit`` (128 + signal number): no handler runs after the
signal, so nothing is recorded that an uninterrupted run would not have recorded, and
``mpm resume`` re-runs the step that was cut off, as after a kill.

Only the CLI installs the handlers (:func:`install`); in a server or a test process
:data:`STOP` is never set and the guard costs one attribute check per write.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

GRACE_S = 1.0
"""How long a stop may take at most before the watchdog ends the process."""

STOP = threading.Event()
_code = 130
_installed = False
_wakeup: tuple[int, int, int] | None = None


def requested() -> bool:
    return STOP.is_set()


def exit_now(code: int | None = None) -> None:
    """End the process at once, saving nothing more (see the module docstring)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe must not keep us alive
            stream.flush()
    os._exit(_code if code is None else code)


def install(describe: Callable[[], str], say: Callable[[str], None]) -> None:
    """Handle SIGINT and SIGTERM as stops. ``describe()`` says what is running now (the
    thread, its stages and tools); ``say`` prints one line for the person.

    The stop is acted on by a watcher thread woken through :func:`signal.set_wakeup_fd`,
    not by the Python-level handler: that one only runs in the main thread once it is back
    in Python code, and the main thread may be blocked in C (a SQLite busy wait, a long
    library call) for far longer than the promised second."""
    global _installed, _wakeup
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.signal(signal.SIGINT, _ignore)
    signal.signal(signal.SIGTERM, _ignore)
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    _wakeup = (read_fd, write_fd, previous_fd)
    watcher = threading.Thread(
        target=_watch, args=(read_fd, describe, say), daemon=True, name="mpm-stop-watcher"
    )
    watcher.start()
    _installed = True


def _ignore(_signum: int, _frame: Any) -> None:
    """The Python-level handler: nothing to do here (the watcher thread acts), but it
    replaces the default actions (KeyboardInterrupt, termination)."""


def _watch(read_fd: int, describe: Callable[[], str], say: Callable[[str], None]) -> None:
    while True:
        try:
            data = os.read(read_fd, 64)
        except OSError:
            return  # uninstalled
        if not data:
            return
        for signum in data:
            _on_signal(signum, describe, say)


def _on_signal(signum: int, describe: Callable[[], str], say: Callable[[str], None]) -> None:
    global _code
    if signum not in (signal.SIGINT, signal.SIGTERM):
        return
    if STOP.is_set():
        exit_now()
    _code = 128 + signum
    # the watchdog first: the process ends in GRACE_S even if printing blocks; the line
    # before STOP: once STOP is set, any thread's next checkpoint write ends the process
    watchdog = threading.Timer(GRACE_S, exit_now)
    watchdog.daemon = True
    watchdog.start()
    with contextlib.suppress(Exception):  # the stop happens even if printing fails
        say(f"{signal.Signals(signum).name}: stopping {describe()} (again to exit immediately)")
    STOP.set()


@contextlib.contextmanager
def scope() -> Iterator[None]:
    """Undo :func:`install` afterwards: a CLI invocation inside another program (tests
    with typer's CliRunner) leaves that program's own signal handling as it was."""
    global _installed, _wakeup
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        if _installed and threading.current_thread() is threading.main_thread():
            for sig, handler in before.items():
                signal.signal(sig, handler)
            if _wakeup is not None:
                read_fd, write_fd, previous_fd = _wakeup
                signal.set_wakeup_fd(previous_fd)
                os.close(write_fd)
                os.close(read_fd)
        _installed, _wakeup = False, None
        STOP.clear()


_WRITES = ("put", "put_writes", "delete_thread")


def guard_saver(saver: Any) -> Any:
    """Make ``saver`` end the process instead of writing once a stop was requested.

    Wraps the instance's write methods (not the class: other savers in the process, e.g.
    a server's, are untouched)."""
    for name in _WRITES:
        original = getattr(saver, name, None)
        if original is None:
            continue

        def guarded(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            if STOP.is_set():
                exit_now()
            return _original(*args, **kwargs)

        setattr(saver, name, guarded)
    return saver
