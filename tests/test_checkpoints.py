"""The checkpoint reader as an input from anywhere (issue 15): files sized and typed before
they are read, hostile .safetensors headers, malicious pickles, NaN weights, training
checkpoints, renamed keys. The E06xx goldens are in tests/test_weights.py."""

from __future__ import annotations

import builtins
import io
import json
import os
import pickle
import re
import subprocess
import sys
import threading
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import timm
import torch
import torchvision

import resdsl
from resdsl.diagnostics import SpecError, render_all_text
from resdsl.weights import _pickle_scan, load_state, read_checkpoint
from resdsl.weights._pickle_scan import MAX_OBJECTS, MAX_PICKLE
from resdsl.weights._safetensors import MAX_HEADER, MAX_VALUES
from resdsl.weights.io import read as read_whole
from tests.conftest import ROOT, run_cli

NET = ROOT / "tests" / "golden" / "weights" / "net.res"
GiB = 1 << 30


def codes(exc: pytest.ExceptionInfo[SpecError]) -> list[str]:
    return [d.code for d in exc.value.diagnostics]


def text(exc: pytest.ExceptionInfo[SpecError]) -> str:
    return render_all_text(exc.value.diagnostics)


def net_state(classes: int = 10) -> dict[str, np.ndarray]:
    return resdsl.load(str(NET), classes=classes).state(1)[0]


def torch_state(state: dict[str, np.ndarray]) -> OrderedDict[str, torch.Tensor]:
    return OrderedDict((k, torch.from_numpy(v)) for k, v in state.items())


def safetensors_file(header: bytes, data: bytes = b"") -> bytes:
    return len(header).to_bytes(8, "little") + header + data


# ------------------------------------------------------------------ sized and typed first

