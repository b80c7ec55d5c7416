"""The zoo's rows for timm dpn (see resdsl/zoo/entry.py): specs/dpn.res, specs/dpn92.res's
network with the builder arguments of timm/models/dpn.py as parameters (k_r, groups, k_sec,
inc_sec, num_init_features as `init`, small, b, act_layer as `act`)."""

from __future__ import annotations

from resdsl.zoo.entry import ZooEntry, timm_entries

_SMALL = {"small": True, "init": 10, "k_r": 128, "groups": 32, "inc_sec": [16, 32, 32, 64]}
_68 = {**_SMALL, "k_sec": [3, 4, 12, 3]}

ENTRIES: tuple[ZooEntry, ...] = timm_entries("dpn", "dpn.res", {
    "dpn48b": {**_SMALL, "k_sec": [3, 4, 6, 3], "b": True, "act": "silu"},
    "dpn68": _68,
    "dpn68b": {**_68, "b": True},
    "dpn92": {},
    "dpn98": {"init": 96, "k_r": 160, "groups": 40, "k_sec": [3, 6, 20, 3],
              "inc_sec": [16, 32, 32, 128]},
    "dpn107": {"init": 128, "k_r": 200, "groups": 50, "k_sec": [4, 8, 20, 3],
               "inc_sec": [20, 64, 64, 128]},
    "dpn131": {"init": 128, "k_r": 160, "groups": 40, "k_sec": [4, 8, 28, 3],
               "inc_sec": [16, 32, 32, 128]},
})
