"""timm's model protocol for generated networks: `TimmProtocol`, the base class of the root
class of every classification network that resdsl generates (the standalone source and the
in-memory module alike: the code below the marker line is copied into the generated file,
which so needs nothing but PyTorch).

The generated root class sets `timm_spec`, a dict of what the graph says
(`resdsl.ir.protocol`): the classifier's module path and kind, the feature points (module,
channels, reduction), the groups of `group_matcher`, the modules each feature point needs,
`pretrained_cfg`. It defines `forward_features` (the forward up to the last feature map, with
each stage call checkpointed when `grad_checkpointing` is on) and `forward_head(x,
pre_logits=False)` (the head: pool, norms, dropout, then the classifier); `forward` is the two.
The rest of the protocol is here, the same for every network:

- `reset_classifier(num_classes, global_pool=None)` replaces the classifier module by a new
  one initialised as the spec's head is (`resdsl.weights.init`: a linear's and a conv's bias
  by torch's default, a linear's weight by torch's default, a conv's by Kaiming normal, fan
  out), or by `nn.Identity` for 0 classes; `(0, "")` makes `forward_head` return the
  unpooled features.
- `forward_intermediates` takes the feature points' tensors with forward hooks on their
  modules during `forward_features`, so they are the forward's own tensors; `stop_early` stops
  the forward after the last one taken. A point whose module is an `nn.Sequential` is taken at
  its last child (the same tensor), which a checkpointed stage still calls.
- `set_grad_checkpointing()`: each block of a stage (a child of a stage's `nn.Sequential`
  that is not a single layer) runs under `torch.utils.checkpoint` (non-reentrant), and while
  the backward pass recomputes it, its BatchNorms normalise with the batch's statistics as in
  the forward but leave their running statistics (momentum 0) and `num_batches_tracked`
  alone, so they are updated once per step, as without checkpointing (pytorch/pytorch#96136; timm's
  `checkpoint_seq` updates them twice).
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

# ---- copied into the generated source below this line ----


@contextlib.contextmanager
def _stats_frozen(block: nn.Module) -> Iterator[None]:
    """While the backward pass recomputes `block`: its training BatchNorms normalise with
    the batch's statistics, as in the forward, and leave their running ones as they are
    (momentum 0; no `num_batches_tracked` to count). The running statistics stay passed to
    the kernel: without them it saves other tensors than the forward did, which checkpoint
    refuses."""
    norms = [(m, m.momentum, m._buffers.get("num_batches_tracked")) for m in block.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training
             and m.track_running_stats]
    for m, _, _ in norms:
        m.momentum = 0.0
        m._buffers["num_batches_tracked"] = None
    try:
        yield
    finally:
        for m, momentum, count in norms:
            m.momentum = momentum
            m._buffers["num_batches_tracked"] = count


def _contexts(block: nn.Module) -> tuple[contextlib.AbstractContextManager[None],
                                         contextlib.AbstractContextManager[None]]:
    return contextlib.nullcontext(), _stats_frozen(block)


def checkpoint_stage(stage: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run `stage` with each of its blocks checkpointed: an `nn.Sequential`'s children one
    by one (a nested one's in turn), a single layer (a module without children) directly,
    any other module as one block."""
    if isinstance(stage, nn.Sequential):
        for child in stage:
            x = checkpoint_stage(child, x)
        return x
    if not any(True for _ in stage.children()):
        out: torch.Tensor = stage(x)
        return out
    out = checkpoint(stage, x, use_reentrant=False,
                     context_fn=functools.partial(_contexts, stage))
    return out


class _StopForward(Exception):
    """Raised by forward_intermediates' last hook with `stop_early`."""


def _take_indices(n: int, indices: int | Sequence[int] | None) -> list[int]:
    """timm's `feature_take_indices`: None all, an int the last that many, a sequence those
    (negative from the end), each checked."""
    if indices is None:
        return list(range(n))
    if isinstance(indices, int):
        if not 0 < indices <= n:
            raise ValueError(f"indices={indices}: take the last 1 to {n} feature points")
        return list(range(n - indices, n))
    taken = []
    for i in indices:
        if not -n <= i < n:
            raise ValueError(f"index {i} is out of range for {n} feature points "
                             f"(0 to {n - 1}, or {-n} to -1)")
        taken.append(i % n)
    return sorted(set(taken))


def _hook_target(module: nn.Module) -> nn.Module:
    """The module whose output is `module`'s and which runs when it does, checkpointed or
    not: an nn.Sequential's last child (in turn)."""
    while isinstance(module, nn.Sequential) and len(module):
        module = module[-1]
    return module


