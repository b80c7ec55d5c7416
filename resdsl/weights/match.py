"""Matching a checkpoint to a network: which tensor of the file goes to which state_dict key.

The file's keys are first taken as the file has them (its state_dict unwrapped from a
training checkpoint, a `module.` prefix removed: io.py), then renamed by the caller's rules
(`rename=`, rename.py). Then they match by name when the names are the network's (a spec
written with torchvision's or timm's module names loads their checkpoints as is); otherwise
by structure: the file's tensors in order, paired with the network's keys in order, every
pair checked for equal shapes. Structure matching is what makes a checkpoint of a
differently-named implementation of the same network load; it needs the file's order to be
module order, which .safetensors does not keep.

Anything that does not fit is an E0603 (keys), E0604 (shapes), E0605 (dtypes) or E0608
(NaN or infinite values) diagnostic, all reported together, naming the keys.
"""

from __future__ import annotations

import itertools
import os
import shlex
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from resdsl.arguments import PYTHON, Spelling
from resdsl.diagnostics import SpecError
from resdsl.diagnostics.diagnostic import Diagnostic
from resdsl.ir.graph import Graph
from resdsl.ir.ops import OPS, Shape, fmt_shape
from resdsl.passes.counts import state_shapes
from resdsl.weights import io
from resdsl.weights import rename as renaming
from resdsl.weights._diag import diag, listing, plural, shown

NBT = "num_batches_tracked"
# Tensors are checked for NaN and infinities by min and max (no temporary arrays); the
# values of a non-finite one are counted this many at a time, for the message.
_CHUNK = 1 << 20


@dataclass(frozen=True)
class LoadReport:
    """What `load_state` did. Every key of the network is in exactly one of `matched`
    (loaded from the file), `missing` (not in the file: keeps its initial value) and
    `reinitialised` (the head, replaced: keeps its initial value)."""

    source: str
    method: Literal["name", "structure"]
    matched: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]  # keys of the file that were not loaded
    reinitialised: tuple[str, ...]
    converted: tuple[str, ...]  # loaded keys cast to float32 from another float dtype
    # (key, shape in the file, shape here) of each re-initialised key whose shape differed.
    reshaped: tuple[tuple[str, Shape, Shape], ...] = ()
    # The keys of the wrapping dicts the state_dict was taken from ({"net": ...}: ("net",)).
    entry: tuple[str, ...] = ()
    # The prefix removed from every key of the file (`module.`), or "".
    prefix: str = ""
    # (name in the file, new name) of each key that `rename` changed.
    renamed: tuple[tuple[str, str], ...] = ()
    # Loaded keys holding NaN or infinite values, with allow_nonfinite=True.
    nonfinite: tuple[str, ...] = ()

    def summary(self) -> str:
        """One paragraph for people: what was loaded, from where, and what was not."""
        total = len(self.matched) + len(self.missing) + len(self.reinitialised)
        taken = []
        if self.entry:
            taken.append("the state_dict under " + " → ".join(f"`{shown(k)}`"
                                                              for k in self.entry))
        if self.prefix:
            taken.append(f"keys without the prefix `{self.prefix}`")
        if self.renamed:
            taken.append(f"{plural(len(self.renamed), 'key')} renamed")
        origin = f" ({', '.join(taken)})" if taken else ""
        parts = [
            f"loaded {len(self.matched)} of {plural(total, 'tensor')} from {self.source}"
            f"{origin} by {self.method}"
        ]
        if self.reinitialised:
            head = f"re-initialised the head {', '.join(self.reinitialised)}"
            if self.reshaped:
                _, theirs, ours = self.reshaped[0]
                head += (f" (its shape differs: {_fmt(theirs)} in the file, {_fmt(ours)} "
                         "here)")
            parts.append(head)
        counters = [k for k in self.missing if _is_nbt(k)]
        absent = [k for k in self.missing if not _is_nbt(k)]
        if absent:
            keep = "keeps its initial value" if len(absent) == 1 else "keep their initial values"
            parts.append(f"{plural(len(absent), 'tensor')} not in the file {keep}: "
                         f"{listing(absent)}")
        if counters:
            parts.append(f"{plural(len(counters), 'num_batches_tracked counter')} not in the "
                         "file start at 0")
        if self.unexpected:
            parts.append(f"ignored {len(self.unexpected)} not in the network: "
                         f"{listing(self.unexpected)}")
        if self.converted:
            parts.append(f"converted {len(self.converted)} to float32: "
                         f"{listing(self.converted)}")
        if self.nonfinite:
            n = len(self.nonfinite)
            parts.append(f"{plural(n, 'tensor')} {'holds' if n == 1 else 'hold'} NaN or "
                         f"infinite values (allowed): {listing(self.nonfinite)}")
        return "; ".join(parts)