# `resdsl ARGV...` in a fresh process that prints its own peak RSS (VmHWM, in kB) last: the
# parent's ru_maxrss would count what the test session has loaded (torch).
_PEAK = """
import sys
from resdsl.cli import main
codes = [main(argv) for argv in {runs!r}]
with open("/proc/self/status", encoding="ascii") as f:
    hwm = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
print("CODES", *codes, "HWM", hwm)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_a_large_checkpoint_with_a_bad_header_is_refused_from_the_header(tmp_path: Path
                                                                         ) -> None:
    """3 GiB sparse .safetensors files whose headers are wrong (trailing data, bad JSON, a
    tensor past the end) are refused without reading their data: before, the file was read
    whole (3.2 GB of RSS), and under a memory limit that was an internal error."""
    header = b'{"fc.bias":{"dtype":"F32","shape":[10],"data_offsets":[0,40]}}'
    files = {
        "tail.safetensors": header,
        "json.safetensors": b'{"fc.bias": nope}',
        "past.safetensors": header.replace(b"[0,40]", b"[%d,%d]" % (4 * GiB, 4 * GiB + 40)),
    }
    runs = []
    for name, head in files.items():
        with open(tmp_path / name, "wb") as f:
            f.write(safetensors_file(head))
            f.truncate(3 * GiB)  # sparse: no disk, no time
        runs.append(["compile", str(NET), "--to", "onnx", "--weights", str(tmp_path / name),
                     "-o", str(tmp_path / "out.onnx")])
    run = subprocess.run([sys.executable, "-c", _PEAK.format(runs=runs)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert "Traceback" not in run.stderr, run.stderr
    last = run.stdout.split()
    assert last[:1] == ["CODES"] and last[-2] == "HWM", (run.stdout, run.stderr)
    peak = int(last[-1]) * 1024
    assert peak < 500e6, f"peak RSS {peak / 1e6:.0f} MB for refused 3 GiB checkpoints"
    assert last[1:4] == ["1", "1", "1"], run.stderr
    assert run.stderr.count("error[E0602]") == 3, run.stderr
    assert "bytes after the last tensor's end" in run.stderr
    assert not (tmp_path / "out.onnx").exists()


def test_a_fifo_as_weights_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    done: list[str] = []

    def load() -> None:
        try:
            read_checkpoint(fifo)
        except SpecError as exc:
            done.append(f"{exc.diagnostics[0].code}: {exc.diagnostics[0].message}")

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(20)
    if thread.is_alive():  # unblock it: a writer opens the FIFO, then goes
        with open(fifo, "wb"):
            pass
        pytest.fail("reading the FIFO blocked")
    assert done == [f"E0601: cannot read the weights file `{fifo}`: it is a named pipe "
                    "(FIFO), not a file"]


def test_a_fifo_as_weights_on_the_command_line(tmp_path: Path) -> None:
    fifo = tmp_path / "w.pth"
    os.mkfifo(fifo)
    run = subprocess.run(
        [sys.executable, "-m", "resdsl", "compile", str(NET), "--to", "onnx", "--weights",
         str(fifo), "-o", str(tmp_path / "out.onnx")],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert run.returncode == 1 and "error[E0601]" in run.stderr, run.stderr
    assert "named pipe (FIFO)" in run.stderr


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null"])
def test_a_device_as_weights_is_refused(path: str) -> None:
    if not os.path.exists(path):
        pytest.skip(f"no {path}")
    with pytest.raises(SpecError) as exc:
        read_checkpoint(path)
    assert codes(exc) == ["E0601"] and "it is a device, not a file" in text(exc)


def test_safetensors_data_is_mapped_not_copied(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    safetensors.numpy.save_file({"a": np.arange(4096, dtype=np.float32)}, str(path))
    a = read_checkpoint(path)["a"]
    assert a.flags.writeable and np.array_equal(a, np.arange(4096, dtype=np.float32))
    base: Any = a
    while getattr(base, "base", None) is not None:
        base = base.base
    assert "mmap" in type(getattr(base, "obj", base)).__name__
    a[0] = 7  # a private map: the file keeps its values
    assert read_checkpoint(path)["a"][0] == 0


def test_a_torch_archive_is_mapped(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save({"a": torch.arange(4096.0)}, path)
    loads: list[dict[str, Any]] = []
    real = torch.load

    def spy(*args: Any, **kwargs: Any) -> Any:
        loads.append(kwargs)
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "load", spy)
        assert read_checkpoint(path)["a"][4095] == 4095.0
    assert loads == [{"map_location": "cpu", "weights_only": True, "mmap": True}]


# ------------------------------------------------------------------ hostile headers

_F32 = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'


def _header(**fields: object) -> bytes:
    entry: dict[str, object] = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}
    entry.update(fields)
    return json.dumps({"a": entry}).encode()


HOSTILE: dict[str, bytes] = {
    # the three
    "offset_of_5000_digits": safetensors_file(
        b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,' + b"9" * 5000 + b"]}}", b"\0" * 4),
    "shape_2_70_by_0": safetensors_file(_header(shape=[2**70, 0], data_offsets=[0, 0])),
    "70_dimensions": safetensors_file(_header(shape=[1] * 70), b"\0" * 4),
    # numbers
    "dimension_of_5000_digits": safetensors_file(
        b'{"a":{"dtype":"F32","shape":[' + b"9" * 5000 + b'],"data_offsets":[0,4]}}'),
    "shape_over_numpy_limit": safetensors_file(_header(shape=[2**62, 4, 0],
                                                       data_offsets=[0, 0])),
    "negative_offset": safetensors_file(_header(data_offsets=[-4, 0]), b"\0" * 4),
    "negative_dimension": safetensors_file(_header(shape=[-1]), b"\0" * 4),
    "float_dimension": safetensors_file(_header(shape=[1.0]), b"\0" * 4),
    "bool_dimension": safetensors_file(_header(shape=[True]), b"\0" * 4),
    "nan_dimension": safetensors_file(_F32.replace(b"[1]", b"[NaN]"), b"\0" * 4),
    "infinite_offset": safetensors_file(_F32.replace(b"[0,4]", b"[0,Infinity]"), b"\0" * 4),
    "reversed_offsets": safetensors_file(_header(data_offsets=[4, 0]), b"\0" * 4),
    "three_offsets": safetensors_file(_header(data_offsets=[0, 4, 8]), b"\0" * 4),
    "size_mismatch": safetensors_file(_header(data_offsets=[0, 8]), b"\0" * 8),
    # fields
    "unknown_dtype": safetensors_file(_header(dtype="C64"), b"\0" * 4),
    "dtype_not_a_string": safetensors_file(_header(dtype=4), b"\0" * 4),
    "no_dtype": safetensors_file(b'{"a":{"shape":[1],"data_offsets":[0,4]}}', b"\0" * 4),
    "shape_not_a_list": safetensors_file(_header(shape="1"), b"\0" * 4),
    "entry_not_an_object": safetensors_file(b'{"a":[1,2]}'),
    "metadata_not_an_object": safetensors_file(
        b'{"__metadata__":[1],' + _F32[1:], b"\0" * 4),
    "duplicate_tensor": safetensors_file(b'{"a":{"dtype":"F32","shape":[1],"data_offsets":'
                                         b'[0,4]},"a":{"dtype":"F32","shape":[1],'
                                         b'"data_offsets":[0,4]}}', b"\0" * 4),
    "duplicate_field": safetensors_file(b'{"a":{"dtype":"F32","dtype":"F64","shape":[1],'
                                        b'"data_offsets":[0,4]}}', b"\0" * 4),
    # the data
    "truncated_data": safetensors_file(_F32, b"\0" * 2),
    "trailing_data": safetensors_file(_F32, b"\0" * 8),
    "gap": safetensors_file(b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                            b'"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}',
                            b"\0" * 12),
    "overlap": safetensors_file(b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                                b'"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
                                b"\0" * 8),
    "tensors_but_no_data": safetensors_file(_F32),
    # the JSON
    "array_header": safetensors_file(b"[1, 2, 3]"),
    "string_header": safetensors_file(b'"weights"'),
    "number_header": safetensors_file(b"12345678"),
    "null_header": safetensors_file(b"null"),
    "not_json": safetensors_file(b"{not json}"),
    "not_utf8": safetensors_file(b'{"\xff\xfe":{}}'),
    "nested_deeply": safetensors_file(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    "too_many_values": safetensors_file(b'{"a":[' + b"[]," * MAX_VALUES + b"[]]}"),
    # the length field
    "length_beyond_file": (1000).to_bytes(8, "little") + _F32,
    "length_of_2_63": (2**63).to_bytes(8, "little") + _F32,
    "length_of_2_64_minus_1": b"\xff" * 8 + _F32,
    "length_just_over_limit": (MAX_HEADER + 1).to_bytes(8, "little") + _F32,
    "length_zero": (0).to_bytes(8, "little") + _F32,
    "shorter_than_length": b"\x10\x00\x00",
    # a name that would drive the terminal
    "escape_in_name": safetensors_file(b'{"\\u001b[2J\\u001b]0;pwned\\u0007":{"dtype":"X",'
                                       b'"shape":[1],"data_offsets":[0,4]}}', b"\0" * 4),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_header_is_a_diagnostic(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.safetensors"
    path.write_bytes(HOSTILE[name])
    with pytest.raises(SpecError) as exc:  # anything else is an internal error (E9000)
        read_checkpoint(path)
    assert codes(exc) == ["E0602"], text(exc)
    rendered = text(exc)
    assert f"`{path}` is not a valid .safetensors file: " in rendered
    assert "\x1b" not in rendered and "\x07" not in rendered
    assert len(rendered) < 2_000


def test_hostile_headers_on_the_command_line(tmp_path: Path) -> None:
    """The issue's three headers, each through `resdsl compile`: exit 1, E0602, no E9000."""
    for name in ("offset_of_5000_digits", "shape_2_70_by_0", "70_dimensions"):
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(HOSTILE[name])
        run = run_cli("compile", str(NET), "--to", "onnx", "--weights", str(path), "-o",
                      str(tmp_path / "out.onnx"))
        assert run.code == 1, (name, run.err)
        assert "error[E0602]" in run.err and "E9000" not in run.err, (name, run.err)


def test_the_header_checks_keep_valid_files_valid(tmp_path: Path) -> None:
    """What the checks must not refuse: metadata, zero-sized tensors anywhere, a header
    padded with spaces (as the safetensors package writes it), no tensors at all."""
    tensors: dict[str, np.ndarray] = {
        "a": np.zeros((0, 3), np.float32), "b": np.ones(3, np.float16),
        "c": np.zeros((2, 0, 5), np.int64), "d": np.arange(5, dtype=np.uint8)}
    path = tmp_path / "w.safetensors"
    safetensors.numpy.save_file(tensors, str(path), metadata={"format": "np", "x": "1"})
    read = read_checkpoint(path)
    assert {k: v.shape for k, v in read.items()} == {k: v.shape for k, v in tensors.items()}
    safetensors.numpy.save_file({}, str(tmp_path / "empty.safetensors"))
    assert read_checkpoint(tmp_path / "empty.safetensors") == {}


