"""The command line: arguments → library call → diagnostics → exit code.

Exit codes: 0 ok, 1 the spec has errors, 2 usage error, 3 internal error (a bug in resdsl),
130 interrupted (Ctrl-C, SIGINT), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from typing import TextIO

from resdsl import __version__, arguments
from resdsl.api import Network
from resdsl.arguments import COMMAND_LINE, ArgumentError
from resdsl.backends.torch_module import build_module
from resdsl.diagnostics import (
    Diagnostic,
    SpecError,
    error,
    render_all_text,
    render_json,
    write_errors,
)
from resdsl.ir.ops import fmt_shape
from resdsl.outputs import check_output
from resdsl.passes.counts import output_rows, rollup, totals
from resdsl.pipeline import Options, Result, UsageError, build
from resdsl.syntax.parser import MAX_FILE_BYTES

# What standard input is called when `--stdin-filename` does not say (as Python names it).
STDIN_NAME = "<stdin>"

EXIT_OK, EXIT_SPEC, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
# 128 + the signal's number, as a shell reports a process that a signal ended.
EXIT_INTERRUPTED, EXIT_TERMINATED = 128 + signal.SIGINT, 128 + signal.SIGTERM
# 128 + SIGPIPE (13): the reader of stdout went away (`resdsl info ... | head -1`).
EXIT_BROKEN_PIPE = 141
TARGETS = {"python": ".py", "torch": ".pt2", "onnx": ".onnx", "hub": ""}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="resdsl", description="Compiler for residual-family network specs.")
    p.add_argument("--version", action="version", version=f"resdsl {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME=VALUE",
                        help="override a network parameter, e.g. -D classes=10")
        sp.add_argument("--input", dest="input_shape", metavar="CxHxW",
                        help="override the input shape, e.g. 3x32x32")
        sp.add_argument("--network", metavar="NAME",
                        help="the network to use when a spec defines several")
        sp.add_argument("--format", choices=("text", "json"), default="text")
        _features_option(sp)

    check = sub.add_parser("check", help="check specs and report every mistake")
    check.add_argument("specs", nargs="+", metavar="SPEC",
                       help="spec files; `-` reads one from standard input")
    check.add_argument("--stdin-filename", metavar="PATH", default=STDIN_NAME,
                       help="the path standard input stands for: its name in diagnostics, "
                       "and the folder its `use`s resolve in (default: the working folder)")
    common(check)
    info = sub.add_parser("info", help="parameters and MACs per stage and block")
    info.add_argument("spec", metavar="SPEC")
    info.add_argument("--depth", type=int, default=2,
                      help="levels of the module hierarchy to show (default 2)")
    common(info)
    comp = sub.add_parser("compile", help="compile a spec to Python source, a PyTorch program "
                          "or an ONNX model")
    comp.add_argument("spec", metavar="SPEC")
    comp.add_argument("--to", dest="target", choices=TARGETS, required=True,
                      help="python: standalone PyTorch source (.py); torch: a torch.export "
                      "archive with the weights (.pt2); onnx: an ONNX model with the weights "
                      "(.onnx), emitted without torch; hub: a torch.hub folder (hubconf.py, "
                      "the source and, with --weights, a checkpoint)")
    comp.add_argument("-o", dest="output", metavar="OUT",
                      help="the output file, or folder with --to hub (default: the "
                      "network's name, or a zoo model's, with the target's extension, in the "
                      "current folder); it may also follow the options: --to hub DIR")
    comp.add_argument("--seed", type=int, default=0, help="seed of the initial weights")
    comp.add_argument("--weights", metavar="FILE",
                      help="a .pth/.pt or .safetensors state_dict to load")
    comp.add_argument("--no-strict", dest="strict", action="store_false",
                      help="with --weights: keep the initial value of missing keys and ignore "
                      "unexpected ones")
    comp.add_argument("--replace-head", action="store_true",
                      help="with --weights: re-initialise the classifier when its shape differs "
                      "(fine-tuning with -D classes=N)")
    comp.add_argument("--rename", action="append", default=[], type=_rename_rule,
                      metavar="PATTERN=REPL",
                      help="with --weights: rename the checkpoint's keys before matching them "
                      "(a Python regular expression and its re.sub replacement; repeatable, "
                      "applied in order), e.g. --rename shortcut=downsample")
    comp.add_argument("--allow-nonfinite", action="store_true",
                      help="with --weights: load NaN or infinite weights instead of refusing "
                      "them")
    comp.add_argument("--zero-init-residual", action="store_true",
                      help="start the last BN of every residual branch at 0 (torchvision's "
                      "zero_init_residual)")
    comp.add_argument("--max-params", type=int, metavar="N",
                      help="refuse networks with more parameters and buffers than N "
                      "(default 2,000,000,000)")
    comp.add_argument("--opset", type=int, metavar="N",
                      help="with --to onnx: the ONNX opset, 13 to 21 (default 17)")
    comp.add_argument("--fold-bn", action="store_true",
                      help="with --to onnx: fold each BatchNorm that follows a conv into it")
    comp.add_argument("--verify", action="store_true",
                      help="with --to onnx: check the file and run it in ONNX Runtime on a "
                      "random input, against the PyTorch backend when torch is installed")
    common(comp)
    _draw_parser(sub)
    from resdsl.bench_cmd import add_parser as add_bench

    add_bench(sub, common)
    from resdsl.paths_cmd import add_parser as add_paths

    add_paths(sub, common)
    from resdsl.lsp.command import add_parser as add_lsp

    add_lsp(sub)

    from resdsl.fmt_cmd import add_parser as add_fmt

    add_fmt(sub)
    from resdsl.zoo_cmd import add_parser as add_zoo

    add_zoo(sub)
    return p


def _features_option(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--features", nargs="?", const="all", metavar="INDICES", type=_indices,
                    help="the network's backbone features instead (timm's features_only): "
                    "cut after its feature points, each an output; INDICES chooses some "
                    "(e.g. 1,2,3 or =-1; default all)")


def _indices(text: str) -> str:
    """`--features`'s value, checked as it is read: `--features SPEC` (the spec taken for
    the indices) is reported as such, not as a missing SPEC."""
    if text == "all":  # the bare option's value
        return text
    try:
        arguments.out_indices(text, COMMAND_LINE)
    except ArgumentError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _rename_rule(text: str) -> tuple[str, str]:
    from resdsl.weights.rename import parse_rule

    try:
        return parse_rule(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _options(args: argparse.Namespace) -> Options:
    defines: dict[str, str] = {}
    for item in args.defines:
        name, sep, value = item.partition("=")
        if not sep or not name.strip().isidentifier():
            raise UsageError(f"-D takes NAME=VALUE, not `{item}`")
        defines[name.strip()] = value
    shape = arguments.input_shape(args.input_shape, COMMAND_LINE)
    chosen = args.features
    indices = None if chosen in (None, "all") else arguments.out_indices(chosen, COMMAND_LINE)
    return Options(defines, shape, args.network, features=chosen is not None,
                   out_indices=indices)


def _report(diagnostics: Sequence[Diagnostic], fmt: str, err: TextIO) -> None:
    if diagnostics and fmt == "text":
        err.write(render_all_text(diagnostics))


def _read_stdin() -> bytes:
    """Standard input's bytes, one more than a spec may have at most: the loader refuses a
    longer text (E0003) as it does a file, without reading an endless stream to its end."""
    return sys.stdin.buffer.read(MAX_FILE_BYTES + 1)


def _check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    options = _options(args)
    status = EXIT_OK
    collected: list[Diagnostic] = []
    if args.specs.count("-") > 1:
        raise UsageError("check: `-` (standard input) may be given once")
    for spec in args.specs:
        try:
            if spec == "-":
                spec = args.stdin_filename
                result = build(spec, options, _read_stdin())
            else:
                result = build(spec, options)
        except SpecError as exc:
            collected += exc.diagnostics
            _report(exc.diagnostics, args.format, err)
            status = EXIT_SPEC
            continue
        collected += result.warnings
        _report(result.warnings, args.format, err)
        if args.format == "text":
            t = totals(result.graph)
            out.write(
                f"{spec}: ok ({result.network.name}: {len(result.graph)} nodes, "
                f"{t.params:,} parameters, {t.macs / 1e9:.3f} GMACs)\n"
            )
    if args.format == "json":
        out.write(render_json(collected))
    return status


def _count(n: int, noun: str) -> str:
    """`1 output`, `2 outputs`."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _macs(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(n)


