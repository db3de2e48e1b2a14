"""Bad input corpus (issue 8): every malformed input ends with exit status 2, a one-paragraph
message naming the problem and where it is, no traceback, and nothing left in the output
directory. Every case runs in-process through the click application (the code the script runs);
one case per category, and every case that needs another user, also runs as a real subprocess
of the installed ``diqkd`` script.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from corpus import CASES, Case, Invocation, build_case
from hardening_support import cli_invoke, cli_subprocess, count, leftovers

MIN_CASES = 40


def _check(c: Case, inv: Invocation, code: int, out: str, err: str) -> None:
    text = out + err
    assert "Traceback" not in text, f"{c.name}: traceback\n{text}"
    assert code == 2, f"{c.name}: exit {code}, expected 2\nstdout: {out}\nstderr: {err}"
    low = err.lower()
    missing = [w for w in inv.expect if w.lower() not in low]
    assert not missing, f"{c.name}: the message does not name {missing}:\n{err}"
    assert "internal error" not in low, f"{c.name}: reported as an internal error:\n{err}"
    if inv.out_dir is not None:
        left = leftovers(inv.out_dir, inv.allowed)
        assert not left, f"{c.name}: files left in the output directory: {left}"
    for path in inv.must_not_exist:
        assert not path.exists(), f"{c.name}: {path} was written"


def test_corpus_has_enough_distinct_cases() -> None:
    names = [c.name for c in CASES]
    assert len(set(names)) == len(names)
    assert len(CASES) >= MIN_CASES
    count("bad-input", cases=len(CASES), categories=len({c.category for c in CASES}))


def _param(c: Case):
    marks = [pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else []
    return pytest.param(c, id=c.name, marks=marks)


@pytest.mark.parametrize("c", [_param(c) for c in CASES if not c.subprocess_only])
def test_bad_input_exits_2_cleanly(c: Case, tmp_path: Path) -> None:
    _, inv = build_case(c, tmp_path / "w")
    try:
        code, out, err = cli_invoke(inv.argv)
        _check(c, inv, code, out, err)
    except AssertionError:
        count("bad-input", **({"known_bug_xfail": 1} if c.xfail else {"in_process_failed": 1}))
        raise
    finally:
        for f in inv.cleanup:
            f()
    count("bad-input", in_process_ok=1)


def _sample() -> list[Case]:
    """The first case of each category (and every subprocess-only case)."""
    seen: set[str] = set()
    out = []
    for c in CASES:
        if c.xfail:
            continue
        if c.subprocess_only or c.category not in seen:
            out.append(c)
            seen.add(c.category)
    return out


def test_bad_input_sample_through_the_installed_script(tmp_path: Path) -> None:
    """The same checks through ``subprocess`` of the real console script (2 in parallel)."""
    sample = _sample()

    def one(c: Case) -> tuple[Case, Invocation, int, str, str]:
        _, inv = build_case(c, tmp_path / c.name)
        try:
            proc = cli_subprocess(inv.argv, timeout=240)
            res = (c, inv, proc.returncode, proc.stdout, proc.stderr)
            try:
                _check(*res)
            except AssertionError as exc:
                return c, inv, -1, "", str(exc)
            return res
        finally:
            for f in inv.cleanup:
                f()

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(one, sample))
    failures = [err for _, _, code, _, err in results if code == -1]
    count("bad-input", subprocess_cases=len(results), subprocess_failed=len(failures))
    assert not failures, "\n\n".join(failures)


def test_internal_error_is_one_short_line_with_exit_1(tmp_path, monkeypatch):
    """A bug (an unexpected exception) is exit 1 with a short message, not a traceback; the
    exception text is not printed (it is not vetted for content like diqkd's own messages)."""
    import diqkd.pipeline as pipeline

    def boom(*a, **k):
        raise RuntimeError("x" * 5000)

    monkeypatch.setattr(pipeline, "run", boom)
    p, inv = build_case(next(c for c in CASES if c.name == "cli-unknown-option"), tmp_path)
    code, out, err = cli_invoke(["run", "--alice", str(p["alice"]), "--bob", str(p["bob"]),
                                 "--protocol", str(p["protocol"]), "--out", str(p["out"]), "-q"])
    assert code == 1
    assert "Traceback" not in out + err
    assert err.startswith("internal error: RuntimeError") and len(err) < 600
    assert leftovers(p["out"]) == []


def test_rename_error_names_source_and_target(tmp_path, monkeypatch):
    import errno
    import os

    import diqkd.fileio as fileio

    def replace(src, dst, *a, **k):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), str(src), None, str(dst))

    p, _ = build_case(next(c for c in CASES if c.name == "cli-unknown-option"), tmp_path)
    p["out"].mkdir()
    monkeypatch.setattr(fileio.os, "replace", replace)
    code, _, err = cli_invoke(["records", "convert", str(p["alice"]), str(p["out"] / "a.csv")])
    assert code == 2, err
    assert "a.csv" in err and " -> " in err, err
    assert leftovers(p["out"]) == []  # the temp file was removed


def test_internal_error_never_prints_the_exception_text(tmp_path, monkeypatch):
    """Third-party exception text can hold array contents (key bits): it is not printed, only
    the exception type and where it was raised."""
    import diqkd.pipeline as pipeline

    secret = "0110100111010001" * 4

    def boom(*a, **k):
        raise ValueError(f"array([{secret}])")

    monkeypatch.delenv("DIQKD_DEBUG", raising=False)
    monkeypatch.setattr(pipeline, "run", boom)
    p, inv = build_case(next(c for c in CASES if c.name == "cli-unknown-option"), tmp_path)
    code, out, err = cli_invoke(["run", "--alice", str(p["alice"]), "--bob", str(p["bob"]),
                                 "--protocol", str(p["protocol"]), "--out", str(p["out"]), "-q"])
    assert code == 1
    assert secret not in out + err
    assert err.startswith("internal error: ValueError raised at ") and ".py:" in err
