"""The checkpoint reader's resource contract: every refusal of a PyTorch file within 5 s of CPU
and 1 GB (docs/robustness.md), and what the pickle limits (resdsl/weights/_pickle_scan.py:
MAX_PICKLE bytes, MAX_OBJECTS containers and calls) let through to torch.load.

What, in fresh `resdsl compile tests/golden/weights/net.res --to onnx --weights FILE`
processes, as a user runs them (interpreter start and imports included; the net is small, so
every case ends in a refusal: of the file, or of its keys):

- a baseline: a state_dict of one tensor (the cost of Python, resdsl, onnx and torch);
- the largest pickles the scan admits, which torch then reads: a valid state_dict as large as
  the limits allow (one-element tensors with short keys, the most tensors a MB), in the zip
  and the legacy format; and crafted pickles at the limits (a megabyte of NONE, as many empty
  sets as MAX_OBJECTS allows) that torch unpickles to something that is not a state_dict;
- files the scan refuses: a legacy file with a 200 MB pickle of valid instructions, a zip
  archive whose data.pkl is 8 MB, a 9-byte memo index that would make CPython's unpickler
  zero 4 GB, BINBYTES8 claiming 4 GB, a storage that declares 4 TB in a small file, and a
  pickle of empty sets over MAX_OBJECTS;
- for comparison, what resdsl did before the scan: torch.load alone on a legacy file whose
  pickle is 20 MB of valid instructions.

For each: exit code, CPU (user + system, `os.wait4`), peak RSS (VmHWM) and whether torch was
imported; R runs (default 3), median CPU, largest RSS. Then, in this process, the CPU time of
the scan alone and of torch.load alone on the admitted files (median of R).

The machine is small and shared: CPU time is inflated by other load (2 busy processes on 2
cores roughly double it); the load average is printed before and after.

Run: `.venv/bin/python bench/checkpoint_limits.py [--runs R]` (about two minutes). It prints;
it asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from resdsl.weights import _pickle_scan  # noqa: E402
from resdsl.weights._pickle_scan import MAX_OBJECTS, MAX_PICKLE  # noqa: E402

NET = ROOT / "tests" / "golden" / "weights" / "net.res"
_CHILD = """
import sys
from resdsl.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status", encoding="ascii") as f:
    hwm = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
print("RESULT", code, hwm, "torch" in sys.modules, file=sys.stderr)
"""


# ------------------------------------------------------------------ the files


def legacy_header() -> bytes:
    """The legacy format's first three pickles: magic number, version, system sizes."""
    info = {"protocol_version": 1001, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}
    return b"".join(pickle.dumps(v, protocol=2) for v in (_pickle_scan.MAGIC_NUMBER, 1001, info))


def archive(data_pkl: bytes, records: dict[str, bytes] | None = None) -> bytes:
    """A zip archive as torch.save lays it out, with this data.pkl."""
    import io

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/byteorder", "little")
        for key, data in (records or {}).items():
            z.writestr(f"archive/data/{key}", data)
        z.writestr("archive/version", "3\n")
    return out.getvalue()


def largest_state_dict(zipped: bool, path: Path) -> int:
    """Save the state_dict with the most one-element tensors that the limits admit; its
    tensor count."""
    import torch

    def save(n: int) -> tuple[int, int]:
        sd = OrderedDict((f"t{i}", torch.zeros(1)) for i in range(n))
        torch.save(sd, path, _use_new_zipfile_serialization=zipped)
        if zipped:
            with zipfile.ZipFile(path) as z:
                data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
            window = _pickle_scan._Window(data, whole=True)
            try:
                window.walk(0)
            except _pickle_scan.Damaged:
                return len(data), MAX_OBJECTS + 1
            return len(data), window.objects
        size = path.stat().st_size
        head = path.read_bytes()[:MAX_PICKLE]
        window = _pickle_scan._Window(head, whole=len(head) >= size)
        at = 0
        try:
            for _ in range(5):
                at = window.walk(at)
        except _pickle_scan.Damaged:
            return MAX_PICKLE + 1, MAX_OBJECTS + 1
        return at, window.objects

    low, high = 1, MAX_PICKLE // 40
    while low < high:  # the largest n that fits
        mid = (low + high + 1) // 2
        size, objects = save(mid)
        if size <= MAX_PICKLE and objects <= MAX_OBJECTS:
            low = mid
        else:
            high = mid - 1
    save(low)
    return low


def crafted(folder: Path) -> dict[str, Path]:
    """Pickles the scan admits (names start with `admitted`) and pickles it refuses."""
    files: dict[str, bytes] = {}
    body = MAX_PICKLE - 4
    files["admitted: zip, 1 MB of NONE"] = archive(b"\x80\x02" + b"N" * body + b".")
    sets = MAX_OBJECTS - 10
    files[f"admitted: zip, {sets:,} empty sets, then NONE"] = archive(
        b"\x80\x02" + b"\x8f" * sets + b"N" * (body - sets) + b".")
    files["refused: zip, 9-byte memo index of 2**28"] = archive(
        b"\x80\x02N" + b"r" + (1 << 28).to_bytes(4, "little") + b".")
    files["refused: legacy, BINBYTES8 claiming 4 GB"] = (
        legacy_header() + b"\x80\x02\x8e" + (4 << 30).to_bytes(8, "little") + b"x" * 100 + b".")
    files[f"refused: zip, {MAX_OBJECTS + 1:,} empty sets"] = archive(
        b"\x80\x02" + b"\x8f" * (MAX_OBJECTS + 1) + b".")
    files["refused: legacy, a storage declaring 4 TB"] = legacy_lie()
    paths = {}
    for i, (name, data) in enumerate(files.items()):
        paths[name] = folder / f"case{i}.pth"
        paths[name].write_bytes(data)
    # The large ones, written in chunks.
    paths["refused: zip, an 8 MB data.pkl"] = folder / "zip8.pth"
    paths["refused: zip, an 8 MB data.pkl"].write_bytes(
        archive(b"\x80\x02]q\x00(" + b"K\x01" * 3_999_996 + b"e."))
    paths["refused: legacy, a 200 MB pickle"] = folder / "legacy200.pth"
    with open(paths["refused: legacy, a 200 MB pickle"], "wb") as f:
        f.write(legacy_header() + b"\x80\x02]q\x00(")
        chunk = b"K\x01" * 500_000
        for _ in range(200):
            f.write(chunk)
        f.write(b"e.")
    return paths


