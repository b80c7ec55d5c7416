"""Specs as timm models: `register("specs/resnet50.res")` adds an entry point to timm's
registry, so that `timm.create_model("resdsl_resnet50", num_classes=10, in_chans=1,
drop_path_rate=0.1, features_only=True, out_indices=(1, 2, 3))` builds the compiled network,
with timm's model protocol (`backends/torch_protocol.py`).

    import resdsl.timm
    resdsl.timm.register_folder("specs")          # resdsl_resnet50, resdsl_convnext_tiny, ...
    resdsl.timm.register_zoo("timm:resnet*d")     # resdsl_timm_resnet50d, ...
    model = timm.create_model("resdsl_resnet50", num_classes=10)

The name defaults to `resdsl_` and the network's name, so timm's own `resnet50` stays timm's
(a name timm already has is refused unless `overwrite=True`). `create_model`'s keyword
arguments map onto the network's parameters where the spec has them: `num_classes` onto
`classes` (0 removes the classifier: `reset_classifier(0)`), `in_chans` and `img_size` onto
the input shape, `drop_path_rate` and `drop_rate` onto the parameters of those names; any
other keyword that names a parameter of the network sets it (`layers=[2, 2, 2, 2]`);
`global_pool` as `reset_classifier`'s; `features_only` wraps the model in timm's
`FeatureGetterNet` (its `forward_intermediates`; `out_indices` checked against the feature
points, all of them by default), `feature_cls="hook"` in `FeatureHookNet`; `seed` chooses the
initial weights; `device` and `dtype` move them. What the spec cannot honour is refused with an
`ArgumentError` that says why: a rate the spec has no parameter for, `pretrained=True` (resdsl
has no weights to download: `checkpoint_path=` loads a checkpoint), an unknown keyword.

Only classification networks (`ir/protocol`) register: `register` refuses a segmentation or
detection network with the reason, `register_folder` leaves it out.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from resdsl import arguments
from resdsl.api import Network, load
from resdsl.arguments import ArgumentError
from resdsl.diagnostics import SpecError
from resdsl.ir.protocol import NoProtocol, protocol

# timm's create_model passes these to every entry point; they are not the network's.
_TIMM_ARGS = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")
# Parameters a keyword maps onto, first found in the network's parameters.
_CLASSES = ("classes", "num_classes")
# Entry points' default pretrained_cfgs, read by timm's register_model.
default_cfgs: dict[str, dict[str, Any]] = {}
# The names this module registered: re-registering one replaces it without timm's warning
# about overwriting another model.
_registered: dict[str, str] = {}


def register(spec: str | os.PathLike[str], name: str | None = None, *,
             network: str | None = None, pretrained_cfg: Mapping[str, Any] | None = None,
             overwrite: bool = False) -> str:
    """Register the spec's network with timm as `name` (default `resdsl_<network>`) and
    return the name. `pretrained_cfg` overrides fields of the model's `pretrained_cfg` (mean,
    std, crop_pct, interpolation: the language has no place for them). Raises ArgumentError
    for a network without a classifier head, or a name timm has already (unless `overwrite`)."""
    path = arguments.path(spec)
    return _register(path, load(path, network=network), name, network, pretrained_cfg,
                     overwrite)


def _register(path: str, net: Network, name: str | None, network: str | None,
              pretrained_cfg: Mapping[str, Any] | None, overwrite: bool) -> str:
    import timm.models._registry as registry

    try:
        proto = protocol(net.graph)
    except NoProtocol as exc:
        raise ArgumentError(f"{path}: `{net.name}` is not a classifier timm can use: {exc}",
                            "spec", path,
                            help="timm's protocol needs one output of class scores after a "
                            "global pool; use `resdsl.load(...).features(...)` for a "
                            "backbone") from None
    name = f"resdsl_{net.name}" if name is None else name
    if not name.isidentifier():
        raise ArgumentError(f"name={name!r}: a timm model name must be a Python identifier",
                            "name", name)
    if (name in registry._model_entrypoints and _registered.get(name) is None
            and not overwrite):
        raise ArgumentError(f"name={name!r}: timm already has a model `{name}`",
                            "name", name, help="choose another name, or pass overwrite=True")
    overrides = dict(pretrained_cfg or {})
    entry = _entry(path, network, overrides)
    entry.__name__ = entry.__qualname__ = name
    entry.__module__ = __name__
    entry.__doc__ = f"`{net.name}` from {path} (resdsl), for timm.create_model."
    setattr(sys.modules[__name__], name, entry)
    default_cfgs[name] = {**proto.pretrained_cfg(), **overrides}
    if name in registry._model_entrypoints:
        registry._clear_model_entries(name)
    registry.register_model(entry)
    _registered[name] = path
    return name


def register_folder(folder: str | os.PathLike[str], *, prefix: str = "resdsl_",
                    overwrite: bool = False) -> list[str]:
    """Register every classification spec in `folder` (`*.res`, not its subfolders: a
    library of blocks has no network) as `prefix` + its network's name; returns the names.
    A spec that is no classifier, or that does not load, is left out."""
    names = []
    for path in sorted(Path(arguments.path(folder)).glob("*.res")):
        try:
            net = load(str(path))
            protocol(net.graph)
        except (SpecError, NoProtocol, ArgumentError):
            continue
        names.append(_register(str(path), net, f"{prefix}{net.name}", None, None, overwrite))
    return names


def register_zoo(pattern: str | None = None, *, prefix: str = "resdsl_",
                 overwrite: bool = False) -> list[str]:
    """Register the zoo's models (`resdsl zoo PATTERN`'s names, every one without a pattern)
    as `prefix` + the zoo name with `_` for `:` (`resdsl_timm_resnet50d` builds
    `timm:resnet50d`, specs/resnet50d.res with its row's values; `resdsl_tv_resnet18`
    torchvision's resnet18); returns the names. The library stays in the name: timm's
    resnet18 and torchvision's are different models, and `register_folder`'s
    `resdsl_resnet18` is the spec's. Each builds its spec when registered (about 50 ms a
    model): a pattern registers only what it names."""
    from resdsl.zoo import entries
    from resdsl.zoo.table import matches

    names = []
    for entry in entries():
        if not matches(entry, pattern):
            continue
        model = entry.qualified.replace(":", "_")
        names.append(_register(entry.qualified, load(entry.qualified), f"{prefix}{model}",
                               None, None, overwrite))
    return names


def _entry(path: str, network: str | None, overrides: dict[str, Any]) -> Callable[..., Any]:
    def create(pretrained: bool = False, **kwargs: Any) -> Any:
        return create_model(path, network, overrides, pretrained, kwargs)

    return create


def create_model(path: str, network: str | None, overrides: Mapping[str, Any],
                 pretrained: bool, kwargs: dict[str, Any]) -> Any:
    """The model for `timm.create_model`'s call of an entry point (see the module's
    docstring for how the keyword arguments map); `overrides` are `register`'s
    pretrained_cfg."""
    if pretrained:
        raise ArgumentError(
            "pretrained=True: resdsl models have no pretrained weights to download",
            "pretrained", pretrained,
            help="load a checkpoint with timm.create_model(..., checkpoint_path=PATH), or "
            "resdsl.load(spec).to_torch(weights=PATH)")
    overlay = kwargs.pop("pretrained_cfg_overlay", None) or {}
    for key in _TIMM_ARGS:
        kwargs.pop(key, None)
    features_only = bool(kwargs.pop("features_only", False))
    out_indices = kwargs.pop("out_indices", None)
    feature_cls = kwargs.pop("feature_cls", None)
    global_pool = kwargs.pop("global_pool", None)
    seed = kwargs.pop("seed", 0)
    device = kwargs.pop("device", None)
    dtype = kwargs.pop("dtype", None)
    base = load(path, network=network)
    params, input_shape, num_classes = _parameters(base, kwargs)
    net = load(path, network=network, input_shape=input_shape, **params)
    try:
        protocol(net.graph)
    except NoProtocol as exc:  # a small input can make a strided pool the global one
        raise ArgumentError(
            f"at input {'×'.join(map(str, net.input_shape))}, `{net.name}` is no classifier "
            f"timm can use: {exc}", "img_size", input_shape,
            help="use a larger input (img_size=...): its head must begin after the last "
            "feature map") from None
    model: Any = net.to_torch(seed=seed)  # a generated TimmProtocol
    if num_classes == 0 or global_pool is not None:
        model.reset_classifier(model.num_classes if num_classes is None else num_classes,
                               global_pool)
    model.pretrained_cfg.update({**overrides, **dict(overlay)})
    if device is not None or dtype is not None:
        model = model.to(device=device, dtype=dtype)
    if not features_only:
        return model
    return _features(model, net, out_indices, feature_cls)


def _parameters(net: Network, kwargs: dict[str, Any]
                ) -> tuple[dict[str, Any], tuple[int, ...], int | None]:
    """The network's parameters, input shape and class count (None: the spec's) from
    create_model's keyword arguments; ArgumentError for one the spec cannot honour."""
    names = set(net.params)
    params: dict[str, Any] = {}
    c, h, w = net.input_shape
    num_classes = kwargs.pop("num_classes", None)
    if num_classes is not None:
        if not isinstance(num_classes, int) or num_classes < 0:
            raise ArgumentError(f"num_classes={num_classes!r}: must be an integer >= 0",
                                "num_classes", num_classes)
        target = next((p for p in _CLASSES if p in names), None)
        if num_classes > 0 and target is not None:
            params[target] = num_classes
            num_classes = None
    if "in_chans" in kwargs:
        c = kwargs.pop("in_chans")
    if "img_size" in kwargs:
        size = kwargs.pop("img_size")
        h, w = (size, size) if isinstance(size, int) else tuple(size)
    for rate in ("drop_path_rate", "drop_rate"):
        value = kwargs.pop(rate, None)
        if value is None:
            continue
        if rate in names:
            params[rate] = float(value)
        elif value:
            raise ArgumentError(
                f"{rate}={value!r}: `{net.name}` has no parameter `{rate}`",
                rate, value,
                help=f"add a `{rate}` parameter to the network and use it in the spec "
                f"(see specs/resnet50_droppath.res); its parameters are "
                f"{', '.join(net.params) or 'none'}")
    for key, value in kwargs.items():
        if key not in names:
            raise ArgumentError(
                f"{key}={value!r}: `{net.name}` has no parameter `{key}` and timm's "
                "create_model gives it no other meaning here", key, value,
                help=f"its parameters are {', '.join(net.params) or 'none'}")
        params[key] = value
    return params, (c, h, w), num_classes


def _features(model: Any, net: Network, out_indices: Any, feature_cls: Any) -> Any:
    """timm's features_only: FeatureGetterNet (forward_intermediates) or FeatureHookNet."""
    from timm.models._features import FeatureGetterNet, FeatureHookNet

    from resdsl.features import select

    points = net.feature_info
    indices = arguments.out_indices(out_indices, net.result.options.spelling)
    chosen = [p.index for p in select(points, indices, net.name)]
    if feature_cls in (None, "getter"):
        return FeatureGetterNet(model, out_indices=tuple(chosen))
    if feature_cls == "hook":
        return FeatureHookNet(model, out_indices=tuple(chosen))
    raise ArgumentError(
        f"feature_cls={feature_cls!r}: resdsl models take 'getter' (the default: "
        "forward_intermediates) or 'hook'", "feature_cls", feature_cls,
        help="timm's 'list' and 'dict' run the model's children in order, which is not "
        "every network's forward")