class TimmProtocol(nn.Module):
    """timm's model protocol (timm 1.0: `timm.models.resnet.ResNet`'s methods), over the
    generated `forward_features` / `forward_head` and the class's `timm_spec`."""

    timm_spec: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        super().__init__()
        spec = self.timm_spec
        self.num_classes: int = spec["num_classes"]
        self.num_features: int = spec["num_features"]
        self.head_hidden_size: int = spec["head_hidden_size"]
        self.pretrained_cfg: dict[str, Any] = dict(spec["pretrained_cfg"])
        self.feature_info: list[dict[str, Any]] = [dict(p) for p in spec["feature_info"]]
        self.grad_checkpointing = False
        self.pool_type: str = spec["global_pool"]
        self._pruned_to: int | None = None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError  # the generated class defines it

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError  # the generated class defines it

    @property
    def default_cfg(self) -> dict[str, Any]:
        return self.pretrained_cfg

    @default_cfg.setter
    def default_cfg(self, cfg: dict[str, Any]) -> None:
        self.pretrained_cfg = cfg

    # ------------------------------------------------------------------ the head

    def get_classifier(self, name_only: bool = False) -> nn.Module | str:
        path: str = self.timm_spec["pretrained_cfg"]["classifier"]
        return path if name_only else self.get_submodule(path)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new classifier for `num_classes` (0: none, `forward` gives the pooled features),
        initialised as the spec's; `global_pool` "" (with 0 classes) leaves the features
        unpooled, the spec's own pool type (or None) keeps the pool."""
        spec = self.timm_spec
        if global_pool is not None and global_pool not in ("", spec["global_pool"]):
            raise ValueError(f"global_pool={global_pool!r}: this network pools with "
                             f"{spec['global_pool']!r} only (or '' with num_classes=0)")
        if global_pool == "" and num_classes:
            raise ValueError("global_pool='' (unpooled features) needs num_classes=0: the "
                             "classifier acts on pooled features")
        if not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes={num_classes!r}: must be an integer >= 0")
        path = spec["pretrained_cfg"]["classifier"]
        old = self.get_submodule(path)
        param = next(iter(old.parameters()), None)
        device = param.device if param is not None else None
        dtype = param.dtype if param is not None else None
        new: nn.Module = nn.Identity()
        if num_classes:
            width = self.head_hidden_size
            if spec["classifier_kind"] == "conv":
                conv = nn.Conv2d(width, num_classes, 1, bias=True, device=device, dtype=dtype)
                nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
                new = conv
            else:
                new = nn.Linear(width, num_classes, bias=True, device=device, dtype=dtype)
        new.train(old.training)
        parent, _, name = path.rpartition(".")
        setattr(self.get_submodule(parent), name, new)
        self.num_classes = num_classes
        if global_pool is not None:
            self.pool_type = global_pool
        self.pretrained_cfg["num_classes"] = num_classes

    # ------------------------------------------------------------------ features

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """The feature points' tensors (`feature_info`; `indices` as timm's: None all, n the
        last n, a list those), and with `intermediates_only=False` the final features too
        (`forward_features`' output, or the last point's with `stop_early`). `norm` has
        nothing to apply: a spec's final norm is part of its last stage."""
        del norm
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt={output_fmt!r}: only 'NCHW' is supported")
        take = _take_indices(len(self.feature_info), indices)
        last = max(take) if take else -1
        if self._pruned_to is not None:
            if last > self._pruned_to:
                raise ValueError(f"feature point {last} was pruned "
                                 f"(prune_intermediate_layers kept 0 to {self._pruned_to})")
            stop_early = True
        taken: dict[int, torch.Tensor] = {}

        def hook(index: int, _m: nn.Module, _i: Any, out: torch.Tensor) -> None:
            if index in take and index not in taken:
                taken[index] = out
                if stop_early and index == last:
                    raise _StopForward

        handles = [
            _hook_target(self.get_submodule(p["module"])).register_forward_hook(
                functools.partial(hook, i))
            for i, p in enumerate(self.feature_info)
        ]
        final: torch.Tensor | None = None
        try:
            final = self.forward_features(x)
        except _StopForward:
            pass
        finally:
            for h in handles:
                h.remove()
        intermediates = [taken[i] for i in take]
        if intermediates_only:
            return intermediates
        if final is None:
            final = intermediates[-1]
        return final, intermediates

    def prune_intermediate_layers(self, indices: int | Sequence[int] = 1,
                                  prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """Drop the modules that no feature point up to the last one taken needs (each
        becomes `nn.Identity`) and, with `prune_head`, the head's (its classifier, its
        norms); `forward_intermediates` then stops after that point. Returns the indices
        taken."""
        del prune_norm
        take = _take_indices(len(self.feature_info), indices)
        last = max(take)
        for path in self.timm_spec["prune_after"][last]:
            parent, _, name = path.rpartition(".")
            setattr(self.get_submodule(parent), name, nn.Identity())
        if prune_head:  # the unpooled features: the head runs none of its modules
            self.reset_classifier(0, "")
            for path in self.timm_spec["head_modules"]:
                parent, _, name = path.rpartition(".")
                setattr(self.get_submodule(parent), name, nn.Identity())
        self._pruned_to = last
        return take

    # ------------------------------------------------------------------ training

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Parameter groups for timm's layer-wise learning-rate decay
        (`timm.optim.param_groups_layer_decay`): the stem first, then each stage
        (`coarse`) or each block; the head matches none, so timm puts it last."""
        groups = self.timm_spec["groups_coarse" if coarse else "groups_fine"]

        def pattern(prefixes: Sequence[str]) -> str:
            return "^(?:" + "|".join(re.escape(p) for p in prefixes) + r")(?:\.|$)"

        return {"stem": pattern(groups[0]),
                "blocks": [(pattern(g), (i,)) for i, g in enumerate(groups[1:])]}