# ------------------------------------------------------------------ malicious pickles, torch


class CallsSystem:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("zipped", [True, False])
def test_a_pickle_that_calls_os_system_is_refused_and_said_so(tmp_path: Path,
                                                              zipped: bool) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "x": CallsSystem(marker)}, path,
               _use_new_zipfile_serialization=zipped)
    with pytest.MonkeyPatch.context() as mp:
        calls = _spy_torch_load(mp)
        with pytest.raises(SpecError) as exc:
            read_checkpoint(path)
    assert not marker.exists(), "loading the checkpoint ran its payload"
    assert not calls, "torch.load read the pickle: the scan let it through"
    assert codes(exc) == ["E0607"]
    message = text(exc)
    assert f"would call `{os.system.__module__}.system`" in message
    assert (f"resdsl refused, before torch read the file, the global "
            f"`{os.system.__module__}.system`: its module `{os.system.__module__}` is blocked "
            "by torch.load(weights_only=True)") in message
    assert "do not load this file with weights_only=False" in message
    assert "corrupt" not in message and "fetch or save the file again" not in message


@pytest.mark.parametrize("zipped", [True, False])
def test_what_torch_refuses_after_the_scan_is_said_too(tmp_path: Path, zipped: bool) -> None:
    """The scan's allowlist is torch's; where the installed torch allows less (an older one),
    torch.load refuses, and its refusal is worded the same. Here the scan is told to allow
    os.system, and torch.load(weights_only=True) refuses it: the payload never runs."""
    from resdsl.weights import _pickle_scan

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "x": CallsSystem(marker)}, path,
               _use_new_zipfile_serialization=zipped)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_pickle_scan, "BLOCKED_MODULES", ())
        mp.setitem(_pickle_scan.ALLOWED, f"{os.system.__module__}.system", _pickle_scan._Stub)
        with pytest.raises(SpecError) as exc:
            read_checkpoint(path)
    assert not marker.exists(), "loading the checkpoint ran its payload"
    assert codes(exc) == ["E0607"]
    assert (f"torch.load(weights_only=True) refused the global `{os.system.__module__}.system`"
            in text(exc))


def _spy_torch_load(mp: pytest.MonkeyPatch) -> list[object]:
    calls: list[object] = []
    mp.setattr(torch, "load", lambda *a, **k: calls.append(a))
    return calls


def test_a_torch_archive_is_checked_from_its_end_before_torch_reads_it(tmp_path: Path) -> None:
    from resdsl.weights import _torchzip

    path = tmp_path / "w.pth"
    torch.save({f"t{i}": torch.zeros(1) for i in range(200)}, path)
    data = path.read_bytes()
    end = data.rindex(b"PK\x05\x06")  # the end record; torch writes zip64 records before it
    z64 = data.rindex(b"PK\x06\x06")  # the zip64 end record

    def patch(content: bytes, at: int, value: int, size: int) -> bytes:
        return content[:at] + value.to_bytes(size, "little") + content[at + size :]

    zip64 = patch(data, end + 12, 0xFFFFFFFF, 4)  # the directory's size is in zip64 records
    cases = {
        "cut": (data[:-30], "lacks the directory that ends it"),
        "directory": (patch(data, end + 12, 2**31, 4),
                      "its zip directory claims 2,147,483,648 bytes"),
        "zip64 directory": (patch(zip64, z64 + 40, 2**40, 8),
                            "its zip directory claims 1,099,511,627,776 bytes"),
        "zip64 locator": (patch(zip64, end - 12, 2**62, 8), "points outside the file"),
        "pickle": (data, "holds a pickle of"),
    }
    for name, (content, says) in cases.items():
        path.write_bytes(content)
        with pytest.MonkeyPatch.context() as mp:
            calls = _spy_torch_load(mp)
            if name == "pickle":
                mp.setattr(_torchzip, "MAX_PICKLE", 1000)  # 200 tensors pickle in 20 kB
            with pytest.raises(SpecError) as exc:
                read_checkpoint(path)
        assert codes(exc) == ["E0602"] and says in text(exc), (name, text(exc))
        assert not calls, f"{name}: torch.load read the archive"