def _info_text(spec: str, result: Result, depth: int) -> str:
    g = result.graph
    t = totals(g)
    rows = rollup(g, depth)
    input_shape = fmt_shape(g.node(0).shape)
    table = [("module", "kind", "output", "params", "MACs")]
    for r in rows:
        table.append(("  " * (r.depth - 1) + r.path, r.kind, fmt_shape(r.shape),
                      f"{r.params:,}", _macs(r.macs)))
    final = (_count(len(g.outputs), "output") if g.outputs
             else fmt_shape(g.node(g.output or 0).shape))
    table.append(("total", "", final, f"{t.params:,}",
                  _macs(t.macs)))
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    lines = [f"{result.network.name} ({spec}), input {input_shape}", ""]
    for i, row in enumerate(table):
        if i == len(table) - 1:
            lines.append("-" * (sum(widths) + 8))
        lines.append(
            f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  "
            f"{row[3]:>{widths[3]}}  {row[4]:>{widths[4]}}".rstrip()
        )
    lines += [
        "",
        f"{t.params:,} parameters, {t.macs / 1e9:.3f} GMACs "
        f"({t.macs:,} multiply-accumulates of conv, linear and matmul ops)",
    ]
    if result.feature_info is not None:
        rows_f = [("index", "module", "channels", "reduction", "shape")] + [
            (str(p.index), p.module, str(p.num_chs), str(p.reduction), fmt_shape(p.shape))
            for p in result.feature_info]
        w = [max(len(row[i]) for row in rows_f) for i in range(5)]
        lines += ["", f"{_count(len(rows_f) - 1, 'feature output')} (timm's feature_info):"]
        lines += [f"{a:>{w[0]}}  {b:<{w[1]}}  {c:>{w[2]}}  {d:>{w[3]}}  {e}".rstrip()
                  for a, b, c, d, e in rows_f]
    if g.outputs:
        outputs = [("output", "shape", "params", "MACs")] + [
            (str(o.name), fmt_shape(o.shape), f"{o.params:,}", _macs(o.macs))
            for o in output_rows(g)]
        w = [max(len(row[i]) for row in outputs) for i in range(4)]
        each = "each " if len(outputs) > 2 else ""
        lines += ["", f"{_count(len(outputs) - 1, 'output')}, {each}with the parameters and MACs "
                  "it is computed from:"]
        lines += [f"{a:<{w[0]}}  {b:<{w[1]}}  {c:>{w[2]}}  {d:>{w[3]}}".rstrip()
                  for a, b, c, d in outputs]
    return "\n".join(lines) + "\n"


