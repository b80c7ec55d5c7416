"""Backends: the checked graph → PyTorch (`torch_*`), and later ONNX and Graphviz.

Each backend keeps one table from op to lowering (`torch_lowering.LOWERINGS`); a test fails
when an op of `ir/ops.py` has no entry. Backends import their framework lazily, so importing
this package costs nothing.
"""
