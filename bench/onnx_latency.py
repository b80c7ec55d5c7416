"""ONNX Runtime latency of resdsl's ONNX files against `torch.onnx.export`'s, and their
node counts.

What: for timm's dpn92 and torchvision's resnet50 and densenet121 (and, with `--networks
fcn_resnet50`, torchvision's FCN: issue #16's bar), three files that hold
the same weights (the reference module at random init, BN statistics randomised, its
state_dict saved and compiled in with `--weights`):
- `resdsl compile specs/NET.res --to onnx --weights W` (BatchNormalization kept: the
  default; ONNX Runtime fuses it);
- the same with `--fold-bn` (BN folded into the conv before it, as the exporter's optimiser
  does);
- `torch.onnx.export` of the reference module (the default exporter, dynamo, optimised; a
  dynamic batch axis), the file the bar compares with.
The largest output difference between ours and the exporter's is printed as a check.

How: each measurement is its own process (ONNX Runtime's thread pool never shares a process
with another session), `--threads` intra-op threads (default 1, the steady setting on a
small shared machine), sequential execution, the default optimisation level (ORT_ENABLE_ALL),
one seeded float32 input. `--warmup` runs, then `--runs` timed runs (`--runs-large` at batch
16); median wall time, and median CPU time of the calling thread (with one intra-op thread
ONNX Runtime computes on it; less disturbed by other processes on a shared machine).
`--rounds` rounds of the three files, the order rotating each round; the figure is the median
over rounds. The graph ONNX Runtime makes of each file (ORT_ENABLE_EXTENDED) is printed too.

Bar (issue 6): median(ours) / median(exporter) ≤ 1.05 at batch 1 and 16 for every network,
and node counts no higher than the exporter's.

Run: `.venv/bin/python bench/onnx_latency.py` (about 10 minutes on 2 cores).
It prints; it asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BAR = 1.05

REFERENCE = """
import sys
import torch
name, out, weights = sys.argv[1], sys.argv[2], sys.argv[3]
torch.manual_seed(0)
if name.startswith("dpn"):
    import timm
    model = timm.create_model(name, pretrained=False)
elif name.startswith(("fcn_", "deeplabv3_")):  # aux_loss=False: the one output "out"
    import torchvision
    model = getattr(torchvision.models.segmentation, name)(weights=None, weights_backbone=None)
else:
    import torchvision
    model = getattr(torchvision.models, name)()
gen = torch.Generator().manual_seed(1)
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            c = m.running_mean.shape
            m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
            m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=gen))
model.eval()
torch.save(model.state_dict(), weights)
# A segmentation model returns an OrderedDict ("out"); the other references one tensor.
segmentation = name.startswith(("fcn_", "deeplabv3_"))
torch.onnx.export(model, (torch.randn(2, 3, 224, 224),), out, dynamic_shapes=({0: "batch"},),
                  input_names=["input"], output_names=["out" if segmentation else "output"],
                  verbose=False)
"""

MEASURE = """
import json, statistics, sys, time
import numpy as np
import onnxruntime as ort
path, batch, threads, warmup, runs = sys.argv[1], *map(int, sys.argv[2:6])
so = ort.SessionOptions()
so.intra_op_num_threads = threads
so.inter_op_num_threads = 1
so.log_severity_level = 3
sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224), dtype=np.float32)
for _ in range(warmup):
    y = sess.run(None, {"input": x})[0]
times, cpu = [], []
for _ in range(runs):
    t, c = time.perf_counter(), time.thread_time()
    sess.run(None, {"input": x})
    times.append(time.perf_counter() - t)
    cpu.append(time.thread_time() - c)
# The first output's first values (a segmentation map is large): the check of equal numbers.
print(json.dumps({"median": statistics.median(times), "min": min(times),
                  "cpu": statistics.median(cpu), "out": y[:1].reshape(1, -1)[:, :4096].tolist()}))