def test_a_torch_file_named_safetensors_is_told(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    torch.save({"a": torch.zeros(2)}, path)
    with pytest.raises(SpecError) as exc:
        read_checkpoint(path)
    assert codes(exc) == ["E0602"] and "if it is a PyTorch checkpoint, name it .pth" in text(exc)


def test_a_plain_pickle_is_refused_with_what_was_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.pth"
    path.write_bytes(pickle.dumps({"a": np.zeros(2)}, protocol=4))
    with pytest.MonkeyPatch.context() as mp:
        calls = _spy_torch_load(mp)
        with pytest.raises(SpecError) as exc:
            read_checkpoint(path)
    assert not calls
    assert codes(exc) == ["E0607"], text(exc)
    assert "the pickle instruction 149 (FRAME), which torch.save never writes" in text(exc)
    # A pickle of what torch allows, but not written by torch.save: no magic number.
    path.write_bytes(pickle.dumps(OrderedDict(a=[1, 2.5, "x"]), protocol=2))
    with pytest.raises(SpecError) as exc:
        read_checkpoint(path)
    assert codes(exc) == ["E0602"]
    assert "is a pickle, but not a PyTorch checkpoint: it does not start with" in text(exc)


@pytest.mark.parametrize(
    ("raised", "code"),
    [(MemoryError(), "E0610"), (OSError(12, "Cannot allocate memory"), "E0610"),
     (ImportError("libtorch_cpu.so: cannot open shared object file"), "E0610"),
     (ModuleNotFoundError("No module named 'typing_extensions'", name="typing_extensions"),
      "E0610"),
     (ImportError("libtorch_cpu.so: failed to map segment from shared object"), "E0610"),
     (ModuleNotFoundError("No module named 'torch'", name="torch"), "E0606")],
    ids=["memory", "oserror", "library", "dependency", "segment", "absent"])
def test_a_failed_torch_import_is_not_torch_missing(tmp_path: Path, raised: Exception,
                                                    code: str,
                                                    request: pytest.FixtureRequest) -> None:
    name = request.node.callspec.id
    path = tmp_path / "w.pth"
    torch.save({"a": torch.zeros(1)}, path)
    real = builtins.__import__

    def failing(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "torch":
            raise raised
        return real(name, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(builtins, "__import__", failing)
        with pytest.raises(SpecError) as exc:
            read_checkpoint(path)
    assert codes(exc) == [code]
    assert ("not installed" in text(exc)) == (code == "E0606")
    assert ("ran out of memory" in text(exc)) == (name in ("memory", "oserror", "segment"))


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_a_torchscript_archive_is_named(tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 3)), str(path))
    with pytest.raises(SpecError) as exc:
        read_checkpoint(path)
    assert codes(exc) == ["E0602"]
    assert "is a TorchScript archive (torch.jit.save), not a state_dict" in text(exc)
    assert "torch.jit.load" in (exc.value.diagnostics[0].help or "")


def test_notes_quoting_torch_end_with_a_whole_sentence(tmp_path: Path) -> None:
    from resdsl.weights.io import _sentence

    miniz = ("PytorchStreamReader failed reading zip archive: failed finding central "
             "directory. This is an internal miniz error. If you are seeing this error, there "
             "is a high likelihood that your checkpoint file is corrupted.")
    assert _sentence(miniz) == ("PytorchStreamReader failed reading zip archive: failed "
                                "finding central directory.")
    long = "word " * 100
    cut = _sentence(long)
    assert cut.endswith(" …") and len(cut) < 210 and "wor …" not in cut


# ------------------------------------------------------------------ NaN and infinities


def test_nonfinite_weights_are_refused_with_their_keys(tmp_path: Path) -> None:
    g = resdsl.load(str(NET)).graph
    state = net_state()
    state["conv1.weight"][0, 0, 0, 0] = np.nan
    state["bn1.running_var"][:] = -np.inf
    state["bn1.num_batches_tracked"] = np.array(3)  # an integer: never non-finite
    with pytest.raises(SpecError) as exc:
        load_state(g, state)
    assert codes(exc) == ["E0608"]
    assert exc.value.diagnostics[0].notes == ("conv1.weight: 1 NaN of 216 values",
                                              "bn1.running_var: 8 -inf of 8 values")
    loaded, report = load_state(g, state, allow_nonfinite=True)
    assert np.isnan(loaded["conv1.weight"][0, 0, 0, 0])
    assert report.nonfinite == ("conv1.weight", "bn1.running_var")
    assert ("2 tensors hold NaN or infinite values (allowed): conv1.weight, bn1.running_var"
            in report.summary())
    # A float64 value beyond float32's range becomes an infinity when it is cast.
    big = net_state()
    big["fc.bias"] = big["fc.bias"].astype(np.float64)
    big["fc.bias"][0] = 1e300
    with pytest.raises(SpecError) as exc:
        load_state(g, big)
    assert codes(exc) == ["E0608"] and "fc.bias: 1 +inf of 10 values" in text(exc)


def test_nonfinite_weights_on_the_command_line(tmp_path: Path) -> None:
    state = net_state()
    state["fc.weight"][1, 2] = np.nan
    weights = tmp_path / "nan.safetensors"
    safetensors.numpy.save_file(state, str(weights))
    out = tmp_path / "net.onnx"
    run = run_cli("compile", str(NET), "--to", "onnx", "--weights", str(weights), "-o", str(out))
    assert run.code == 1 and "error[E0608]" in run.err and "fc.weight: 1 NaN" in run.err
    assert not out.exists()
    run = run_cli("compile", str(NET), "--to", "onnx", "--weights", str(weights), "-o", str(out),
                  "--allow-nonfinite")
    assert run.code == 0, run.err
    assert "1 tensor holds NaN or infinite values (allowed): fc.weight" in run.out


def test_verify_does_not_blame_resdsl_for_nan_weights(tmp_path: Path) -> None:
    state = net_state()
    state["conv1.weight"][0, 0, 0, 0] = np.nan
    weights = tmp_path / "nan.safetensors"
    safetensors.numpy.save_file(state, str(weights))
    run = run_cli("compile", str(NET), "--to", "onnx", "--weights", str(weights), "-o",
                  str(tmp_path / "net.onnx"), "--allow-nonfinite", "--verify")
    assert run.code == 1 and "error[E0713]" in run.err, run.err
    assert "the weights hold NaN or infinite values: conv1.weight" in run.err
    assert "bug in resdsl" not in run.err


def test_the_api_threads_allow_nonfinite() -> None:
    net = resdsl.load(str(NET))
    state = net_state()
    state["fc.bias"][0] = np.inf
    with pytest.raises(SpecError):
        net.to_torch(weights=state)
    model = net.to_torch(weights=state, allow_nonfinite=True)
    assert torch.isinf(model.state_dict()["fc.bias"][0])
    proto = net.to_onnx(weights=state, allow_nonfinite=True)
    assert proto.graph.initializer


# ------------------------------------------------------------------ training checkpoints


def test_a_training_checkpoint_is_unwrapped_and_the_report_says_from_where(tmp_path: Path
                                                                           ) -> None:
    g = resdsl.load(str(NET)).graph
    sd = torch_state(net_state())
    cases: dict[str, tuple[object, tuple[str, ...], str]] = {
        # kuangliu/pytorch-cifar's main.py
        "net": ({"net": sd, "acc": 93.1, "epoch": 200}, ("net",), ""),
        "tensor_extras": ({"weights": sd, "best_acc": torch.tensor(0.93)}, ("weights",), ""),
        "optimizer_beside": ({"model": sd, "optimizer": torch.optim.SGD(
            [torch.nn.Parameter(torch.zeros(2))], lr=0.1, momentum=0.9).state_dict()},
            ("model",), ""),
        # timm: the model's and its EMA's; the one named state_dict wins
        "ema": ({"state_dict": sd, "state_dict_ema": sd, "epoch": 3}, ("state_dict",), ""),
        "nested": ({"checkpoint": {"model": sd}, "step": 9}, ("checkpoint", "model"), ""),
        "ddp": ({"net": OrderedDict((f"module.{k}", v) for k, v in sd.items())}, ("net",),
                "module."),
        "compiled_ddp": (OrderedDict((f"module._orig_mod.{k}", v) for k, v in sd.items()), (),
                         "module._orig_mod."),
    }
    for name, (obj, entry, prefix) in cases.items():
        path = tmp_path / f"{name}.pth"
        torch.save(obj, path)
        loaded, report = load_state(g, path)
        assert report.entry == entry and report.prefix == prefix, name
        assert report.method == "name" and len(report.matched) == 20, name
        assert np.array_equal(loaded["fc.weight"], sd["fc.weight"].numpy()), name
        if entry:
            where = " → ".join(f"`{k}`" for k in entry)
            assert f"from {path} (the state_dict under {where}" in report.summary(), name
    assert report.summary() == (f"loaded 20 of 20 tensors from {path} (keys without the "
                                "prefix `module._orig_mod.`) by name")


def test_shared_wrappers_are_searched_once(tmp_path: Path) -> None:
    """Four levels of N keys that all lead to one shared dict pickle in a few kB (the pickle
    memoises it); searching them for a state_dict visited each path, N⁴ checks (10¹² for
    N = 1,000). Each mapping is now checked once; a state_dict under them is still found."""
    from resdsl.weights import io as weights_io

    def nested(leaf: object) -> object:
        d = leaf
        for _ in range(4):
            d = {f"k{i}": d for i in range(30)}  # 840,000 checks before
        return d

    checks: list[object] = []
    real = weights_io._is_state_dict

    def counted(value: object) -> bool:
        checks.append(value)
        return real(value)

    path = tmp_path / "nested.pth"
    torch.save(nested({"x": 1}), path)
    assert path.stat().st_size < 10_000
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(weights_io, "_is_state_dict", counted)
        with pytest.raises(SpecError) as exc:
            read_checkpoint(path)
        assert codes(exc) == ["E0602"] and len(checks) <= 10, len(checks)
        torch.save({"wrap": {"sd": {"a": torch.ones(2)}}, "many": nested({"x": 1})}, path)
        checks.clear()
        assert read_whole(path).entry == ("wrap", "sd") and len(checks) <= 10, len(checks)


def test_several_unnamed_state_dicts_are_an_error_that_shows_how_to_pick(tmp_path: Path
                                                                        ) -> None:
    sd = torch_state(net_state())
    path = tmp_path / "two.pth"
    torch.save({"ckpt": {"student": sd, "teacher": sd}}, path)
    with pytest.raises(SpecError) as exc:
        read_checkpoint(path)
    assert codes(exc) == ["E0602"]
    assert "weights_only=True)['ckpt']['student']" in text(exc)


# ------------------------------------------------------------------ renaming keys


@pytest.fixture(scope="module")
def shortcut_resnet18() -> OrderedDict[str, torch.Tensor]:
    """torchvision's resnet18 with its shortcuts named as in kuangliu/pytorch-cifar:
    `layer2.0.shortcut.0.weight` for `layer2.0.downsample.0.weight`."""
    torch.manual_seed(0)
    sd = torchvision.models.resnet18().state_dict()
    return OrderedDict((k.replace(".downsample.", ".shortcut."), v) for k, v in sd.items())


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_rename_matches_keys_that_differ_in_part(
    shortcut_resnet18: OrderedDict[str, torch.Tensor], tmp_path: Path, suffix: str
) -> None:
    g = resdsl.load(str(ROOT / "specs/resnet18.res")).graph
    path = tmp_path / f"r18{suffix}"
    if suffix == ".pth":
        torch.save(shortcut_resnet18, path)
    else:
        safetensors.torch.save_file(shortcut_resnet18, str(path))
    with pytest.raises(SpecError) as exc:
        load_state(g, path)
    assert codes(exc) == ["E0603"]
    message = text(exc)
    assert "the file's `shortcut` is the network's `downsample`" in message
    assert "`rename={'shortcut': 'downsample'}`" in message and "--rename" not in message
    for rename in ({"shortcut": "downsample"}, [(r"\.shortcut\.", ".downsample.")],
                   [("shortcut", "x"), ("x", "downsample")]):
        loaded, report = load_state(g, path, rename=rename)
        assert report.method == "name" and len(report.matched) == 122, rename
        assert len(report.renamed) == 18 and not report.unexpected
        assert ("layer2.0.shortcut.0.weight", "layer2.0.downsample.0.weight") in report.renamed
        assert np.array_equal(loaded["layer2.0.downsample.1.running_var"],
                              shortcut_resnet18["layer2.0.shortcut.1.running_var"].numpy())
        assert "(18 keys renamed) by name" in report.summary()


def test_rename_on_the_command_line(shortcut_resnet18: OrderedDict[str, torch.Tensor],
                                    tmp_path: Path) -> None:
    weights = tmp_path / "r18.safetensors"
    prefixed = {f"backbone.{k}": v for k, v in shortcut_resnet18.items()}
    safetensors.torch.save_file(prefixed, str(weights))
    out = tmp_path / "r18.onnx"
    spec = str(ROOT / "specs/resnet18.res")
    run = run_cli("compile", spec, "--to", "onnx", "--weights", str(weights), "-o", str(out),
                  "--rename", r"^backbone\.=", "--rename", "shortcut=downsample")
    assert run.code == 0, run.err
    assert "loaded 122 of 122 tensors" in run.out and "122 keys renamed" in run.out
    # A rule without `=`, or an invalid pattern, is a usage error.
    for bad in ("shortcut", "(unclosed=x", r"a=\3"):
        run = run_cli("compile", spec, "--to", "onnx", "--weights", str(weights), "-o",
                      str(out), "--rename", bad)
        assert run.code == 2 and "--rename" in run.err, (bad, run.err)


@pytest.mark.parametrize(
    ("rename", "says"),
    [("shortcut=downsample", "not a list of rules"),
     ({"(": "x"}, "missing ), unterminated subpattern"),
     ({"a": r"\1"}, "invalid group reference 1"),
     ([("a", "b", "c")], "is not a (pattern, replacement) pair"),
     ([("a", 1)], "is not a (pattern, replacement) pair"),
     ({"bn\\d": "bn"}, "the same name")])
def test_rename_mistakes_are_diagnostics(rename: Any, says: str, tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        load_state(resdsl.load(str(NET)).graph, net_state(), rename=rename)
    assert codes(exc) == ["E0609"] and says in text(exc)


def test_rename_suggestions_leave_numbers_and_last_parts_alone() -> None:
    from resdsl.weights.rename import pattern_for, suggest

    assert suggest(["layer1.0.conv.weight"], ["layer1.1.conv.weight"]) is None
    assert suggest(["fc.weight"], ["fc.bias"]) is None
    assert suggest(["a.downsample.0.weight", "a.downsample.1.weight"],
                   ["a.shortcut.0.weight", "a.shortcut.1.weight"]) == ("shortcut", "downsample")
    assert pattern_for("block", ["block.conv"]) == "block"
    assert pattern_for("block", ["block.conv", "x.myblock"]) == r"(?<![^.])block(?![^.])"


def test_the_documented_header_limits_are_the_source_s() -> None:
    from resdsl.weights._safetensors import MAX_DIGITS, MAX_RANK
    from resdsl.weights._torchzip import MAX_DIRECTORY

    docs = ROOT / "docs"
    row = next(line for line in (docs / "robustness.md").read_text("utf-8").splitlines()
               if line.startswith("| a weights file"))
    for value in (f"header {MAX_HEADER // 1_000_000} MB", f"{MAX_VALUES:,} JSON values",
                  f"{MAX_DIGITS}-digit numbers", f"{MAX_RANK} dimensions",
                  f"zip directory {MAX_DIRECTORY // 1_000_000} MB",
                  f"pickle {MAX_PICKLE // 1_000_000} MB",
                  f"{MAX_OBJECTS:,} containers and calls"):
        assert value in row, value
    for doc in ("api.md", "errors.md"):
        text = (docs / doc).read_text("utf-8")
        assert f"{MAX_PICKLE // 1_000_000} MB" in text and f"{MAX_OBJECTS:,}" in text, doc


def test_a_header_over_the_value_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    """Counted, not parsed: a header of a million empty lists would cost ~100 MB parsed."""
    path = tmp_path / "lists.safetensors"
    path.write_bytes(HOSTILE["too_many_values"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(json, "loads", lambda *a, **k: pytest.fail("the header was parsed"))
        with pytest.raises(SpecError) as exc:
            read_checkpoint(path)
    assert f"resdsl reads at most {MAX_VALUES:,}" in text(exc)


# ------------------------------------------------------------------ pickles, scanned first


def legacy_header() -> bytes:
    """The first three pickles of torch.save's legacy format: magic number, version, the
    saving system's sizes."""
    info = {"protocol_version": 1001, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}
    return b"".join(pickle.dumps(v, protocol=2) for v in (_pickle_scan.MAGIC_NUMBER, 1001, info))


def legacy_checkpoint(values: list[float], declared: int | None = None,
                      record: tuple[object, ...] | None = None,
                      keys: list[str] | None = None) -> bytes:
    """A legacy-format file (`_use_new_zipfile_serialization=False`) of one float tensor `a`,
    written as torch writes it but by hand, so that it can lie: its storage record declares
    `declared` elements (default: as many as it holds), or is `record`; its list of storages
    is `keys`."""
    storage, n = object(), len(values)

    class Tensor:
        def __reduce__(self) -> tuple[object, tuple[object, ...]]:
            return (torch._utils._rebuild_tensor_v2,
                    (storage, 0, (n,), (1,), False, OrderedDict()))

    pid = record or ("storage", torch.FloatStorage, "0", "cpu",
                     n if declared is None else declared, None)

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            return pid if obj is storage else None

    main = io.BytesIO()
    Pickler(main, protocol=2).dump(OrderedDict(a=Tensor()))
    data = n.to_bytes(8, "little") + np.asarray(values, "<f4").tobytes()
    return (legacy_header() + main.getvalue()
            + pickle.dumps(["0"] if keys is None else keys, protocol=2) + data)


def archive(data_pkl: bytes, records: dict[str, bytes] | None = None) -> bytes:
    """A zip archive laid out as torch.save lays it out, with this data.pkl."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/byteorder", "little")
        for key, data in (records or {}).items():
            z.writestr(f"archive/data/{key}", data)
        z.writestr("archive/version", "3\n")
    return out.getvalue()


def rewritten(path: Path, change: dict[str, bytes | None]) -> bytes:
    """The zip archive at `path` with the records whose names end with a key of `change`
    replaced (bytes) or left out (None)."""
    out = io.BytesIO()
    with zipfile.ZipFile(path) as old, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as new:
        for info in old.infolist():
            end = next((k for k in change if info.filename.endswith(k)), None)
            data = old.read(info) if end is None else change[end]
            if data is not None:
                new.writestr(info.filename, data)
    return out.getvalue()


def test_the_scan_allows_what_torch_allows() -> None:
    """The scan's allowlist, blocked modules and instructions are torch's own: a newer torch
    that allows more fails here, rather than refusing real checkpoints."""
    import inspect

    from torch import _weights_only_unpickler as weights_only

    assert set(_pickle_scan.ALLOWED) == set(weights_only._get_allowed_globals())
    assert list(_pickle_scan.BLOCKED_MODULES) == weights_only._blocklisted_modules
    source = inspect.getsource(weights_only.Unpickler.load)
    runs = {getattr(pickle, name)[0] for name in re.findall(r"\b([A-Z][A-Z0-9_]+)\[0\]", source)}
    scanned = {op for op in range(256) if _pickle_scan._ARGUMENT[op] != _pickle_scan._REFUSED}
    assert scanned == runs
    storage_types = {k for k, v in _pickle_scan.ALLOWED.items()
                     if isinstance(v, _pickle_scan._StorageType)}
    for name in storage_types:
        stand_in = weights_only._get_allowed_globals()[name]
        dtype = torch.uint8 if stand_in is torch.storage.UntypedStorage else stand_in.dtype
        assert _pickle_scan.ALLOWED[name].itemsize == dtype.itemsize, name  # type: ignore[attr-defined]


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("model", ["resnet18", "resnet50"])
def test_torchvision_checkpoints_load_exactly(tmp_path: Path, zipped: bool, model: str) -> None:
    torch.manual_seed(0)
    sd = getattr(torchvision.models, model)().state_dict()
    path = tmp_path / f"{model}.pth"
    torch.save(sd, path, _use_new_zipfile_serialization=zipped)
    read = read_checkpoint(path)
    assert list(read) == list(sd)
    for key, value in sd.items():
        assert read[key].dtype == value.numpy().dtype and np.array_equal(read[key], value.numpy())


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_a_timm_training_checkpoint_loads_exactly(tmp_path: Path, zipped: bool) -> None:
    """What timm's training script saves (less its argparse args, which weights_only
    refuses): the model's state_dict, its EMA's, the optimizer's state, the epoch."""
    torch.manual_seed(0)
    model = timm.create_model("resnet18")
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.zeros(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    sd = model.state_dict()
    ema = {k: v * 0.5 if v.is_floating_point() else v for k, v in sd.items()}
    path = tmp_path / "checkpoint-3.pth.tar"
    torch.save({"epoch": 3, "arch": "resnet18", "state_dict": sd, "state_dict_ema": ema,
                "optimizer": optimizer.state_dict(), "version": 2}, path,
               _use_new_zipfile_serialization=zipped)
    read = read_whole(path)
    assert read.entry == ("state_dict",) and list(read.tensors) == list(sd)
    for key, value in sd.items():
        assert np.array_equal(read.tensors[key], value.numpy()), key


def test_a_hand_written_legacy_file_is_what_torch_reads(tmp_path: Path) -> None:
    """The helper the crafted legacy files below are made with writes what torch reads."""
    path = tmp_path / "w.pth"
    path.write_bytes(legacy_checkpoint([1.0, 2.0, 3.0]))
    assert read_checkpoint(path)["a"].tolist() == [1.0, 2.0, 3.0]


_LIES: dict[str, tuple[bytes, str]] = {
    "declares 4 TB": (legacy_checkpoint([1.0, 2.0, 3.0], declared=1 << 40),
                      "its storages declare 4,398,046,511,112 bytes, but 20 follow its pickles"),
    "declares one more": (legacy_checkpoint([1.0, 2.0, 3.0], declared=4),
                          "its storages declare 24 bytes, but 20 follow its pickles"),
    "lists another storage": (legacy_checkpoint([1.0], keys=["1"]),
                              "its list of storages does not match its pickle (storage `0`)"),
    "lists a storage twice": (legacy_checkpoint([1.0], keys=["0", "0"]),
                              "its list of storages does not match its pickle (a storage twice)"),
    "negative size": (legacy_checkpoint([1.0], declared=-1), "a malformed storage record"),
    "size as text": (legacy_checkpoint([1.0], record=(
        "storage", torch.FloatStorage, "0", "cpu", "1", None)), "a malformed storage record"),
    "a module record": (legacy_checkpoint([1.0], record=("module", None, None, None, 1, None)),
                        "a persistent record of kind `module`"),
    "a short record": (legacy_checkpoint([1.0], record=("storage", torch.FloatStorage, "0")),
                       "a storage record of 3 fields, where torch.save writes 6"),
    "a view past its storage": (legacy_checkpoint([1.0], record=(
        "storage", torch.FloatStorage, "0", "cpu", 1, ("1", 0, 2))),
        "a malformed view of a storage"),
}


@pytest.mark.parametrize("name", sorted(_LIES))
def test_a_legacy_file_whose_storages_lie_is_refused_before_torch(tmp_path: Path,
                                                                  name: str) -> None:
    path = tmp_path / "lie.pth"
    content, says = _LIES[name]
    path.write_bytes(content)
    with pytest.MonkeyPatch.context() as mp:
        calls = _spy_torch_load(mp)
        with pytest.raises(SpecError) as exc:
            read_checkpoint(path)
    assert not calls, "torch.load read a file whose storages lie"
    assert codes(exc) == ["E0602"] and says in text(exc), text(exc)


def test_an_archive_whose_storages_lie_is_refused_before_torch(tmp_path: Path) -> None:
    """A storage record larger than its record in the archive: torch.load(mmap=True) would
    map the bytes after it (the next storage, the directory) into the tensor."""
    path = tmp_path / "w.pth"
    torch.save({"a": torch.arange(4.0), "b": torch.ones(2)}, path)
    with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if "/data/" in n]
        first = z.read(names[0])
    cases = {
        "short": (rewritten(path, {names[0]: first[:8]}), "declares 16 bytes, but its archive "
                  "holds 8"),
        "missing": (rewritten(path, {names[0]: None}), "which its archive lacks"),
    }
    for name, (content, says) in cases.items():
        path.write_bytes(content)
        with pytest.MonkeyPatch.context() as mp:
            calls = _spy_torch_load(mp)
            with pytest.raises(SpecError) as exc:
                read_checkpoint(path)
        assert not calls, name
        assert codes(exc) == ["E0602"] and says in text(exc), (name, text(exc))


def test_a_damaged_pickle_is_said_so_with_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with zipfile.ZipFile(path) as z:
        pickled = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    cases = {
        "not UTF-8": (pickled.replace(b"conv1.weight", b"conv1.weigh\xff"), "its pickle is "
                      "damaged ('utf-8' codec can't decode byte 0xff in position 11"),
        "cut short": (pickled[:-10], "is a truncated PyTorch checkpoint: its pickle is cut "
                      "short"),
        "underflow": (b"\x80\x02R.", "its pickle is damaged (unpickling stack underflow)"),
        "a global's name": (b"\x80\x02c" + b"x" * 2000 + b"\n.", "names a global longer "
                            "than 1,000 characters"),
    }
    for name, (content, says) in cases.items():
        damaged = rewritten(path, {"data.pkl": content})
        (tmp_path / "damaged.pth").write_bytes(damaged)
        with pytest.MonkeyPatch.context() as mp:
            calls = _spy_torch_load(mp)
            with pytest.raises(SpecError) as exc:
                read_checkpoint(tmp_path / "damaged.pth")
        assert not calls, name
        assert codes(exc) == ["E0602"] and says in text(exc), (name, text(exc))


def test_binbytes8_claiming_4_gb_is_refused_before_anything_is_allocated(tmp_path: Path
                                                                        ) -> None:
    """torch's unpickler does not run BINBYTES8; CPython's would reserve the 4 GB it claims
    before reading them. The scan's lexer refuses it by its number, having allocated
    nothing but the bytes it read."""
    import tracemalloc

    claim = b"\x80\x02\x8e" + (4 << 30).to_bytes(8, "little") + b"x" * 100 + b"."
    files = {"legacy.pth": legacy_header() + claim, "zip.pth": archive(claim)}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
        with pytest.MonkeyPatch.context() as mp:
            calls = _spy_torch_load(mp)
            tracemalloc.start()
            try:
                with pytest.raises(SpecError) as exc:
                    read_checkpoint(tmp_path / name)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
        assert not calls and codes(exc) == ["E0607"], name
        assert "the pickle instruction 142 (BINBYTES8)" in text(exc)
        assert peak < 5_000_000, f"{name}: {peak:,} bytes allocated to refuse it"


def test_a_memo_index_past_the_pickle_is_refused_before_cpython_unpickles_it(tmp_path: Path
                                                                           ) -> None:
    """`LONG_BINPUT 2**28` is 5 bytes that make CPython's unpickler allocate and zero a 4 GB
    memo (torch's keeps a dict); the lexer refuses a memo index beyond the pickle's size."""
    path = tmp_path / "w.pth"
    path.write_bytes(archive(b"\x80\x02N" + b"r" + (1 << 28).to_bytes(4, "little") + b"."))
    with pytest.MonkeyPatch.context() as mp:
        calls = _spy_torch_load(mp)
        mp.setattr(_pickle_scan, "_Unpickler", lambda *a: pytest.fail("unpickled"))
        with pytest.raises(SpecError) as exc:
            read_checkpoint(path)
    assert not calls and codes(exc) == ["E0602"]
    assert "stores an object at a memo index beyond its size" in text(exc)


def test_containers_and_calls_are_counted_against_their_limit(tmp_path: Path) -> None:
    """A pickle of nothing but empty sets costs torch's unpickler 3.3 s and 230 MB a MB;
    the lexer counts them. At the limit, torch.load is called (and finds no state_dict);
    one over, it is not."""
    for sets, refused in ((MAX_OBJECTS, False), (MAX_OBJECTS + 1, True)):
        path = tmp_path / f"{sets}.pth"
        path.write_bytes(archive(b"\x80\x02" + b"\x8f" * sets + b"."))
        with pytest.MonkeyPatch.context() as mp:
            calls = _spy_torch_load(mp)
            if refused:
                with pytest.raises(SpecError) as exc:
                    read_checkpoint(path)
                assert codes(exc) == ["E0602"]
                assert f"makes more than {MAX_OBJECTS:,} containers and calls" in text(exc)
            else:
                with pytest.raises(SpecError):  # the spy returns None: not a state_dict
                    read_checkpoint(path)
        assert bool(calls) != refused, sets


def test_a_legacy_pickle_larger_than_the_limit_is_refused_from_its_start(tmp_path: Path
                                                                        ) -> None:
    """The legacy format has no size for its pickle: only MAX_PICKLE bytes are read."""
    from resdsl.weights import io as weights_io

    path = tmp_path / "w.pth"
    path.write_bytes(legacy_header() + b"\x80\x02]q\x00(" + b"K\x01" * MAX_PICKLE + b"e.")
    reads: list[int] = []
    real = weights_io._read_at

    def counted(src: str, fd: int, offset: int, count: int) -> bytes:
        reads.append(count)
        return real(src, fd, offset, count)

    with pytest.MonkeyPatch.context() as mp:
        calls = _spy_torch_load(mp)
        mp.setattr(weights_io, "_read_at", counted)
        with pytest.raises(SpecError) as exc:
            read_checkpoint(path)
    assert not calls and codes(exc) == ["E0602"]
    assert f"holds a pickle of more than {MAX_PICKLE:,} bytes" in text(exc)
    assert sum(reads) <= MAX_PICKLE + 256


# `resdsl ARGV...` for each ARGV in a fresh process, which prints its exit codes, its peak RSS
# (VmHWM, kB) and whether torch was ever imported (torch.load cannot have run without it).
_PEAK_NO_TORCH = """
import sys
from resdsl.cli import main
codes = [main(argv) for argv in {runs!r}]
with open("/proc/self/status", encoding="ascii") as f:
    hwm = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
print("CODES", *codes, "TORCH", "torch" in sys.modules, "HWM", hwm)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_crafted_pickles_are_refused_within_memory_and_without_torch(tmp_path: Path) -> None:
    """Crafted PyTorch files, each refused by the scan before torch is imported, in one
    process whose peak RSS stays that of refusing a spec: a legacy file whose pickle is
    200 MB of valid instructions (torch's stream unpickler would take minutes and GBs), a zip
    archive whose data.pkl is 8 MB, a 9-byte memo index that makes CPython's unpickler zero
    4 GB, BINBYTES8 claiming 4 GB, a storage declaring 4 TB, and too many containers."""
    files = {
        "legacy_200MB.pth": None,
        "zip_8MB.pth": archive(b"\x80\x02]q\x00(" + b"K\x01" * 3_999_996 + b"e."),
        "memo.pth": archive(b"\x80\x02N" + b"r" + (1 << 28).to_bytes(4, "little") + b"."),
        "binbytes8.pth": legacy_header() + b"\x80\x02\x8e" + (4 << 30).to_bytes(8, "little")
        + b"x" * 100 + b".",
        "lie.pth": legacy_checkpoint([1.0, 2.0, 3.0], declared=1 << 40),
        "sets.pth": archive(b"\x80\x02" + b"\x8f" * (MAX_OBJECTS + 1) + b"."),
    }
    with open(tmp_path / "legacy_200MB.pth", "wb") as f:
        f.write(legacy_header() + b"\x80\x02]q\x00(")
        chunk = b"K\x01" * 500_000
        for _ in range(200):
            f.write(chunk)
        f.write(b"e.")
    runs = []
    for name, content in files.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
        runs.append(["compile", str(NET), "--to", "onnx", "--weights", str(tmp_path / name),
                     "-o", str(tmp_path / "out.onnx")])
    run = subprocess.run([sys.executable, "-c", _PEAK_NO_TORCH.format(runs=runs)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert "Traceback" not in run.stderr, run.stderr
    last = run.stdout.split()
    assert last[:1] == ["CODES"] and last[-2] == "HWM", (run.stdout, run.stderr)
    assert last[1:7] == ["1"] * 6, run.stderr
    assert last[7:9] == ["TORCH", "False"], "torch was imported: torch.load read a file"
    peak = int(last[-1]) * 1024
    assert peak < 400e6, f"peak RSS {peak / 1e6:.0f} MB for refused checkpoints"
    said = [line for line in run.stderr.splitlines() if line.startswith("error[")]
    assert [s[:12] for s in said] == ["error[E0602]"] * 3 + ["error[E0607]"] + [
        "error[E0602]"] * 2, run.stderr
    for says in (f"holds a pickle of more than {MAX_PICKLE:,} bytes",
                 "holds a pickle of 8,000,000 bytes", "a memo index beyond its size",
                 "instruction 142 (BINBYTES8)", "its storages declare 4,398,046,511,112 bytes",
                 f"makes more than {MAX_OBJECTS:,} containers and calls"):
        assert says in run.stderr, says
    assert not (tmp_path / "out.onnx").exists()
