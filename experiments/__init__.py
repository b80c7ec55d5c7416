"""Experiments that measure the residual claims with resdsl (docs/experiments.md)."""
