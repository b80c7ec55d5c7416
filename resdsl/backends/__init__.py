"""Backends: the checked graph → PyTorch (`torch_*`), ONNX (`onnx_*`) and Graphviz (`dot_*`).

Each backend keeps one table from op to lowering (`torch_lowering.LOWERINGS`,
`onnx_lowering.EMITTERS`, `dot_lowering.LOOKS`); a test fails when an op of `ir/ops/` has no
entry in any of them.
Backends import their framework lazily, so importing this package costs nothing.
"""