def _fmt(shape: Shape) -> str:
    return fmt_shape(shape) if shape else "a scalar"


def _is_nbt(key: str) -> bool:
    return key == NBT or key.endswith("." + NBT)


@dataclass(frozen=True)
class _Expected:
    shapes: dict[str, Shape]
    head: tuple[str, ...]  # the state keys of the last layer with learnable state
    integer: frozenset[str]  # the int64 buffers (num_batches_tracked)


def _expected(graph: Graph | Mapping[str, Shape]) -> _Expected:
    if not isinstance(graph, Graph):
        # Only keys and shapes: the head is the module of the last key that is not a
        # buffer counter, the integer keys go by their name.
        shapes = dict(graph)
        last = next((k for k in reversed(shapes) if not _is_nbt(k)), "")
        module = last.rpartition(".")[0]
        tail = [k for k in shapes if k == last or (module and k.rpartition(".")[0] == module)]
        return _Expected(shapes, tuple(tail), frozenset(filter(_is_nbt, shapes)))
    head: tuple[str, ...] = ()
    integer: set[str] = set()
    for node in graph.nodes():
        ins = [graph.node(i).shape for i in node.inputs]
        states = OPS[node.op].state(ins, node.args, node.shape)
        keys = [f"{node.path}.{st.name}" if st.name else node.path for st in states]
        if any(st.learnable for st in states):
            head = tuple(keys)
        if node.op == "bn":
            integer.add(f"{node.path}.{NBT}")
    return _Expected(state_shapes(graph), head, frozenset(integer))


