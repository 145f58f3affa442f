"""Gaps the mutation run found in dlport.common.atomic and dlport.common.solve (tox -e mutation),
tested in-process where mutmut can attribute them."""

from __future__ import annotations

import os
import re
import stat
import sys

import numpy as np
import pytest

from dlport.common.atomic import write_bytes_atomic, write_text_atomic
from dlport.common.errors import DlportError
from dlport.common.solve import INTERCEPT, rank_cutoff, scaled_design


# -- atomic ----------------------------------------------------------------------------------------
def test_a_new_file_gets_the_umask_mode_and_its_folders(tmp_path):
    path = tmp_path / "new" / "deeper" / "result.json"
    old = os.umask(0o002)
    try:
        write_text_atomic(path, "héllo")
    finally:
        os.umask(old)
    assert path.read_bytes() == "héllo".encode()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o664
    assert os.umask(old) == old  # the umask was put back as it was
    assert [p.name for p in path.parent.iterdir()] == ["result.json"]  # no temporary left


def test_the_temporary_is_a_hidden_sibling_so_the_rename_is_atomic(tmp_path, monkeypatch):
    path, renamed, replace = tmp_path / "result.json", [], os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: renamed.append(src) or replace(src, dst))
    write_bytes_atomic(path, b"new")
    (tmp,) = renamed
    assert os.path.dirname(tmp) == str(tmp_path) and path.read_bytes() == b"new"
    name = os.path.basename(tmp)
    assert name.startswith(".result.json.") and name.endswith(".tmp")