"""


def run(argv: list[str], env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:5])} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def nodes(path: Path) -> int:
    import onnx

    return len(onnx.load(str(path), load_external_data=False).graph.node)


def optimised(path: Path, tmp: str) -> str:
    """The graph ONNX Runtime runs (ORT_ENABLE_EXTENDED, before the hardware-specific layout
    pass): its node count and ops, to show what the runtime makes of each file."""
    from collections import Counter

    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(Path(tmp, "optimised.onnx"))
    so.log_severity_level = 3
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    graph = onnx.load(so.optimized_model_filepath, load_external_data=False).graph
    ops = Counter(n.op_type for n in graph.node)
    return f"{len(graph.node)} ({', '.join(f'{k} {v}' for k, v in sorted(ops.items()))})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--networks", default="resnet50,densenet121,dpn92")
    p.add_argument("--batches", default="1,16")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--runs-large", type=int, default=10, help="timed runs at batch ≥ 8")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    import onnxruntime

    threads = str(args.threads)
    env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    print(f"ONNX Runtime {onnxruntime.__version__} latency, {args.threads} thread(s), "
          f"224×224, median of {args.rounds} round(s) of per-process medians "
          f"({args.runs} runs, {args.runs_large} at batch ≥ 8, after {args.warmup} "
          f"warm-ups)\n")
    verdicts = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.networks.split(","):
            ref, weights = Path(tmp, f"{name}_ref.onnx"), Path(tmp, f"{name}.pth")
            run([sys.executable, "-c", REFERENCE, name, str(ref), str(weights)])
            files = {"ref": ref}
            for label, extra in (("ours", []), ("fold", ["--fold-bn"])):
                files[label] = Path(tmp, f"{name}_{label}.onnx")
                run([sys.executable, "-m", "resdsl", "compile", f"specs/{name}.res", "--to",
                     "onnx", "--weights", str(weights), "--input", "3x224x224", "-o",
                     str(files[label]), *extra])
            counts = {k: nodes(v) for k, v in files.items()}
            print(f"{name}: nodes: resdsl {counts['ours']} (BN kept), {counts['fold']} "
                  f"(--fold-bn); torch.onnx.export {counts['ref']}")
            for label, what in (("ours", "resdsl"), ("fold", "resdsl --fold-bn"),
                                ("ref", "torch.onnx.export")):
                print(f"  as ONNX Runtime optimises it, {what}: {optimised(files[label], tmp)}")
            for batch in (int(b) for b in args.batches.split(",")):
                n = args.runs if batch < 8 else args.runs_large
                medians: dict[str, list[float]] = {k: [] for k in files}
                cpus: dict[str, list[float]] = {k: [] for k in files}
                outs: dict[str, list[float]] = {}
                order = ["ours", "fold", "ref"]
                for r in range(args.rounds):
                    for label in order[r % 3:] + order[:r % 3]:
                        doc = json.loads(run([sys.executable, "-c", MEASURE,
                                              str(files[label]), str(batch), threads,
                                              str(args.warmup), str(n)], env))
                        medians[label].append(doc["median"] * 1000)
                        cpus[label].append(doc["cpu"] * 1000)
                        outs[label] = doc["out"][0]
                med = {k: statistics.median(v) for k, v in medians.items()}
                cpu = {k: statistics.median(v) for k, v in cpus.items()}
                diff = max(abs(a - b) for a, b in zip(outs["ours"], outs["ref"], strict=True))
                ratio, ratio_fold = med["ours"] / med["ref"], med["fold"] / med["ref"]
                print(f"  batch {batch:>2}: resdsl {med['ours']:8.1f} ms, --fold-bn "
                      f"{med['fold']:8.1f} ms, torch.onnx.export {med['ref']:8.1f} ms; ratio "
                      f"{ratio:.3f} (--fold-bn {ratio_fold:.3f}); CPU-time ratio "
                      f"{cpu['ours'] / cpu['ref']:.3f} (--fold-bn {cpu['fold'] / cpu['ref']:.3f}); "
                      f"max |Δ| of outputs {diff:.1e}", flush=True)
                verdicts.append((name, batch, ratio, ratio_fold))
            verdicts.append((name, -1, counts["ours"] / counts["ref"],
                             counts["fold"] / counts["ref"]))
    print()
    latency = [v for v in verdicts if v[1] > 0]
    worst = max(v[2] for v in latency)
    worst_fold = max(v[3] for v in latency)
    print(f"the bar (latency ≤ {BAR}× the exporter's file): worst ratio {worst:.3f} with BN "
          f"kept, {worst_fold:.3f} with --fold-bn: "
          f"{'met' if max(worst, worst_fold) <= BAR else 'NOT met'}")
    node_rows = [v for v in verdicts if v[1] < 0]
    kept_ok = all(v[2] <= 1 for v in node_rows)
    fold_ok = all(v[3] <= 1 for v in node_rows)
    print(f"the bar (node counts no higher than the exporter's): with --fold-bn "
          f"{'met' if fold_ok else 'NOT met'}; with BN kept (the default, which the exporter "
          f"does not keep) {'met' if kept_ok else 'not met'}")


if __name__ == "__main__":
    main()
