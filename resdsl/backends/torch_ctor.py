"""The network class's constructor arguments: `num_classes` and `in_chans`, as timm's and
torchvision's constructors take them, with the spec's values as defaults.

- `num_classes` where the network has timm's protocol (a classifier head,
  `resdsl.ir.protocol`): another count replaces the classifier by `reset_classifier`, which
  initialises it as the spec initialises its head (0: no classifier, the pooled features).
- `in_chans` where one conv, without groups, reads the input and nothing else does (a
  stem's first conv): another count replaces that conv by one with `in_chans` input
  channels, its weight initialised as the spec initialises a conv's (`resdsl.weights.init`:
  Kaiming normal, fan out, ReLU gain; the bias, if any, by torch's default, which is the
  spec's too). A network whose input is read twice (a U-Net's input skip) cannot honour it.

With the defaults the class builds exactly what the spec describes, with the same state_dict;
the arguments change only the modules they name. The class keeps `in_chans` as an attribute
(`num_classes` is the protocol's already), which unpickling builds it with
(`backends/torch_module.py`). Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from resdsl.ir.graph import Graph, Node


@dataclass(frozen=True)
class Arguments:
    """What the root class's constructor takes: the spec's class count (None: no
    `num_classes`) and input channels (None: no `in_chans`), and the conv `in_chans` sizes."""

    num_classes: int | None
    in_chans: int | None
    first_conv: Node | None

    def signature(self) -> str:
        """The parameters after `self` (with a leading ", "), or ""."""
        params = []
        if self.num_classes is not None:
            params.append(f"num_classes: int = {self.num_classes}")
        if self.in_chans is not None:
            params.append(f"in_chans: int = {self.in_chans}")
        return "".join(f", {p}" for p in params)

    def lines(self, conv_line: Callable[[Node, str], str], ref: Callable[[str], str]
              ) -> list[str]:
        """The `__init__` lines after the spec's modules (indented for a method body).
        `conv_line(node, expr)` is the line that registers `node`'s module with `expr` as
        its input channels; `ref(path)` the expression of a module."""
        out: list[str] = []
        if self.in_chans is not None and self.first_conv is not None:
            conv = self.first_conv
            out += [
                f"        if in_chans != {self.in_chans}:  # the first conv, for in_chans "
                "channels, initialised as the spec's",
                "            if not isinstance(in_chans, int) or in_chans < 1:",
                '                raise ValueError(f"in_chans={in_chans!r}: must be an integer '
                '>= 1")',
                f"            {conv_line(conv, 'in_chans')}",
                f"            nn.init.kaiming_normal_({ref(conv.path)}.weight, "
                'mode="fan_out", nonlinearity="relu")',
            ]
        if self.in_chans is not None:
            out.append("        self.in_chans = in_chans  # what pickling rebuilds it with")
        if self.num_classes is not None:
            out += [
                f"        if num_classes != {self.num_classes}:  # a new classifier, "
                "initialised as the spec's",
                "            self.reset_classifier(num_classes)",
            ]
        return out


# A class that takes neither.
NONE = Arguments(None, None, None)


def arguments(graph: Graph, num_classes: int | None) -> Arguments:
    """The constructor's arguments of `graph`'s network; `num_classes`: its class count when
    its class has timm's protocol (and so `reset_classifier`), else None."""
    conv = input_conv(graph)
    return Arguments(num_classes, None if conv is None else graph.node(0).shape[0], conv)


def input_conv(graph: Graph) -> Node | None:
    """The one conv, without groups, that reads the input, when nothing else does."""
    if len(graph) < 2 or graph.node(0).op != "input":
        return None
    users = graph.users(0)
    if len(users) != 1:
        return None
    conv = graph.node(users[0])
    if conv.op != "conv" or conv.inputs != (0,) or conv.args.get("groups", 1) != 1:
        return None
    return conv