def test_an_owner_that_cannot_be_kept_does_not_stop_the_write(tmp_path, monkeypatch):
    path = tmp_path / "result.json"
    path.write_bytes(b"old")

    def not_permitted(*args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chown", not_permitted)
    write_bytes_atomic(path, b"new")
    assert path.read_bytes() == b"new"


def test_a_failed_write_names_the_users_path_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "result.json"
    path.write_bytes(b"old")

    def no_space(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError) as caught:
        write_bytes_atomic(path, b"new")
    assert (caught.value.errno, caught.value.filename) == (28, str(path))
    assert caught.value.strerror == "No space left on device"
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_a_block_device_is_refused_by_name(tmp_path, monkeypatch):
    disk, real_stat = str(tmp_path / "sda"), os.stat

    def as_block_device(path, *args, **kwargs):
        if os.fspath(path) == disk:
            return os.stat_result((stat.S_IFBLK | 0o660, 0, 0, 1, 0, 0, 0, 0, 0, 0))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", as_block_device)
    with pytest.raises(DlportError, match=f"{disk} is a block device; give a file path"):
        write_bytes_atomic(disk, b"never written")
    assert not os.path.lexists(disk)


def test_a_character_device_is_written_through(tmp_path):
    # A private copy of /dev/null: a regression (or a mutant of atomic.py) that replaces the
    # device must not replace the machine's own, which every process writes to.
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    write_bytes_atomic(str(null), b"gone")
    assert stat.S_ISCHR(os.stat(null).st_mode) and os.stat(null).st_rdev == os.makedev(1, 3)


def test_our_own_stdout_is_written_in_place(tmp_path, capfd):
    # The file that is this process's stdout is written through its descriptor, after what
    # was printed before (a replaced file would lose it).
    path = f"/proc/self/fd/{1}"
    print("before", flush=True)
    write_bytes_atomic(path, b"result\n")
    os.write(1, b"after\n")  # the descriptor is still open: the write did not close it
    assert capfd.readouterr().out == "before\nresult\nafter\n"


def test_our_own_stderr_is_written_in_place_too(capfd):
    print("before", file=sys.stderr, flush=True)
    write_bytes_atomic("/proc/self/fd/2", b"result\n")
    assert capfd.readouterr().err == "before\nresult\n"


def test_a_closed_stdout_is_not_an_error(tmp_path):
    """`dlport ... >&-`: fstat(1) fails; the file is still written, as any other path."""
    (tmp_path / "result.json").write_bytes(b"old")  # an existing file is compared with fd 1
    saved = os.dup(1)
    os.close(1)
    try:
        write_bytes_atomic(tmp_path / "result.json", b"{}")
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    assert (tmp_path / "result.json").read_bytes() == b"{}"


# -- solve -----------------------------------------------------------------------------------------
def test_rank_cutoff_is_eps_times_the_larger_dimension():
    assert rank_cutoff(np.float64, 10, 3) == np.finfo(np.float64).eps * 10
    assert rank_cutoff(np.float32, 3, 10) == float(np.finfo(np.float32).eps) * 10


def test_the_design_is_scaled_to_unit_columns_and_the_solution_back():
    design = np.array([[3.0, 0.0, 1.0], [4.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    scaled = scaled_design(design, ["a", "zero"], np.float32)
    assert scaled.kept.tolist() == [True, False, True]
    assert scaled.scales.tolist() == [5.0, np.sqrt(3.0)]
    assert scaled.matrix.dtype == np.float32 and scaled.matrix.shape == (3, 2)
    np.testing.assert_allclose(np.linalg.norm(scaled.matrix, axis=0), 1.0, rtol=1e-6)
    coef = scaled.coefficients(np.array([[10.0], [3.0]]))
    assert coef.shape == (3,) and coef[:2].tolist() == [2.0, 0.0]
    assert coef[2] == pytest.approx(np.sqrt(3.0), rel=1e-15)


def test_fewer_samples_than_coefficients_is_refused():
    with pytest.raises(DlportError, match=r"at least as many samples as coefficients \(2 < 3\)"):
        scaled_design(np.array([[1.0, 2.0, 1.0], [2.0, 1.0, 1.0]]), ["a", "b"], np.float64)


def test_dependent_columns_are_named_with_a_float32_hint():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(20), rng.standard_normal(20)
    design = np.column_stack([a, b, 2 * a - b, np.ones(20)])
    for dtype, hint in ((np.float64, False), (np.float32, True)):
        with pytest.raises(DlportError) as caught:
            scaled_design(design, ["a", "b", "c"], dtype)
        message = str(caught.value)
        assert "['a', 'b', 'c'] are (nearly) linearly dependent" in message
        assert f"rank-deficient in {np.dtype(dtype).name}" in message
        assert ("use --dtype float64" in message) == hint
    # Dependent on the intercept: named as such.
    with pytest.raises(DlportError, match=re.escape(f"['a', '{INTERCEPT}'] are")):
        scaled_design(np.column_stack([np.full(20, 3.0), b, np.ones(20)]), ["a", "b"], np.float64)


def test_a_nearly_dependent_design_passes_in_float64_but_not_float32():
    rng = np.random.default_rng(1)
    a = rng.standard_normal(50)
    design = np.column_stack([a, a + 1e-5 * rng.standard_normal(50), np.ones(50)])
    assert scaled_design(design, ["a", "a2"], np.float64).kept.all()
    with pytest.raises(DlportError, match="use --dtype float64"):
        scaled_design(design, ["a", "a2"], np.float32)


def test_a_float32_design_is_checked_and_scaled_in_float64():
    design32 = np.array([[0.1, 1.0], [0.3, 1.0], [0.7, 1.0]], dtype=np.float32)
    scaled = scaled_design(design32, ["small"], np.float32)  # a column of norm < 1 is kept
    norms = np.linalg.norm(design32.astype(np.float64), axis=0)
    assert scaled.kept.tolist() == [True, True]
    assert scaled.scales.dtype == np.float64 and scaled.scales.tolist() == norms.tolist()
    assert scaled.matrix.tolist() == (design32 / norms).astype(np.float32).tolist()


def test_a_square_design_is_enough_and_names_must_match_its_columns():
    square = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    assert scaled_design(square, ["a", "b"], np.float64).matrix.shape == (3, 3)
    with pytest.raises(ValueError, match="zip"):
        scaled_design(square, ["a"], np.float64)


def test_the_rank_refusal_is_one_exact_line():
    a = np.arange(4.0)
    with pytest.raises(DlportError) as caught:
        scaled_design(np.column_stack([a, 2 * a, np.ones(4)]), ["a", "b"], np.float64)
    message = str(caught.value)
    ratio = message.split("singular value ratio ")[1].split(" ")[0]
    assert message == (
        "--solver exact: the design is numerically rank-deficient in float64 (singular value "
        f"ratio {ratio} <= cutoff 8.9e-16 after column scaling): ['a', 'b'] are (nearly) "
        "linearly dependent; drop one of them, or train with --solver gd"
    )
    with pytest.raises(DlportError) as caught:
        scaled_design(np.ones((1, 2)), ["a"], np.float64)
    assert str(caught.value) == (
        "--solver exact needs at least as many samples as coefficients (1 < 2); "
        "give more rows, or train with --solver gd"
    )
    with pytest.raises(DlportError, match=r"; drop one of them, use --dtype float64, or train"):
        scaled_design(np.column_stack([a, 2 * a, np.ones(4)]), ["a", "b"], np.float32)