def load_state(
    graph: Graph | Mapping[str, Shape],
    weights: str | os.PathLike[str] | Mapping[str, Any],
    *,
    strict: bool = True,
    replace_head: bool = False,
    rename: renaming.Rename | None = None,
    allow_nonfinite: bool = False,
    spelling: Spelling = PYTHON,
    ignore: Collection[str] = frozenset(),
) -> tuple[dict[str, np.ndarray], LoadReport]:
    """Read `weights` and match them to `graph`'s state_dict keys.

    `weights` is a `.safetensors` or PyTorch checkpoint path, or a mapping of keys to numpy
    arrays or torch tensors. Returns the arrays to put over the initial state (float32;
    num_batches_tracked int64) and a report. `graph` may also be the network's key → shape
    mapping (`state_shapes`); then the head is the module of the last key.

    A training checkpoint's state_dict is taken from its wrapping dict, and a prefix every
    key has (`module.`) removed (`io.normalise`). `rename` then renames the file's keys:
    {pattern: replacement} or (pattern, replacement) pairs, Python regular expressions
    applied with `re.sub` to every key, one rule after the other, in order.
    Keys match by name when at least half of the network's keys are in the file, otherwise
    by structure (in order, shapes checked pairwise; num_batches_tracked set aside when only
    one side has them). Strict (the default): a missing or unexpected key is an error, except
    a missing num_batches_tracked (older checkpoints lack them), which starts at 0.
    `strict=False`: missing keys keep their initial values, unexpected ones are ignored.
    A shape mismatch is always an error, except with `replace_head=True` for the head (the
    last layer with learnable state, the classifier): its tensors keep their initial values,
    as when fine-tuning a 1000-class checkpoint for 10 classes; the head may then also be
    missing from the file. Float tensors of another precision are cast to float32.
    A loaded float tensor that holds NaN or an infinity is an error (E0608) unless
    `allow_nonfinite=True`; then the report lists it.
    `ignore`: keys set aside from the file after renaming, neither loaded nor unexpected (a
    features network's keys beyond its cut, when a full checkpoint is loaded into it).
    Raises SpecError (E0601-E0610) when the weights do not fit.
    """
    rules = renaming.rules(rename)
    exp = _expected(graph)
    from_file = isinstance(weights, (str, os.PathLike))
    if isinstance(weights, (str, os.PathLike)):
        ckpt = io.read(weights)
    else:
        ckpt = io.normalise(weights, "the given state_dict")
    renamed = _rename(ckpt, rules)
    if ignore:
        # A features network's keys beyond its cut (`ignore`): a full checkpoint has them,
        # and they are neither loaded nor unexpected.
        ckpt.tensors = {k: v for k, v in ckpt.tensors.items() if k not in ignore}
        ckpt.widened = [k for k in ckpt.widened if k not in ignore]
    # Arrays read from a file are ours; a caller's (or its tensors' memory) are copied, so
    # that a model built from the result never shares memory with the caller's state_dict.
    copy = None if from_file else True
    file = ckpt.tensors
    present = sum(k in file for k in exp.shapes)
    method: Literal["name", "structure"]
    if 2 * present >= len(exp.shapes):
        method = "name"
        pairs = [(k, k) for k in exp.shapes if k in file]
        missing = [k for k in exp.shapes if k not in file]
        unexpected = [k for k in file if k not in exp.shapes]
    else:
        method = "structure"
        pairs, missing, unexpected = _by_structure(exp, ckpt, present, bool(rules), spelling)

    reinit: list[str] = []
    if replace_head:
        reinit = [k for k in missing if k in exp.head]
        missing = [k for k in missing if k not in exp.head]
    diagnostics: list[Diagnostic] = []
    keys_problem = [k for k in missing if not _is_nbt(k)] + [
        k for k in unexpected if not _is_nbt(k)
    ]
    if strict and keys_problem:
        diagnostics.append(_keys_diagnostic(ckpt.source, missing, unexpected, bool(rules),
                                            spelling))

    out: dict[str, np.ndarray] = {}
    matched: list[str] = []
    converted: list[str] = []
    reshaped: list[tuple[str, Shape, Shape]] = []
    bad_shapes: list[tuple[str, str, Shape, Shape]] = []
    bad_dtypes: list[tuple[str, np.dtype[Any]]] = []
    widened = set(ckpt.widened)
    for key, fkey in pairs:
        array, shape = file[fkey], exp.shapes[key]
        if array.shape != shape:
            if replace_head and key in exp.head:
                reinit.append(key)
                reshaped.append((key, array.shape, shape))
            else:
                bad_shapes.append((key, ckpt.name_in_file(fkey), array.shape, shape))
            continue
        if key in exp.integer:
            if array.dtype.kind not in "iu":
                bad_dtypes.append((key, array.dtype))
                continue
            out[key] = np.array(array, dtype=np.int64, copy=copy)
        else:
            if array.dtype.kind != "f":
                bad_dtypes.append((key, array.dtype))
                continue
            if fkey in widened or array.dtype != np.float32:
                converted.append(key)
            with np.errstate(over="ignore"):  # float64 beyond float32: an inf, E0608
                out[key] = np.array(array, dtype=np.float32, order="C", copy=copy)
        matched.append(key)
    if bad_shapes:
        diagnostics.append(_shapes_diagnostic(ckpt.source, method, bad_shapes, exp.head,
                                              spelling))
    if bad_dtypes:
        diagnostics.append(_dtypes_diagnostic(ckpt.source, bad_dtypes, exp.integer))
    nonfinite = [k for k in matched if k not in exp.integer and not _finite(out[k])]
    if nonfinite and not allow_nonfinite:
        diagnostics.append(_nonfinite_diagnostic(ckpt.source, nonfinite, out, spelling))
    if diagnostics:
        raise SpecError(diagnostics)

    # The result and the report follow the network's key order, whatever the file's was.
    order = {k: i for i, k in enumerate(exp.shapes)}
    out = dict(sorted(out.items(), key=lambda item: order[item[0]]))
    report = LoadReport(
        source=ckpt.source,
        method=method,
        matched=tuple(sorted(matched, key=order.__getitem__)),
        missing=tuple(missing),
        unexpected=tuple(unexpected),
        reinitialised=tuple(sorted(reinit, key=order.__getitem__)),
        converted=tuple(sorted(converted, key=order.__getitem__)),
        reshaped=tuple(reshaped),
        entry=ckpt.entry,
        prefix=ckpt.prefix,
        renamed=renamed,
        nonfinite=tuple(sorted(nonfinite, key=order.__getitem__)),
    )
    return out, report


def _rename(ckpt: io.Checkpoint, rules: Sequence[renaming.Rule]) -> tuple[tuple[str, str], ...]:
    """Rename the checkpoint's keys in place by `rules`; the (old, new) names changed."""
    if not rules:
        return ()
    names = renaming.apply(ckpt.tensors, rules, ckpt.source)
    changed = tuple((old, new) for old, new in names.items() if old != new)
    ckpt.tensors = {names[k]: v for k, v in ckpt.tensors.items()}
    ckpt.widened = [names[k] for k in ckpt.widened]
    ckpt.original = {new: old for old, new in changed}
    return changed


