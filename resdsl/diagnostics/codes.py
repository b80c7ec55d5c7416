"""The index of diagnostic codes, grouped by the stage that reports them.

`docs/errors.md` documents each code with an example and its fix, and
`tests/golden/errors/` holds a bad spec and its expected message for each one (the E06xx
weights codes: `tests/golden/weights/`, made by `tests/test_weights.py`);
`tests/test_golden_errors.py` fails if a code here has no golden test.
"""

from __future__ import annotations

CODES: dict[str, str] = {
    # E00xx: reading the file
    "E0001": "the spec file cannot be read",
    "E0002": "the spec file is not UTF-8 text",
    "E0003": "the spec file is too large",
    "E0004": "the spec is nested too deeply",
    "E0005": "the zoo has no model of that name",
    # E01xx: syntax
    "E0101": "unexpected token",
    "E0102": "unexpected character",
    "E0103": "unexpected end of file",
    # E02xx: names, definitions and imports
    "E0201": "unknown op, block or tensor",
    "E0202": "unknown variable",
    "E0203": "unknown keyword argument",
    "E0204": "a block is defined twice, or shadows a built-in op",
    "E0205": "a name is already defined in this scope",
    "E0206": "two modules get the same name",
    "E0207": "blocks call each other recursively",
    "E0208": "imported file not found",
    "E0209": "import outside the allowed folders",
    "E0210": "import cycle",
    "E0211": "no network to compile, or several",
    "E0212": "a clause or statement in the wrong place",
    "E0213": "unknown function or attribute",
    "E0214": "a value is called like an op",
    "E0230": "unknown level in a tensor's path",
    "E0231": "a level has no such tensor",
    # E03xx: shapes
    "E0301": "residual add joins tensors of different shapes",
    "E0302": "residual add joins tensors of different spatial sizes",
    "E0303": "concat joins tensors of different spatial sizes",
    "E0304": "groups do not divide the channels",
    "E0305": "a gate's body changes the shape",
    "E0306": "a dual unit's residual width is larger than the channels",
    "E0307": "a spatial size shrinks to zero",
    "E0308": "an op gets a tensor of the wrong rank",
    "E0309": "a scale's factor does not broadcast over its input",
    "E0310": "a channel slice is out of range",
    "E0311": "a group body cannot be lowered to grouped convolution",
    "E0312": "a zero-pad shortcut would drop channels",
    "E0313": "weighted branches have different shapes",
    "E0314": "a gate's transform cannot be derived from its body",
    "E0315": "arguments that do not go together",
    "E0320": "the tensors of an elementwise join do not broadcast",
    "E0321": "an axis is out of range or named twice",
    "E0322": "a reshape does not keep the number of values",
    "E0323": "a permutation is not an order of the axes",
    "E0324": "the tensors of a matrix product do not fit",
    # E04xx: values and types
    "E0401": "a value has the wrong type",
    "E0402": "wrong number of arguments",
    "E0403": "a count is not an integer",
    "E0404": "a value is too large",
    "E0405": "division by zero",
    "E0406": "a repeat count is not a positive integer",
    "E0407": "an index is out of range",
    "E0408": "an argument is out of its range",
    # E05xx: network structure and limits
    "E0501": "a network has no input",
    "E0502": "a network has more than one input, or statements before it",
    "E0503": "the network is too large",
    "E0504": "a layer's output is never used",
    "E0505": "two outputs have one name",
    "E0506": "an output's name is the input's or a state_dict key",
    "E0507": "every output of a network is guarded off",
    "E0508": "a network parameter named as a pretrained_cfg field has a value timm cannot use",
    # E06xx: weights (a checkpoint file or state_dict, not the spec)
    "E0601": "the weights file cannot be read",
    "E0602": "the weights file is not a valid checkpoint",
    "E0603": "the checkpoint's keys do not match the network",
    "E0604": "the checkpoint's shapes do not match the network",
    "E0605": "a checkpoint tensor has the wrong dtype",
    "E0606": "reading the checkpoint needs PyTorch",
    "E0607": "the checkpoint holds objects that loading refuses",
    "E0608": "the checkpoint holds NaN or infinite values",
    "E0609": "a key renaming is invalid",
    "E0610": "PyTorch is installed but fails to import",
    # E07xx: backends
    "E0701": "the network is too large to build",
    "E0702": "the PyTorch backend needs PyTorch",
    "E0703": "a module name is reserved by PyTorch",
    # E071x: the ONNX backend (`resdsl compile --to onnx`, `resdsl bench`)
    "E0711": "the ONNX backend needs the onnx package",
    "E0712": "running the model needs ONNX Runtime",
    "E0713": "the ONNX model fails verification",
    # E072x: the diagram (`resdsl draw`, `Network.draw()`)
    "E0721": "drawing needs Graphviz, which is not installed",
    "E0722": "the renderer cannot write this format",
    "E0723": "the renderer failed",
    "E0724": "the diagram is too large to render",
    # E073x: path counting (`resdsl paths`, `Network.paths()`)
    "E0731": "the network has too many joins to count its paths",
    "E0732": "plotting needs matplotlib",
    # E074x: backbone features (`--features`, `Network.features()`)
    "E0740": "the network has no feature maps to take features from",
    "E0741": "a feature index is out of range",
    "E0742": "a feature index is given twice",
    # W01xx: warnings
    "W0101": "a block is never used",
    "W0102": "a parameter or binding is never used",
    "W0103": "an import is never used",
}

# Not a spec mistake: the message says plainly that resdsl itself is at fault.
INTERNAL = "E9000"
