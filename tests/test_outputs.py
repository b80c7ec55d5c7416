"""Writing outputs (resdsl/outputs.py, docs/cli.md §Output files): one policy for every file
resdsl writes.

- no output replaces an input of the compile: the spec, a file it uses, the weights, the
  external-data file of an ONNX model;
- what `-o` does with each kind of path: a regular or missing file (atomic), a symlink
  (followed), a character device or FIFO (written through), a folder, socket, path through a
  file, missing folder (refused);
- a full disk, a file too large, a read-only folder: a usage error (exit 2), the old file kept,
  never E9000 nor torch's SIGABRT;
- SIGTERM and Ctrl-C mid-write, in a real `resdsl` process: one line, exit 143 / 130, nothing
  left behind; staging folders of killed runs are removed by the next write, only when
  their process is gone;
- external-data ONNX models are replaced consistently: a crash between the renames leaves the
  old model reading its own data, and old data files go after a successful write.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import resdsl
from resdsl import outputs
from resdsl.pipeline import UsageError
from tests.conftest import ROOT, run_cli

TINY = "network tiny { input [3, 8, 8]; conv(16, 3); bn; relu; global_avgpool; flatten; " \
    "linear(10) }\n"
# Weights of about 2.4 MB: more than a pipe holds (64 KiB), so that a write to a FIFO whose
# reader does not read blocks mid-write; and more than the 1 MB file-size limit below.
BIG = "network big { input [3, 8, 8]; conv(256, 3); relu; conv(256, 3); global_avgpool; " \
    "flatten; linear(10) }\n"
# Generous ceilings for a process to reach a point or to end: never timings.
WAIT = 300


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    spec = tmp_path / "tiny.res"
    spec.write_text(TINY, encoding="utf-8")
    return spec


@pytest.fixture
def big(tmp_path: Path) -> Path:
    spec = tmp_path / "big.res"
    spec.write_text(BIG, encoding="utf-8")
    return spec


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _default_signals() -> None:
    """In the child before exec: SIGINT and SIGTERM as a user's shell gives them (a test
    runner started in the background may ignore them, and Python keeps an ignored SIGINT
    ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def resdsl_process(*argv: str, cwd: Path, env: dict[str, str] | None = None,
                   code: str | None = None, **kwargs: Any) -> subprocess.Popen[str]:
    """`resdsl ARGV...` as a separate process (`python -m resdsl`, or `code` then the CLI's
    `run()`), with this checkout first on the path."""
    environ = dict(os.environ if env is None else env)
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), environ.get("PYTHONPATH", "")])
    command = ([sys.executable, "-m", "resdsl", *argv] if code is None
               else [sys.executable, "-c", code, *argv])
    return subprocess.Popen(command, cwd=cwd, env=environ, text=True,
                            preexec_fn=_default_signals, **kwargs)