def nonfinite_keys(state: Mapping[str, np.ndarray]) -> list[str]:
    """The float tensors of `state` that hold NaN or an infinity."""
    return [k for k, v in state.items() if v.dtype.kind == "f" and not _finite(v)]


def _finite(array: np.ndarray) -> bool:
    # NaN propagates through min and max, and an infinity is one of them: two passes over
    # the data, without the temporary boolean array of np.isfinite(array).all().
    return array.size == 0 or bool(np.isfinite(array.min()) and np.isfinite(array.max()))


def _nonfinite_counts(array: np.ndarray) -> str:
    """`3 NaN, 1 +inf of 432 values`."""
    flat = array.reshape(-1)
    nan = pos = neg = 0
    for i in range(0, flat.size, _CHUNK):
        chunk = flat[i : i + _CHUNK]
        nan += int(np.count_nonzero(np.isnan(chunk)))
        pos += int(np.count_nonzero(chunk == np.inf))
        neg += int(np.count_nonzero(chunk == -np.inf))
    found = [f"{n:,} {what}" for n, what in ((nan, "NaN"), (pos, "+inf"), (neg, "-inf")) if n]
    return f"{', '.join(found)} of {flat.size:,} values"


def _by_structure(
    exp: _Expected, ckpt: io.Checkpoint, present: int, renamed: bool, spelling: Spelling
) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """Pair keys in order. num_batches_tracked counters pair among themselves when both sides
    have the same number; otherwise the network's start at 0 and the file's are ignored.
    A file's counter is known by its name or, renamed, as an integer scalar."""
    def counter(key: str) -> bool:
        array = ckpt.tensors[key]
        return _is_nbt(key) or (array.shape == () and array.dtype.kind in "iu")

    ours = [k for k in exp.shapes if k not in exp.integer]
    theirs = [k for k in ckpt.tensors if not counter(k)] if ckpt.ordered else []
    if not ckpt.ordered or len(ours) != len(theirs):
        raise SpecError([_no_match_diagnostic(ckpt, exp, present, len(ours), len(theirs),
                                              renamed, spelling)])
    pairs = list(zip(ours, theirs, strict=True))
    our_nbt = [k for k in exp.shapes if k in exp.integer]
    their_nbt = [k for k in ckpt.tensors if counter(k)]
    if len(our_nbt) == len(their_nbt):
        return pairs + list(zip(our_nbt, their_nbt, strict=True)), [], []
    return pairs, our_nbt, their_nbt


# ------------------------------------------------------------------------- diagnostics

def _strict_help(spelling: Spelling) -> str:
    return (f"check that the checkpoint is for this network; with "
            f"`{spelling.switch('strict', False)}`, tensors missing from the file keep their "
            "initial values and unexpected ones are ignored")


def _keys_diagnostic(
    source: str, missing: Sequence[str], unexpected: Sequence[str], renamed: bool,
    spelling: Spelling,
) -> Diagnostic:
    absent = [k for k in missing if not _is_nbt(k)]
    extra = [k for k in unexpected if not _is_nbt(k)]
    counts = []
    if absent:
        counts.append(f"{plural(len(absent), 'key')} missing")
    if extra:
        counts.append(f"{len(extra)} unexpected")
    notes = []
    if absent:
        notes.append(f"missing from the file: {listing(absent)}")
    if extra:
        as_renamed = " (as renamed)" if renamed else ""
        notes.append(f"in the file{as_renamed} but not in the network: {listing(extra)}")
    help = _rename_advice(absent, extra, notes, spelling) or _strict_help(spelling)
    return diag(
        "E0603",
        f"`{source}` does not match the network's keys: {' and '.join(counts)}",
        help,
        notes,
    )


def _rename_advice(missing: Sequence[str], unexpected: Sequence[str],
                   notes: list[str], spelling: Spelling) -> str | None:
    """When the file's extra keys are the missing ones with one part of their names
    different, a note saying so (added to `notes`) and the help: the rename that fixes it."""
    found = renaming.suggest(missing, unexpected)
    if found is None:
        return None
    old, new = found
    pattern = renaming.pattern_for(old, unexpected)
    notes.append(f"the names differ in one part: the file's `{shown(old)}` is the network's "
                 f"`{shown(new)}`")
    if spelling.python:
        return f"rename the file's keys: `rename={{{pattern!r}: {new!r}}}`"
    return f"rename the file's keys: `--rename {shlex.quote(f'{pattern}={new}')}`"