def legacy_lie() -> bytes:
    """A legacy file whose one storage declares 2**40 floats (4 TB) and holds 3."""
    import torch

    class Storage:
        pass

    storage = Storage()

    class Tensor:
        def __reduce__(self) -> tuple[object, tuple[object, ...]]:
            return (torch._utils._rebuild_tensor_v2,
                    (storage, 0, (3,), (1,), False, OrderedDict()))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            if obj is storage:
                return ("storage", torch.FloatStorage, "0", "cpu", 1 << 40, None)
            return None

    import io

    out = io.BytesIO()
    Pickler(out, protocol=2).dump(OrderedDict(a=Tensor()))
    return (legacy_header() + out.getvalue() + pickle.dumps(["0"], protocol=2)
            + (3).to_bytes(8, "little") + b"\0" * 12)


# ------------------------------------------------------------------ measuring


def run_cli(weights: Path, out: Path) -> tuple[int, float, int, bool]:
    """exit code, CPU s, peak RSS bytes, torch imported."""
    argv = ["compile", str(NET), "--to", "onnx", "--weights", str(weights), "-o", str(out)]
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.stderr is not None
    err = proc.stderr.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    line = next((x for x in err.splitlines() if x.startswith("RESULT")), "")
    if not line or "Traceback" in err:
        print(err)
        return os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime, 0, False
    _, code, hwm, imported = line.split()
    return int(code), usage.ru_utime + usage.ru_stime, int(hwm) * 1024, imported == "True"


def torch_load_alone(path: Path) -> tuple[int, float, int]:
    """torch.load(weights_only=True) of `path` in a fresh process: exit code, CPU s, peak
    RSS bytes (ru_maxrss)."""
    code = f"import torch; torch.load({str(path)!r}, weights_only=True)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    return (os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss * 1024)


def cpu_of(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.process_time()
        with contextlib.suppress(Exception):  # the point is the time to the refusal
            fn()
        times.append(time.process_time() - t)
    return statistics.median(times)


def scan(path: Path) -> None:
    from resdsl.weights import _torchzip

    size = path.stat().st_size
    with open(path, "rb") as f:
        if f.read(2) == b"PK":
            a = _torchzip.check(f, size)
            _pickle_scan.scan_archive(a.pickle, a.records)
        else:
            f.seek(0)
            _pickle_scan.scan_legacy(f.read(MAX_PICKLE), size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}; limits: pickle {MAX_PICKLE:,} "
          f"bytes, {MAX_OBJECTS:,} containers and calls")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        import torch

        cases = {"baseline: zip, a state_dict of 1 tensor": folder / "one.pth"}
        torch.save({"t": torch.zeros(1)}, cases["baseline: zip, a state_dict of 1 tensor"])
        for zipped in (True, False):
            path = folder / f"largest_{zipped}.pth"
            n = largest_state_dict(zipped, path)
            cases[f"admitted: {'zip' if zipped else 'legacy'}, valid state_dict of {n:,} "
                  "tensors"] = path
        cases |= crafted(folder)
        print(f"\n{'case':58} {'exit':>4} {'CPU s':>6} {'peak MB':>8} torch")
        for name, path in cases.items():
            rows = [run_cli(path, folder / "out.onnx") for _ in range(args.runs)]
            cpu = statistics.median(r[1] for r in rows)
            rss = max(r[2] for r in rows)
            flags = "imported" if rows[0][3] else "-"
            print(f"{name:58} {rows[0][0]:>4} {cpu:>6.2f} {rss / 1e6:>8.0f} {flags}", flush=True)

        before = folder / "legacy20.pth"
        with open(before, "wb") as f:
            f.write(legacy_header() + b"\x80\x02]q\x00(" + b"K\x01" * 10_000_000 + b"e.")
        code, cpu, rss = torch_load_alone(before)
        print(f"{'before: torch.load alone, legacy, a 20 MB pickle':58} {code:>4} {cpu:>6.2f} "
              f"{rss / 1e6:>8.0f} (what resdsl ran before the scan; 200 MB is ten times this)")
        print(f"\nin process, CPU s (median of {args.runs}): the scan alone, torch.load alone")
        for name, path in cases.items():
            scanned = f"{name:58} scan {cpu_of(partial(scan, path), args.runs):6.3f}"
            if name.startswith("refused"):
                print(scanned)
                continue
            mapped = path.read_bytes()[:2] == b"PK"
            load = partial(torch.load, path, map_location="cpu", weights_only=True, mmap=mapped)
            print(f"{scanned}  torch.load {cpu_of(load, args.runs):6.3f}", flush=True)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
