"""Passes over the elaborated graph: structure checks, shape verification, counting."""