def run_process(*argv: str, cwd: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    proc = resdsl_process(*argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          **kwargs)
    out, err = proc.communicate(timeout=WAIT)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


# ------------------------------------------------------------------ inputs (issue 15, item 1)


def test_compile_never_replaces_its_onnx_weights(tmp_path: Path, tiny: Path) -> None:
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    pytest.importorskip("onnx")
    weights = tmp_path / "w.safetensors"
    state, _ = resdsl.load(str(tiny)).state(seed=3)
    safetensors_numpy.save_file({k: np.ascontiguousarray(v) for k, v in state.items()},
                                str(weights))
    before = weights.read_bytes()
    run = run_cli("compile", str(tiny), "--to", "onnx", "--weights", str(weights), "-o",
                  str(weights))
    assert run.code == 2 and "refusing to overwrite" in run.err and "E9000" not in run.err
    assert "w.safetensors" in run.err
    assert weights.read_bytes() == before
    # The API refuses it too, and through another name of the same file.
    link = tmp_path / "link.safetensors"
    link.symlink_to(weights)
    with pytest.raises(UsageError, match="refusing to overwrite"):
        resdsl.load(str(tiny)).save_onnx(str(link), weights=str(weights))
    assert weights.read_bytes() == before and listing(tmp_path) == [
        "link.safetensors", "tiny.res", "w.safetensors"]


def test_compile_never_replaces_its_torch_weights(tmp_path: Path, tiny: Path) -> None:
    torch = pytest.importorskip("torch")
    weights = tmp_path / "w.pth"
    state, _ = resdsl.load(str(tiny)).state(seed=3)
    torch.save({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, weights)
    before = weights.read_bytes()
    run = run_cli("compile", str(tiny), "--to", "torch", "--weights", str(weights), "-o",
                  str(weights))
    assert run.code == 2 and "refusing to overwrite" in run.err
    assert weights.read_bytes() == before


def test_no_output_replaces_the_external_data_of_a_model(tmp_path: Path, tiny: Path) -> None:
    pytest.importorskip("onnx")
    from resdsl.backends.onnx_export import save

    model = tmp_path / "m.onnx"
    result = save(resdsl.load(str(tiny)), str(model), external=True)
    data = Path(result.paths[1])
    legacy = tmp_path / "m.onnx.data"  # the name resdsl gave the data file before
    legacy.write_bytes(b"weights of an older m.onnx")
    for target in (data, legacy):
        before = target.read_bytes()
        # `--format`: a `.data` suffix names no diagram format, which is refused first.
        for argv in (("compile", str(tiny), "--to", "python"),
                     ("draw", str(tiny), "--format", "svg")):
            run = run_cli(*argv, "-o", str(target))
            assert run.code == 2 and "external data" in run.err and "m.onnx" in run.err
            assert target.read_bytes() == before


# ------------------------------------------------------------------ kinds of path (item 2)


def _device(tmp_path: Path, name: str, minor: int) -> Path:
    """A character device to write to: a copy of /dev/null (minor 3) or /dev/full (7) in
    `tmp_path` when we may make one (as root), so that a regression renames over the copy
    and not over the machine's /dev/null; else the real one, which a user cannot replace."""
    copy = tmp_path / name
    try:
        os.mknod(copy, stat.S_IFCHR | 0o666, os.makedev(1, minor))
        with open(copy, "wb"):  # a file system mounted nodev refuses to open it
            pass
        return copy
    except OSError:
        copy.unlink(missing_ok=True)
    real = Path("/dev") / name
    if os.geteuid() == 0 or not real.exists():
        pytest.skip(f"cannot make a copy of {real} here, and root could replace the real one")
    return real


@pytest.mark.parametrize("argv", [("draw",), ("compile", "--to", "python"),
                                  ("compile", "--to", "onnx")])
def test_a_character_device_is_written_through(tmp_path: Path, tiny: Path,
                                               argv: tuple[str, ...]) -> None:
    if "onnx" in argv:
        pytest.importorskip("onnx")
    null = _device(tmp_path, "null", 3)
    run = run_cli(argv[0], str(tiny), *argv[1:], "-o", str(null))
    assert run.code == 0, run.err
    assert stat.S_ISCHR(null.lstat().st_mode)  # not replaced by a regular file
    assert not [n for n in listing(null.parent) if n.endswith(".tmp")]
    if "onnx" in argv:  # the size reported is what was written, not the device's 0 bytes
        result = resdsl.load(str(tiny)).save_onnx(null)
        assert result.size == result.model.proto.ByteSize() > 0


def test_a_full_device_is_a_usage_error(tmp_path: Path, tiny: Path) -> None:
    full = _device(tmp_path, "full", 7)
    for argv in (("draw",), ("compile", "--to", "python")):
        run = run_cli(argv[0], str(tiny), *argv[1:], "-o", str(full))
        assert run.code == 2 and "no space left on device" in run.err, run.err
        assert stat.S_ISCHR(full.lstat().st_mode)


def test_a_fifo_with_a_reader_gets_the_bytes(tmp_path: Path, tiny: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader_fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader before resdsl opens it
    # A writer of our own, closed after resdsl's: the reader sees the end of the data only
    # then (with no writer at all, a read of a FIFO is at its end at once).
    writer_fd = os.open(fifo, os.O_WRONLY)
    os.set_blocking(reader_fd, True)

    def read() -> None:
        with os.fdopen(reader_fd, "rb") as f:
            got.append(f.read())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        run = run_cli("draw", str(tiny), "--format", "dot", "-o", str(fifo))
    finally:
        os.close(writer_fd)
        reader.join(WAIT)
    assert run.code == 0, run.err
    assert run_cli("draw", str(tiny), "--format", "dot", "-o", str(tmp_path / "d.dot")).code == 0
    assert got == [(tmp_path / "d.dot").read_bytes()]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_a_fifo_without_a_reader_is_refused_without_waiting(tmp_path: Path, tiny: Path) -> None:
    """Opening a FIFO for writing waits for a reader: a separate process, with a ceiling."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    run = run_process("draw", str(tiny), "-o", str(fifo), cwd=tmp_path)
    assert run.returncode == 2 and "no process is reading" in run.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_a_symlink_is_followed_and_kept(tmp_path: Path, tiny: Path) -> None:
    real = tmp_path / "real.svg"
    real.write_text("old", encoding="utf-8")
    link = tmp_path / "link.svg"
    link.symlink_to("real.svg")
    dangling = tmp_path / "new.svg"
    dangling.symlink_to("made.svg")
    for target in (link, dangling):
        run = run_cli("draw", str(tiny), "-o", str(target))
        assert run.code == 0, run.err
        assert target.is_symlink()
    assert real.read_text("utf-8").startswith("<?xml")
    assert (tmp_path / "made.svg").read_text("utf-8").startswith("<?xml")
    assert listing(tmp_path) == ["link.svg", "made.svg", "new.svg", "real.svg", "tiny.res"]


def test_refused_kinds_of_path(tmp_path: Path, tiny: Path) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("a file", encoding="utf-8")
    old = os.getcwd()
    os.chdir(tmp_path)  # a socket's path must be short
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind("sock")
            cases = {
                "folder": "is a folder",
                "sock": "is a socket",
                "file.txt/out.onnx": "file.txt` is a file, not a folder",
                "file.txt/deeper/out.onnx": "file.txt` is a file, not a folder",
                "missing/out.onnx": "missing` does not exist",
            }
            for path, message in cases.items():
                for argv in (("compile", "--to", "onnx"), ("compile", "--to", "python"),
                             ("draw", "--format", "svg")):
                    run = run_cli(argv[0], str(tiny), *argv[1:], "-o",
                                  str(tmp_path / path))
                    assert run.code == 2 and message in run.err, (path, argv, run.err)
                    assert "E9000" not in run.err
            assert stat.S_ISSOCK(os.lstat("sock").st_mode)
    finally:
        os.chdir(old)
    assert listing(tmp_path) == ["file.txt", "folder", "sock", "tiny.res"]
    assert (tmp_path / "file.txt").read_text("utf-8") == "a file"


# ------------------------------------------------------------------ errors while writing (item 10)


def test_a_full_disk_keeps_the_old_file(tmp_path: Path, tiny: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC where a full disk reports it (at fsync, when the blocks are allocated)."""
    pytest.importorskip("onnx")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    for target, name in (("python", "out.py"), ("onnx", "out.onnx")):
        out = tmp_path / name
        out.write_bytes(b"the previous good file")
        run = run_cli("compile", str(tiny), "--to", target, "-o", str(out))
        assert run.code == 2, run.err
        assert "no space left on device" in run.err and "unchanged" in run.err
        assert out.read_bytes() == b"the previous good file"
    run = run_cli("draw", str(tiny), "-o", str(tmp_path / "new.svg"))
    assert run.code == 2 and "nothing was written" in run.err
    assert listing(tmp_path) == ["out.onnx", "out.py", "tiny.res"]


@pytest.mark.parametrize("target", ["torch", "onnx"])
def test_a_file_size_limit_is_a_usage_error_not_an_abort(tmp_path: Path, big: Path,
                                                          target: str) -> None:
    """A real failing write in a real process: RLIMIT_FSIZE makes writes past 1 MB fail
    (EFBIG), as a full disk would, for root too. torch's C++ zip writer used to abort the
    process on it (SIGABRT, exit 134); the ONNX write was E9000."""
    pytest.importorskip(target)
    pytest.importorskip("resource")
    out = tmp_path / f"out.{target}"
    out.write_bytes(b"the previous good file")
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
            "from resdsl.cli import run\nsys.argv[0] = 'resdsl'\nrun()\n")
    run = run_process("compile", str(big), "--to", target, "-o", str(out), cwd=tmp_path,
                      code=code)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "file too large" in run.stderr and "unchanged" in run.stderr
    assert out.read_bytes() == b"the previous good file"
    assert listing(tmp_path) == ["big.res", out.name]


def test_a_read_only_folder_is_a_usage_error(tmp_path: Path, tiny: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Root writes into a folder without write permission, so a read-only file system is
    simulated where the staging folder is made; the permission bits are tested next."""
    pytest.importorskip("onnx")

    def read_only(*args: object, **kwargs: object) -> str:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    for argv in (("compile", "--to", "onnx"), ("compile", "--to", "python"), ("draw",)):
        run = run_cli(argv[0], str(tiny), *argv[1:], "-o", str(tmp_path / "out"))
        assert run.code == 2 and "read-only file system" in run.err, run.err
    assert listing(tmp_path) == ["tiny.res"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes into a folder whatever its permission bits")
def test_a_folder_without_write_permission_is_refused(tmp_path: Path, tiny: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "out.py").write_text("old", encoding="utf-8")
    folder.chmod(0o555)
    try:
        run = run_cli("compile", str(tiny), "--to", "python", "-o", str(folder / "out.py"))
    finally:
        folder.chmod(0o755)
    assert run.code == 2 and "is not writable" in run.err
    assert (folder / "out.py").read_text("utf-8") == "old"


def test_a_closed_stdout_ends_quietly(tmp_path: Path, tiny: Path) -> None:
    """`resdsl ... | head -1` whose reader has gone: exit 141, no traceback, no E9000."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = resdsl_process("check", str(tiny), cwd=tmp_path, stdout=write,
                              stderr=subprocess.PIPE)
    finally:
        os.close(write)
    _, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 141 and err == ""


def test_the_report_stays_out_of_an_output_on_stdout(tmp_path: Path, tiny: Path) -> None:
    """`-o /dev/stdout | dot -Tpng`: the DOT text alone on stdout, the report on stderr.
    /dev/fd/1 is the same file; unlike /dev/stdout, a regression cannot rename a regular file
    over it (its folder is /proc/self/fd on Linux), so the test is safe to run as root."""
    if not Path("/dev/fd/1").exists():
        pytest.skip("no /dev/fd")
    run = run_process("draw", str(tiny), "--format", "dot", "-o", "/dev/fd/1", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("digraph") and run.stdout.rstrip().endswith("}")
    assert run.stderr.startswith("wrote /dev/fd/1: diagram of tiny")


# ------------------------------------------------------------------ signals (items 3, 11)


def _wait_readable(fd: int) -> None:
    ready, _, _ = select.select([fd], [], [], WAIT)
    assert ready, "the compile never started writing"


@pytest.mark.parametrize("sig, code, line", [(signal.SIGTERM, 143, "resdsl: terminated\n"),
                                             (signal.SIGINT, 130, "resdsl: interrupted\n")])
def test_a_signal_mid_write_cleans_up(tmp_path: Path, big: Path, sig: int, code: int,
                                      line: str) -> None:
    """`compile --to onnx` into a FIFO whose reader does not read: the process is blocked
    mid-write, deterministically, when the signal arrives. Its staging folder (in TMPDIR for
    a FIFO) is removed, it prints one line and exits 128 + the signal."""
    pytest.importorskip("onnx")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    temp = tmp_path / "temp"
    temp.mkdir()
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        proc = resdsl_process("compile", str(big), "--to", "onnx", "-o", str(fifo),
                              cwd=tmp_path, env={**os.environ, "TMPDIR": str(temp)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _wait_readable(fd)  # the first bytes are in the pipe; the rest cannot fit
        assert [n for n in listing(temp) if n.startswith(".pipe.")], listing(temp)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=WAIT)
    finally:
        os.close(fd)
    assert (proc.returncode, err, out) == (code, line, "")
    assert not [n for n in listing(temp) if n.startswith(".pipe.")]


# The CLI with os.fsync stalled after the staged model is complete: the signal arrives while
# the staging folder holds the whole new file and the old one is still in place.
STALL = """
import os, sys, time
ready = sys.argv.pop(1)
real_fsync = os.fsync
def stall(fd):
    real_fsync(fd)
    open(ready, "w").close()
    time.sleep(600)
os.fsync = stall
from resdsl.cli import run
sys.argv[0] = "resdsl"
run()
"""


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
@pytest.mark.parametrize("target", ["onnx", "python"])
def test_a_signal_before_the_rename_keeps_the_old_file(tmp_path: Path, big: Path, sig: int,
                                                       code: int, target: str) -> None:
    if target == "onnx":
        pytest.importorskip("onnx")
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "model.out"
    out.write_bytes(b"the previous good file")
    ready = tmp_path / "ready"
    proc = resdsl_process(str(ready), "compile", str(big), "--to", target, "-o", str(out),
                          cwd=tmp_path, code=STALL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    try:
        for _ in range(WAIT * 20):
            if ready.exists() or proc.poll() is not None:
                break
            threading.Event().wait(0.05)
        assert ready.exists(), proc.communicate(timeout=WAIT)
        staged = [n for n in listing(folder) if n.startswith(".model.out.")]
        assert len(staged) == 1 and (folder / staged[0] / outputs.STAGED).exists()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code and err.count("\n") == 1 and "Traceback" not in err
    assert listing(folder) == ["model.out"]
    assert out.read_bytes() == b"the previous good file"


def _plant(folder: Path, output: str, random: str, owner: str | None) -> Path:
    """A staging folder as a killed run leaves it: `.OUTPUT.RANDOM.tmp/`, a partial file
    and (when resdsl made it) the owner file."""
    staging = folder / f".{output}.{random}.tmp"
    staging.mkdir()
    (staging / outputs.STAGED).write_bytes(b"half a model")
    if owner is not None:
        (staging / outputs.OWNER).write_text(owner, encoding="ascii")
    return staging


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("target", ["onnx", "python"])
def test_stale_staging_folders_of_killed_runs_are_removed(tmp_path: Path, tiny: Path,
                                                          target: str) -> None:
    """kill -9 cannot be cleaned up after: the next write of the same output removes the
    staging folders whose process is gone, and only those resdsl made."""
    if target == "onnx":
        pytest.importorskip("onnx")
    me = os.getpid()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        dead = [_plant(tmp_path, "out.x", "dead_123", f"resdsl {_dead_pid()} -\n")]
        kept = [
            _plant(tmp_path, "out.x", "mine_123", f"resdsl {me} {outputs._started(me)}\n"),
            _plant(tmp_path, "out.x", "alive_12",
                   f"resdsl {other.pid} {outputs._started(other.pid)}\n"),
            _plant(tmp_path, "out.x", "foreign1", None),  # no owner file: not resdsl's
            _plant(tmp_path, "out.x", "garbled1", "not an owner\n"),
            _plant(tmp_path, "out.x", "group_12", "resdsl 0 -\n"),  # never kill(0, ...)
            _plant(tmp_path, "other.x", "dead_123", f"resdsl {_dead_pid()} -\n"),
        ]
        if outputs._started(other.pid) != "-":  # its pid, started at another time: reused
            dead.append(_plant(tmp_path, "out.x", "reused_1", f"resdsl {other.pid} 1\n"))
        run = run_cli("compile", str(tiny), "--to", target, "-o", str(tmp_path / "out.x"))
    finally:
        other.kill()
        other.wait()
    assert run.code == 0, run.err
    assert not [d for d in dead if d.exists()]
    assert set(listing(tmp_path)) == {"out.x", "tiny.res", *(k.name for k in kept)}


# ------------------------------------------------------------------ external data (item 4)


@pytest.fixture
def onnx_net(tiny: Path) -> Iterator[resdsl.Network]:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    yield resdsl.load(str(tiny))


def _outputs_of(path: Path, x: np.ndarray) -> np.ndarray:
    from resdsl.verify import session

    (y,) = session(str(path)).run(None, {"input": x})
    return np.asarray(y)


def test_external_data_is_replaced_with_the_model(tmp_path: Path, onnx_net: resdsl.Network,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from resdsl.api import WeightOptions
    from resdsl.backends.onnx_export import save
    from resdsl.verify import sample_input

    model = tmp_path / "m.onnx"
    x = sample_input(onnx_net.input_shape)
    first = save(onnx_net, str(model), WeightOptions(seed=1), external=True)
    data1 = Path(first.paths[1])
    assert data1.name.startswith("m.onnx.") and data1.name.endswith(".data")
    assert len(data1.name) == len("m.onnx.") + 16 + len(".data")
    y1 = _outputs_of(model, x)

    # A crash between the renames: the data file is in place, the model's rename fails.
    real = os.replace

    def fail_on_the_model(src: object, dst: object) -> None:
        if Path(str(dst)) == model:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", fail_on_the_model)
    with pytest.raises(UsageError, match="input/output error"):
        save(onnx_net, str(model), WeightOptions(seed=2), external=True)
    monkeypatch.undo()
    np.testing.assert_array_equal(_outputs_of(model, x), y1)  # the old model, its old data
    assert listing(tmp_path) == sorted([data1.name, "m.onnx", "tiny.res"])

    # A successful write: the new pair, and the old data file removed.
    second = save(onnx_net, str(model), WeightOptions(seed=2), external=True)
    data2 = Path(second.paths[1])
    assert data2 != data1 and not data1.exists()
    y2 = _outputs_of(model, x)
    assert not np.array_equal(y1, y2)
    legacy = tmp_path / "m.onnx.data"
    legacy.write_bytes(b"what resdsl wrote before")
    # The same weights: the same name and bytes (determinism); the legacy file goes.
    assert save(onnx_net, str(model), WeightOptions(seed=2), external=True).paths == \
        second.paths
    assert listing(tmp_path) == sorted([data2.name, "m.onnx", "tiny.res"])
    # A model without external data: no data file is left.
    save(onnx_net, str(model), WeightOptions(seed=2))
    assert listing(tmp_path) == ["m.onnx", "tiny.res"]
    np.testing.assert_array_equal(_outputs_of(model, x), y2)


def test_a_failed_write_of_the_data_leaves_the_old_pair(tmp_path: Path, onnx_net: resdsl.Network,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from resdsl.api import WeightOptions
    from resdsl.backends.onnx_export import save

    model = tmp_path / "m.onnx"
    first = save(onnx_net, str(model), WeightOptions(seed=1), external=True)
    before = {p: Path(p).read_bytes() for p in first.paths}

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(UsageError, match="no space left on device"):
        save(onnx_net, str(model), WeightOptions(seed=2), external=True)
    assert {p: Path(p).read_bytes() for p in first.paths} == before
    assert listing(tmp_path) == sorted([*(Path(p).name for p in first.paths), "tiny.res"])


def test_external_data_cannot_go_to_a_device(tmp_path: Path, onnx_net: resdsl.Network) -> None:
    from resdsl.backends.onnx_export import save

    null = _device(tmp_path, "null", 3)
    with pytest.raises(UsageError, match="needs its data file beside it"):
        save(onnx_net, str(null), external=True)
