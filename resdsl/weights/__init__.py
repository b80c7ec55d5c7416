"""Weights: the shared initialiser, checkpoint reading and matching, with numpy alone.

- `initial_state(graph, seed)`: every state_dict key's initial value (init.py);
- `read_checkpoint(path)`: a .safetensors or PyTorch file's tensors, the file typed and
  sized before it is read, a .safetensors header checked before its data is mapped (io.py,
  _safetensors.py);
- `load_state(graph, weights)`: a checkpoint matched to the network's keys, after unwrapping
  and renaming (rename.py), by name or by structure, and a `LoadReport` of what happened
  (match.py).

torch is imported only to read PyTorch files or convert torch tensors. Problems with a
weights file are SpecErrors with E06xx diagnostics.
"""

from resdsl.weights.init import initial_state
from resdsl.weights.io import read_checkpoint
from resdsl.weights.match import LoadReport, load_state

__all__ = ["LoadReport", "initial_state", "load_state", "read_checkpoint"]
