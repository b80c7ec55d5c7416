"""`resdsl bench SPEC`: the latency of the compiled network in ONNX Runtime and in PyTorch
eager, side by side.

How it measures (shared/reference/onnx-graphviz-lark.md §3.3, DESIGN.md §8):
- the spec is compiled to ONNX in a temporary folder (the same model `compile --to onnx`
  writes, same seed, same weights as the PyTorch module);
- each framework runs in its own process, one after the other, so that ONNX Runtime's
  spinning threads never slow PyTorch; both get the same thread count (`--threads`,
  default: every core) through their own setting and OMP_NUM_THREADS/MKL_NUM_THREADS;
- both see the same seeded float32 input of `--batch` samples; PyTorch runs the module in
  eval mode under `torch.inference_mode()`, ONNX Runtime at its default optimisation level;
- `--warmup` untimed runs, then `--runs` timed ones (at least 20); the table shows the
  median and the minimum in milliseconds, and the ratio of the medians. Session or module
  creation is timed apart.

The processes are `python -c "from resdsl.bench_cmd import child; child()"`, which read
their job as JSON on stdin and print the timings as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from resdsl import arguments
from resdsl.arguments import COMMAND_LINE
from resdsl.diagnostics import SpecError, write_errors
from resdsl.pipeline import Options, UsageError

MIN_RUNS = 20
EXIT_OK, EXIT_SPEC = 0, 1


def add_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    b = sub.add_parser("bench", help="latency of the network in ONNX Runtime and PyTorch eager")
    b.add_argument("spec", metavar="SPEC")
    b.add_argument("--batch", type=int, default=1, help="samples per run (default 1)")
    b.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="threads for each framework (default: every core)")
    b.add_argument("--runs", type=int, default=MIN_RUNS,
                   help=f"timed runs of each (default and minimum {MIN_RUNS})")
    b.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    b.add_argument("--seed", type=int, default=0, help="seed of the initial weights")
    b.add_argument("--opset", type=int, metavar="N", help="the ONNX opset (default 17)")
    common(b)


def bench(args: argparse.Namespace, options: Options, out: TextIO, err: TextIO) -> int:
    if args.batch < 1 or args.threads < 1 or args.warmup < 0:
        raise UsageError("--batch and --threads must be at least 1, --warmup at least 0")
    if args.runs < MIN_RUNS:
        raise UsageError(f"--runs must be at least {MIN_RUNS}: a median needs enough runs")
    arguments.seed(args.seed, COMMAND_LINE)
    arguments.opset(args.opset, COMMAND_LINE)
    try:
        rows, net_name, shape = _measure(args, options, err)
    except SpecError as exc:
        write_errors(exc.diagnostics, args.format, out, err)
        return EXIT_SPEC
    if args.format == "json":
        doc = {"network": net_name, "spec": args.spec, "input": list(shape),
               "batch": args.batch, "threads": args.threads, "warmup": args.warmup,
               "runs": args.runs, "results": rows}
        out.write(json.dumps(doc, indent=2) + "\n")
    else:
        out.write(_table(args, net_name, shape, rows))
    return EXIT_OK


def _measure(args: argparse.Namespace, options: Options,
             err: TextIO) -> tuple[list[dict[str, Any]], str, tuple[int, ...]]:
    from resdsl.api import Network, check_size
    from resdsl.backends.onnx_model import require_onnx, require_onnxruntime
    from resdsl.pipeline import build

    net = Network(args.spec, build(args.spec, options))
    check_size(net.graph, None, net.result.network.name_span)
    require_onnx()
    require_onnxruntime("resdsl bench")
    progress = err.isatty()
    err.write(f"[1/3] compiling {net.name} to ONNX\n")
    job = {
        "spec": str(Path(args.spec).resolve()), "defines": dict(options.defines),
        "input_shape": list(options.input_shape) if options.input_shape else None,
        "network": options.network, "seed": args.seed, "batch": args.batch,
        "threads": args.threads, "warmup": args.warmup, "runs": args.runs,
        "progress": progress,
    }
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="resdsl-bench-") as tmp:
        model = str(Path(tmp) / f"{net.name}.onnx")
        net.save_onnx(model, args.seed, opset=args.opset)
        for step, kind in ((2, "onnxruntime"), (3, "torch")):
            label = "ONNX Runtime" if kind == "onnxruntime" else "PyTorch eager"
            err.write(f"[{step}/3] {label}: {args.warmup} warm-up and {args.runs} timed runs "
                      f"in a separate process, {args.threads} thread"
                      f"{'s' if args.threads != 1 else ''}\n")
            rows.append(_run_child({**job, "kind": kind, "model": model}, args.threads))
    return rows, net.name, net.input_shape


def _run_child(job: dict[str, Any], threads: int) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    proc = subprocess.run(
        [sys.executable, "-c", "from resdsl.bench_cmd import child; child()"],
        input=json.dumps(job), stdout=subprocess.PIPE,
        stderr=None if job["progress"] else subprocess.PIPE, text=True, env=env,
    )
    if proc.returncode != 0:
        lines = (proc.stderr or "").strip().splitlines()
        raise RuntimeError(f"the {job['kind']} benchmark process failed: "
                           + (lines[-1] if lines else f"exit code {proc.returncode}"))
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _table(args: argparse.Namespace, name: str, shape: tuple[int, ...],
           rows: list[dict[str, Any]]) -> str:
    from resdsl.ir.ops import fmt_shape

    lines = [
        f"{name} ({args.spec}), input {fmt_shape(shape)}, batch {args.batch}, "
        f"{args.threads} thread{'s' if args.threads != 1 else ''}; {args.warmup} warm-up and "
        f"{args.runs} timed runs of each, in separate processes",
        "",
    ]
    table = [("backend", "median ms", "min ms", "setup s")]
    for r in rows:
        if r.get("missing"):
            table.append((r["label"], "-", "-", "-"))
            continue
        table.append((r["label"], f"{r['median_ms']:.2f}", f"{r['min_ms']:.2f}",
                      f"{r['setup_s']:.2f}"))
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        lines.append(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  "
                     f"{row[3]:>{widths[3]}}")
    lines.append("")
    ort, eager = rows
    if eager.get("missing"):
        lines.append("PyTorch is not installed: no eager comparison "
                     "(`pip install resdsl[torch]` adds it)")
    else:
        ratio = ort["median_ms"] / eager["median_ms"]
        lines.append(f"ONNX Runtime / PyTorch eager (medians): {ratio:.2f}")
    lines.append("setup: creating the ONNX Runtime session, or building the PyTorch module")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ the measuring process


def child() -> None:
    job = json.loads(sys.stdin.read())
    runner = _onnxruntime if job["kind"] == "onnxruntime" else _torch
    result = runner(job)
    print(json.dumps(result))


def _summary(label: str, times: list[float], setup: float) -> dict[str, Any]:
    ms = [t * 1000 for t in times]
    return {"label": label, "median_ms": statistics.median(ms), "min_ms": min(ms),
            "setup_s": setup, "times_ms": ms}


def _timed(job: dict[str, Any], label: str, run: Callable[[], object]) -> list[float]:
    total = job["warmup"] + job["runs"]
    times: list[float] = []
    for i in range(total):
        start = time.perf_counter()
        run()
        elapsed = time.perf_counter() - start
        if i >= job["warmup"]:
            times.append(elapsed)
        if job["progress"]:
            sys.stderr.write(f"\r      {label}: run {i + 1}/{total}")
            sys.stderr.flush()
    if job["progress"]:
        sys.stderr.write("\n")
    return times


def _input(job: dict[str, Any]) -> Any:
    from resdsl.api import Network
    from resdsl.verify import sample_input

    net = Network(job["spec"], _build(job))
    return net, sample_input(net.input_shape, job["batch"])


def _build(job: dict[str, Any]) -> Any:
    from resdsl.pipeline import build

    shape = tuple(job["input_shape"]) if job["input_shape"] else None
    return build(job["spec"], Options(job["defines"], shape, job["network"]))


def _onnxruntime(job: dict[str, Any]) -> dict[str, Any]:
    import onnxruntime as ort

    _, x = _input(job)
    so = ort.SessionOptions()
    so.intra_op_num_threads = job["threads"]
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    start = time.perf_counter()
    sess = ort.InferenceSession(job["model"], so, providers=["CPUExecutionProvider"])
    setup = time.perf_counter() - start
    feed = {"input": x}
    label = f"ONNX Runtime {ort.__version__}"
    times = _timed(job, label, lambda: sess.run(None, feed))
    return _summary(label, times, setup)


def _torch(job: dict[str, Any]) -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        return {"label": "PyTorch eager", "missing": True}
    net, x = _input(job)
    torch.set_num_threads(job["threads"])
    start = time.perf_counter()
    model = net.to_torch(job["seed"]).eval()
    setup = time.perf_counter() - start
    xt = torch.from_numpy(x)
    label = f"PyTorch {torch.__version__.split('+')[0]} eager"
    with torch.inference_mode():
        times = _timed(job, label, lambda: model(xt))
    return _summary(label, times, setup)
