"""A torch.hub folder of a network: `resdsl compile SPEC --to hub DIR`, `Network.save_hub`.

    DIR/hubconf.py              the entry point, a function named after the network
    DIR/NAME.<digest>.py        the generated source (what `--to python` writes)
    DIR/NAME.<digest>.pth       with weights: the state_dict (torch.save)

`torch.hub.load(DIR, NAME, source="local", pretrained=True, num_classes=10)` then builds the
model where only PyTorch is installed: the entry point loads the source from its file (under
a module name of its own, so that two hub folders never share a module), builds the class
with the constructor arguments it honours (`num_classes`, `in_chans`:
`backends/torch_ctor.py`) and, with `pretrained=True`, loads the checkpoint (a new
classifier's keys left out; a first conv for other channels adapted as timm's
`adapt_input_conv` adapts it). Anything else is refused with a message that says what to do:
the network's other parameters were fixed when it was compiled.

**Writing.** A folder is replaced as a file is (`resdsl.outputs`): never half-written. The
source and the checkpoint are named by a digest of their contents, so a new write never
replaces a file that the `hubconf.py` already there reads: they are written first (a file
already there under its digest is left as it is), `hubconf.py` last, atomically, and only
then the files of earlier writes are removed. A folder that does not exist yet is made in
a staging folder beside it and renamed into place whole. A folder that holds anything but a
hub folder resdsl wrote is refused.

Nothing here imports torch at module level; only writing a checkpoint needs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import keyword
import math
import os
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resdsl import __version__
from resdsl.backends.torch_source import Generated
from resdsl.ir.graph import Graph
from resdsl.ir.ops import Value, fmt_shape
from resdsl.ir.protocol import protocol
from resdsl.outputs import (
    Output,
    check_not_input,
    output_errors,
    staging,
    write_atomic,
    write_chunks,
)
from resdsl.passes.counts import totals
from resdsl.pipeline import UsageError

if TYPE_CHECKING:
    import numpy as np

    from resdsl.weights import LoadReport

HUBCONF = "hubconf.py"
# The line that marks a hubconf.py as resdsl's: a folder holding one may be rewritten.
MARKER = "# A resdsl hub folder: `resdsl compile --to hub` may rewrite the folder of this file."
# The files a write names by their contents: `NAME.<16 hex digits>.py` or `.pth`.
_DIGEST_NAMED = re.compile(r".+\.[0-9a-f]{16}\.(?:py|pth)\Z", re.S)
# What may be in a folder besides a hub folder's files: Python's bytecode cache.
_IGNORED = frozenset({"__pycache__"})


@dataclass(frozen=True)
class HubFolder:
    """A written hub folder: its path, the entry point's name, the files in it and the
    report of loading the weights (None without weights)."""

    path: str
    entry: str
    files: tuple[str, ...]
    report: LoadReport | None = None


def write_hub(path: str, graph: Graph, generated: Generated,
              state: Mapping[str, np.ndarray] | None, spec: str,
              params: Mapping[str, Value], inputs: Sequence[str] = ()) -> HubFolder:
    """Write the hub folder `path` (see the module's docstring); `state` the checkpoint's
    tensors (None: none, and `pretrained=True` is refused), `spec` the spec's path and
    `params` its network parameters (both for the messages), `inputs` the files the compile
    reads, which nothing may replace."""
    entry = _entry_name(graph.name)
    folder = check_folder(path, inputs)
    source = generated.source.encode("utf-8")
    files = {f"{graph.name}.{_digest(source)}.py": source}
    weights = None
    if state is not None:
        data = _checkpoint(state)
        weights = f"{graph.name}.{_digest(data)}.pth"
        files[weights] = data
    hubconf = hubconf_source(graph, generated, entry, next(iter(files)), weights, spec,
                             params).encode("utf-8")
    out = Output(path, folder)
    if not folder.exists():
        with staging(out) as tmp:
            made = tmp / "hub"
            with output_errors(out):
                made.mkdir()
                for name, data in files.items():
                    _write(made / name, data, inputs)
                _write(made / HUBCONF, hubconf, inputs)
                os.rename(made, folder)
    else:
        for name, data in files.items():
            target = folder / name
            # Named by its contents: a file already there under its name holds these bytes.
            if not (target.is_file() and target.stat().st_size == len(data)):
                _write(target, data, inputs)
        _write(folder / HUBCONF, hubconf, inputs)
        _remove_earlier(folder, set(files), inputs)
    return HubFolder(path, entry, (HUBCONF, *files))


def check_folder(path: str, inputs: Sequence[str] = ()) -> Path:
    """The hub folder to write, or a UsageError saying why it cannot be: it is a file, its
    parent is missing, or it holds something that is not a hub folder resdsl wrote. Cheap:
    callers run it before the work."""
    if not path:
        raise UsageError("the output folder is empty")
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"cannot write the hub folder `{path}`: it is a file; give a folder "
                         "(a new one, or one that `--to hub` wrote)")
    check_not_input(folder, inputs)
    if not folder.exists():
        parent = folder.absolute().parent
        if not parent.is_dir():
            raise UsageError(f"cannot write the hub folder `{path}`: the folder `{parent}` "
                             "does not exist")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UsageError(f"cannot write the hub folder `{path}`: the folder `{parent}` "
                             "is not writable; choose another output path")
        return folder
    try:
        names = set(os.listdir(folder)) - _IGNORED
    except OSError as exc:
        raise UsageError(f"cannot write the hub folder `{path}`: {exc.strerror or exc}"
                         ) from None
    if names and not _is_hub(folder / HUBCONF):
        raise UsageError(f"refusing to write the hub folder into `{path}`: it holds files "
                         "and no hubconf.py that resdsl wrote; give a new or empty folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write the hub folder `{path}`: it is not writable; choose "
                         "another output path")
    return folder


def _is_hub(hubconf: Path) -> bool:
    try:
        with open(hubconf, encoding="utf-8", errors="replace") as f:
            head = f.read(4096)
    except OSError:
        return False
    return MARKER in head


def _entry_name(name: str) -> str:
    """The entry point's name: the network's, which hubconf.py defines as a function."""
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_") \
            or name == "dependencies":
        raise UsageError(f"the network `{name}` cannot name a torch.hub entry point (a Python "
                         "function of hubconf.py): rename the network")
    return name


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _checkpoint(state: Mapping[str, np.ndarray]) -> bytes:
    """The state_dict as torch.save writes it, into memory first: torch's zip writer aborts
    the process when a write under it fails (see torch_module.write_archive)."""
    from resdsl.backends.torch_module import require_torch

    torch = require_torch()
    buffer = io.BytesIO()
    torch.save({k: torch.from_numpy(v.copy()) for k, v in state.items()}, buffer)
    return buffer.getvalue()


def _write(path: Path, data: bytes, inputs: Sequence[str]) -> None:
    write_atomic(str(path), lambda f: write_chunks(f, data), inputs)


def _remove_earlier(folder: Path, kept: set[str], inputs: Sequence[str]) -> None:
    """Remove the digest-named files that earlier writes left and hubconf.py no longer
    reads (never an input of this compile)."""
    for name in sorted(os.listdir(folder)):
        path = folder / name
        if name in kept or not _DIGEST_NAMED.match(name) or not path.is_file():
            continue
        if any(_same(path, source) for source in inputs):
            continue
        with contextlib.suppress(OSError):  # housekeeping: the folder is complete without
            path.unlink()


def _same(a: Path, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


# ---------------------------------------------------------------------- hubconf.py


def hubconf_source(graph: Graph, generated: Generated, entry: str, source: str,
                   weights: str | None, spec: str, params: Mapping[str, Value]) -> str:
    """The text of hubconf.py."""
    ctor = generated.arguments
    classifier = protocol(graph).classifier if ctor.num_classes is not None else None
    t = totals(graph)
    out = graph.node(graph.output or 0)
    outputs = (", ".join(graph.outputs) if graph.outputs else fmt_shape(out.shape))
    signature = ["pretrained: bool = False"]
    passed = []
    said = [f"The network `{graph.name}`, compiled by resdsl:",
            "`pretrained=True` loads the weights compiled in with `--weights`."
            if weights is not None else
            "`pretrained=True` is refused: this folder was compiled without `--weights`."]
    if ctor.num_classes is not None:
        signature.append(f"num_classes: int = {ctor.num_classes}")
        passed.append("num_classes=num_classes")
        said.append("`num_classes` gives a new classifier, initialised as the spec's (0: none, "
                    "the pooled features).")
    if ctor.in_chans is not None:
        signature.append(f"in_chans: int = {ctor.in_chans}")
        passed.append("in_chans=in_chans")
        said.append("`in_chans` gives a new first conv, initialised as the spec's; with "
                    "`pretrained=True` its weights are the checkpoint's, adapted as timm's "
                    "`adapt_input_conv` adapts them.")
    takes = ", ".join(s.split(":")[0] for s in signature)
    said.append(f"It takes {takes} only: the network's other parameters were fixed when the "
                "spec was compiled.")
    doc = textwrap.fill(" ".join(said), 88, initial_indent="    ",
                        subsequent_indent="    ")[4:]
    first_conv = ctor.first_conv.path if ctor.first_conv is not None else None
    call = ", ".join(passed)
    return _TEMPLATE.format(
        entry=entry, version=__version__, spec=_oneline(spec), marker=MARKER,
        example=", pretrained=True" if weights is not None else "",
        input=fmt_shape(graph.node(0).shape), output=outputs, params=f"{t.params:,}",
        source=source, cls=generated.class_name, weights=weights,
        num_classes=ctor.num_classes, in_chans=ctor.in_chans, classifier=classifier,
        first_conv=first_conv, spec_params={k: _plain(v) for k, v in params.items()},
        signature=",\n        ".join([*signature, "**kwargs: _Any"]), takes=takes, doc=doc,
        call=call, num_classes_arg="num_classes" if ctor.num_classes is not None else "None",
        in_chans_arg="in_chans" if ctor.in_chans is not None else "None",
    )


def _plain(value: Value) -> Any:
    """A network parameter's value as a Python literal can hold it."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # `inf` is no Python literal
    return value if isinstance(value, bool | int | float | str) or value is None else str(value)


def _oneline(text: str) -> str:
    return text.replace("\\", "/").replace('"', "'").replace("\n", " ")


_TEMPLATE = '''\
"""torch.hub entry point `{entry}`, generated by resdsl {version} from
{spec}. Do not edit: compile the spec again (`resdsl compile SPEC --to hub DIR`).

    model = torch.hub.load(DIR, "{entry}", source="local"{example})

Input {input} → output {output}; {params} parameters. Needs only PyTorch.
"""
{marker}

from __future__ import annotations

import importlib.util as _importlib_util
import math as _math
import os as _os
import sys as _sys
from typing import Any as _Any

dependencies = ["torch"]

_HERE = _os.path.dirname(_os.path.abspath(__file__))
# The generated source (`resdsl compile --to python`) and its network class.
_SOURCE = {source!r}
_CLASS = {cls!r}
# The checkpoint of `--weights` (None: compiled without weights).
_WEIGHTS = {weights!r}
# The spec's class count and input channels (None: the source cannot change them), the
# classifier's and the first conv's module paths.
_NUM_CLASSES = {num_classes!r}
_IN_CHANS = {in_chans!r}
_CLASSIFIER = {classifier!r}
_FIRST_CONV = {first_conv!r}
# The network parameters the source was compiled with.
_SPEC_PARAMS = {spec_params!r}


def {entry}(
        {signature},
) -> _Any:
    """{doc}"""
    _refuse(kwargs)
    model = _network_class()({call})
    if pretrained:
        _load_pretrained(model, {num_classes_arg}, {in_chans_arg})
    return model


def _network_class() -> _Any:
    """The network class, from the source file, as a module named after the file (its
    digest): two hub folders never share one, and pickle can name its classes."""
    name = "resdsl_hub_" + _SOURCE[:-3].replace(".", "_")
    module = _sys.modules.get(name)
    if module is None:
        spec = _importlib_util.spec_from_file_location(name, _os.path.join(_HERE, _SOURCE))
        assert spec is not None and spec.loader is not None
        module = _importlib_util.module_from_spec(spec)
        _sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del _sys.modules[name]
            raise
    return getattr(module, _CLASS)


def _refuse(kwargs: dict[str, _Any]) -> None:
    if not kwargs:
        return
    fixed = [k for k in kwargs if k in _SPEC_PARAMS]
    why = (f"{{', '.join(fixed)}} {{'is a parameter' if len(fixed) == 1 else 'are parameters'}} "
           f"of the spec, fixed when it was compiled ({{_SPEC_PARAMS}}): compile it again "
           "with `resdsl compile SPEC --to hub DIR -D NAME=VALUE`" if fixed else
           "the network's other parameters are fixed when the spec is compiled: compile it "
           "again with `resdsl compile SPEC --to hub DIR -D NAME=VALUE`")
    raise TypeError(f"{entry}() got {{', '.join(sorted(kwargs))}}, which this hub folder "
                    f"cannot honour: it takes {takes} only; {{why}}")


def _load_pretrained(model: _Any, num_classes: int | None, in_chans: int | None) -> None:
    import torch

    if _WEIGHTS is None:
        raise RuntimeError(
            "{entry}(pretrained=True): this hub folder has no weights, it was compiled "
            "without --weights; compile it again with `resdsl compile SPEC --to hub DIR "
            "--weights FILE`, or load it with pretrained=False")
    state = torch.load(_os.path.join(_HERE, _WEIGHTS), map_location="cpu", weights_only=True)
    new_head = num_classes is not None and num_classes != _NUM_CLASSES
    if new_head:  # a new classifier, as initialised: the checkpoint's is left out
        state = {{k: v for k, v in state.items() if not k.startswith(_CLASSIFIER + ".")}}
    if in_chans is not None and in_chans != _IN_CHANS:
        key = _FIRST_CONV + ".weight"
        state[key] = _adapt_input_conv(state[key], in_chans)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (new_head and k.startswith(_CLASSIFIER + "."))]
    if missing or unexpected:
        raise RuntimeError(f"{entry}: the checkpoint {{_WEIGHTS}} does not fit the network: "
                           f"missing {{missing}}, unexpected {{unexpected}}")


def _adapt_input_conv(weight: _Any, in_chans: int) -> _Any:
    """timm's `adapt_input_conv` (timm/models/_manipulate.py): for 1 channel the sum over
    the input channels; for more, the channels repeated and scaled by old/new."""
    old = weight.shape[1]
    dtype = weight.dtype
    weight = weight.float()
    if in_chans == 1:
        weight = weight.sum(dim=1, keepdim=True)
    else:
        repeat = _math.ceil(in_chans / old)
        weight = weight.repeat(1, repeat, 1, 1)[:, :in_chans] * (old / in_chans)
    return weight.to(dtype)
'''