def _info(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    arguments.depth(args.depth, COMMAND_LINE)
    try:
        result = build(args.spec, _options(args))
    except SpecError as exc:
        write_errors(exc.diagnostics, args.format, out, err)
        return EXIT_SPEC
    _report(result.warnings, args.format, err)
    if args.format == "text":
        out.write(_info_text(args.spec, result, args.depth))
        return EXIT_OK
    g = result.graph
    t = totals(g)
    doc = {
        "network": result.network.name,
        "spec": args.spec,
        "input": list(g.node(0).shape),
        "output": list(g.node(g.output or 0).shape),
        "params": t.params,
        "macs": t.macs,
        "rows": [
            {"path": r.path, "depth": r.depth, "kind": r.kind, "shape": list(r.shape),
             "params": r.params, "macs": r.macs}
            for r in rollup(g, args.depth)
        ],
        # For a features network (--features), its feature points, in output order.
        "features": None if result.feature_info is None else [
            {**p.as_dict(), "shape": list(p.shape)} for p in result.feature_info],
        # Every output, in order: one (named null) for a network that names none.
        "outputs": [
            {"name": o.name, "shape": list(o.shape), "params": o.params, "macs": o.macs}
            for o in output_rows(g)
        ],
    }
    out.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return EXIT_OK


def _output_after_options(parser: argparse.ArgumentParser, args: argparse.Namespace,
                          rest: list[str]) -> None:
    """`resdsl compile SPEC --to hub DIR`: one argument left after the options is the
    output, as `-o` gives it; anything else left is refused as argparse refuses it."""
    if args.command == "compile" and len(rest) == 1 and not rest[0].startswith("-"):
        if args.output is not None:
            raise UsageError(f"two outputs: -o {args.output} and {rest[0]}; give one")
        args.output = rest[0]
        return
    parser.error(f"unrecognized arguments: {' '.join(rest)}")


def _compile(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.target == "python" and args.weights:
        raise UsageError("--to python writes code, not weights: load them in the program "
                         "(`model.load_state_dict(...)`), or use --to torch to bake them in")
    arguments.seed(args.seed, COMMAND_LINE)
    arguments.max_params(args.max_params, COMMAND_LINE)
    if args.target != "onnx":
        for flag, given in (("--opset", args.opset is not None), ("--fold-bn", args.fold_bn),
                            ("--verify", args.verify)):
            if given:
                raise UsageError(f"{flag} applies to --to onnx only")
    else:
        arguments.opset(args.opset, COMMAND_LINE)
    report = None
    extra: list[str] = []
    detail = ""
    verification: dict[str, object] | None = None
    try:
        net = Network(args.spec, build(args.spec, _options(args)))
        output = args.output or _zoo_output(args.spec, TARGETS[args.target]) \
            or net.name + TARGETS[args.target]
        # The spec, the files it uses and the weights: no output may replace them.
        if args.target != "hub":
            check_output(output, [*net.files, *([args.weights] if args.weights else [])])
        if args.target == "hub":
            hub = net.save_hub(output, args.seed, weights=args.weights, strict=args.strict,
                               replace_head=args.replace_head, rename=args.rename,
                               allow_nonfinite=args.allow_nonfinite,
                               zero_init_residual=args.zero_init_residual,
                               max_params=args.max_params)
            report = hub.report
            what = "torch.hub folder"
            detail = f"; entry point {hub.entry}: {', '.join(hub.files)}"
        elif args.target == "python":
            net.save_python(output)
            what = "standalone PyTorch source"
        elif args.target == "onnx":
            result = net.save_onnx(output, args.seed, weights=args.weights,
                                   strict=args.strict, replace_head=args.replace_head,
                                   rename=args.rename, allow_nonfinite=args.allow_nonfinite,
                                   zero_init_residual=args.zero_init_residual,
                                   max_params=args.max_params, opset=args.opset,
                                   fold_bn=args.fold_bn, verify=args.verify)
            report = result.report
            what = "ONNX model"
            detail = (f"; opset {result.model.opset}, {result.model.nodes} nodes, "
                      f"{result.size / 1e6:,.1f} MB")
            if len(result.paths) > 1:
                extra.append(f"weights in {result.paths[1]} (external data)")
            if result.verification is not None:
                extra.append(result.verification.summary())
                verification = result.verification.as_json()
        else:
            state, report = net.state(args.seed, weights=args.weights, strict=args.strict,
                                      replace_head=args.replace_head, rename=args.rename,
                                      allow_nonfinite=args.allow_nonfinite,
                                      zero_init_residual=args.zero_init_residual,
                                      max_params=args.max_params)
            net.save_exported(output, build_module(net.graph, state))
            what = "torch.export archive"
    except SpecError as exc:
        write_errors(exc.diagnostics, args.format, out, err)
        return EXIT_SPEC
    _report(net.result.warnings, args.format, err)
    out = _reporting(output, out, err)
    t = net.counts()
    if args.format == "json":
        doc = {"network": net.name, "spec": args.spec, "target": args.target,
               "output": output, "params": t.params, "macs": t.macs,
               "weights": None if report is None else report.summary()}
        if args.target == "onnx":
            doc["verify"] = verification
        out.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    else:
        of = net.name
        if net.result.feature_info is not None:  # --features: say which
            of += f"'s features {', '.join(p.module for p in net.result.feature_info)}"
        out.write(f"wrote {output}: {what} of {of} ({t.params:,} parameters{detail})\n")
        if report is not None:
            out.write(report.summary() + "\n")
        for line in extra:
            out.write(line + "\n")
    return EXIT_OK


def _reporting(output: str, out: TextIO, err: TextIO) -> TextIO:
    """Where to say what was written: stderr when the output is stdout itself
    (`-o /dev/stdout`), so that the report does not end up in the file."""
    try:
        written, stdout = os.stat(output), os.fstat(out.fileno())
    except (OSError, ValueError):  # not a file (StringIO), or closed
        return out
    same = (written.st_dev, written.st_ino) == (stdout.st_dev, stdout.st_ino)
    return err if same else out


def _draw_parser(sub: argparse._SubParsersAction[_Parser]) -> None:
    draw = sub.add_parser("draw", help="draw the network's diagram with Graphviz")
    draw.add_argument("spec", metavar="SPEC")
    draw.add_argument("-o", dest="output", metavar="OUT",
                      help="the output file (default: the network's name, or a zoo model's, "
                      "with the format's suffix, in the current folder)")
    draw.add_argument("--format", choices=("svg", "png", "pdf", "dot"),
                      help="svg (default), png, pdf (needs Graphviz's dot), or dot for the "
                      "DOT text; without it, the suffix of -o decides")
    draw.add_argument("--depth", choices=("stages", "blocks", "layers"), default="blocks",
                      help="stages: one box per stage; blocks (default): each block with "
                      "its primitive; layers: every op")
    draw.add_argument("--expand", action="store_true",
                      help="draw every copy of consecutive identical blocks instead of "
                      "folding them into one labelled ×N")
    draw.add_argument("--lr", action="store_true", help="left to right instead of top down")
    draw.add_argument("--no-shapes", dest="shapes", action="store_false",
                      help="no C×H×W on the edges")
    draw.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME=VALUE",
                      help="override a network parameter, e.g. -D classes=10")
    draw.add_argument("--input", dest="input_shape", metavar="CxHxW",
                      help="override the input shape, e.g. 3x32x32")
    draw.add_argument("--network", metavar="NAME",
                      help="the network to use when a spec defines several")
    _features_option(draw)


def _draw(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from resdsl.backends.dot_draw import draw_file
    from resdsl.backends.dot_source import Settings

    settings = Settings(args.depth, args.expand, args.lr, args.shapes)
    note = " ".join(f"-D {d}" for d in args.defines)
    output = args.output or _zoo_output(args.spec, "." + (args.format or "svg"))
    try:
        report = draw_file(args.spec, _options(args), settings, args.format, output, note)
    except SpecError as exc:
        _report(exc.diagnostics, "text", err)
        return EXIT_SPEC
    if report.output is not None:
        how = f" (rendered by {report.renderer})" if report.renderer else ""
        if report.scaled_to is not None:
            how += (f", scaled down to fit {report.scaled_to[0]:,}×{report.scaled_to[1]:,} "
                    "pixels (SVG draws it at full size)")
        what = (f"up to the error, {report.params:,} parameters so far" if report.failed
                else f"{report.params:,} parameters")
        _reporting(report.output, out, err).write(
            f"wrote {report.output}: diagram of {report.network} at {args.depth} depth, "
            f"{what}{how}\n")
    _report(report.diagnostics, "text", err)
    return EXIT_SPEC if report.failed else EXIT_OK


def _zoo_output(spec: str, suffix: str) -> str | None:
    """The default output of a zoo name: the model's name (`resnext101_32x8d.onnx`), not
    its spec's network's (`resnext50_32x4d`), which several models share; None for a file."""
    from resdsl import zoo

    return zoo.lookup(spec).name + suffix if zoo.is_zoo_name(spec) else None


class Terminated(BaseException):
    """SIGTERM (what `timeout`, `kill` and a cancelled CI job send), raised like Ctrl-C's
    KeyboardInterrupt so that `finally` blocks run: a file being written is not left
    half-made, nor its staging folder behind."""


def _terminate(signum: int, frame: object) -> None:
    # A second SIGTERM ends the process at once, cleanup or not.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Terminated


def main(argv: Sequence[str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        parser = _parser()
        args, rest = parser.parse_known_args(argv)
        if rest:
            _output_after_options(parser, args, rest)
        if args.command == "check":
            return _check(args, out, err)
        if args.command == "compile":
            return _compile(args, out, err)
        if args.command == "draw":
            return _draw(args, out, err)
        if args.command == "bench":
            from resdsl.bench_cmd import bench

            return bench(args, _options(args), out, err)
        if args.command == "lsp":
            from resdsl.lsp.command import lsp

            return lsp(args, err)
        if args.command == "paths":
            from resdsl.paths_cmd import paths

            return paths(args, _options(args), out, err)
        if args.command == "fmt":
            from resdsl.fmt_cmd import fmt

            return fmt(args, out, err)
        if args.command == "zoo":
            from resdsl.zoo_cmd import zoo

            return zoo(args, out, err)
        return _info(args, out, err)
    except UsageError as exc:
        if isinstance(exc, ArgumentError) and exc.code:  # a mistake with a code: E0741
            err.write(render_all_text([error(exc.code, str(exc), None, help=exc.help)]))
        else:
            err.write(f"resdsl: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:  # the files being written were cleaned up on the way here
        err.write("resdsl: interrupted\n")
        return EXIT_INTERRUPTED
    except Terminated:
        err.write("resdsl: terminated\n")
        return EXIT_TERMINATED
    except BrokenPipeError:  # stdout's reader went away: nobody is left to tell
        return EXIT_BROKEN_PIPE
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0)
    except Exception:
        err.write(
            "error[E9000]: internal error: this is a bug in resdsl, not a mistake in your "
            "spec\n\nPlease report it with the spec and this trace:\n\n"
            + traceback.format_exc()
        )
        return EXIT_INTERNAL


def run() -> None:
    """The `resdsl` command. SIGTERM unwinds as Ctrl-C does, unless the caller ignores it
    (a signal ignored at start stays ignored, as Python leaves SIGINT)."""
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would flush again at exit and print a warning: point stdout elsewhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_BROKEN_PIPE
    sys.exit(code)