def _no_match_diagnostic(
    ckpt: io.Checkpoint, exp: _Expected, present: int, ours: int, theirs: int, renamed: bool,
    spelling: Spelling,
) -> Diagnostic:
    as_renamed = " (as renamed)" if renamed else ""
    notes = [
        f"only {present} of the network's {plural(len(exp.shapes), 'key')} are in the file "
        "by name",
        f"the network's keys begin {_first(exp.shapes)}; the file's{as_renamed} begin "
        f"{_first(ckpt.tensors) or '(none: it is empty)'}",
    ]
    if not ckpt.ordered:
        notes.append("a .safetensors file keeps its tensors sorted by dtype and name, not in "
                     "module order, so it cannot be matched by structure")
        help = ("rename its keys to the network's, or pass a state_dict (or a .pth file) saved "
                "in module order to match by structure")
    else:
        notes.append(f"matching by structure pairs the tensors in order, but the file has "
                     f"{theirs} tensors and the network {ours} (num_batches_tracked aside)")
        help = "check that the checkpoint is for this network"
    missing = [k for k in exp.shapes if k not in ckpt.tensors and not _is_nbt(k)]
    unexpected = [k for k in ckpt.tensors if k not in exp.shapes and not _is_nbt(k)]
    help = _rename_advice(missing, unexpected, notes, spelling) or help
    return diag("E0603", f"`{ckpt.source}` matches the network neither by name nor by structure",
                help, notes)


def _first(keys: Iterable[str], n: int = 3) -> str:
    """`a, b, c, ...`: the first keys of a long list, to show its naming scheme."""
    first = list(itertools.islice(keys, n + 1))
    return ", ".join(shown(k) for k in first[:n]) + (", ..." if len(first) > n else "")


def _shapes_diagnostic(
    source: str, method: str, bad: Sequence[tuple[str, str, Shape, Shape]], head: tuple[str, ...],
    spelling: Spelling,
) -> Diagnostic:
    def where(key: str, fkey: str) -> str:
        return key if key == fkey else f"{key} (the file's {shown(fkey)})"

    lines = [f"{where(k, f)}: {_fmt(theirs)} in the file, {_fmt(ours)} here"
             for k, f, theirs, ours in bad]
    notes = lines[:8] + ([f"and {len(lines) - 8} more"] if len(lines) > 8 else [])
    if method == "structure":
        notes.append("the names differ, so tensors were paired by order: the two networks "
                     "may also differ in the order of their layers")
    if all(k in head for k, *_ in bad):
        help = ("to fine-tune with a new classifier, pass "
                f"`{spelling.switch('replace_head', True)}`: the head ({', '.join(head)}) then "
                "keeps its initial weights")
    else:
        help = "the checkpoint is for a different network: check the spec's parameters"
    n = len(bad)
    return diag(
        "E0604",
        f"{plural(n, 'tensor')} in `{source}` {'has' if n == 1 else 'have'} a different shape "
        "from the network's",
        help,
        notes,
    )


def _dtypes_diagnostic(
    source: str, bad: Sequence[tuple[str, np.dtype[Any]]], integer: frozenset[str]
) -> Diagnostic:
    lines = [
        f"{k} is {d}; {'a counter must be an integer' if k in integer else 'it must be a float'}"
        for k, d in bad
    ]
    notes = lines[:8] + ([f"and {len(lines) - 8} more"] if len(lines) > 8 else [])
    n = len(bad)
    return diag(
        "E0605",
        f"{plural(n, 'tensor')} in `{source}` {'has' if n == 1 else 'have'} the wrong dtype",
        "weights and statistics are float tensors (float32, float16, bfloat16 or float64); "
        "num_batches_tracked is an integer",
        notes,
    )


def _nonfinite_diagnostic(source: str, keys: Sequence[str],
                          arrays: Mapping[str, np.ndarray], spelling: Spelling) -> Diagnostic:
    lines = [f"{k}: {_nonfinite_counts(arrays[k])}" for k in keys[:8]]
    notes = lines + ([f"and {len(keys) - 8} more: {listing(keys[8:])}"] if len(keys) > 8 else [])
    n = len(keys)
    return diag(
        "E0608",
        f"{plural(n, 'tensor')} in `{source}` {'holds' if n == 1 else 'hold'} NaN or infinite "
        "values",
        "the checkpoint is damaged, or was saved after training diverged: use another one "
        "(an earlier epoch's); to load it anyway, pass "
        f"`{spelling.switch('allow_nonfinite', True)}`",
        notes,
    )
