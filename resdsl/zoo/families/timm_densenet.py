"""The zoo's rows for timm densenet (see resdsl/zoo/entry.py): specs/densenet121.res with the
builder arguments of timm/models/densenet.py (growth_rate as `growth`, block_config as
`blocks`; num_init_features is 2 · growth_rate there, `init` here; stem_type 'deep' as `deep`,
aa_layer BlurPool2d in the stem only, aa_stem_only's default, as `blur`)."""

from __future__ import annotations

from resdsl.zoo.entry import ZooEntry, timm_entries

ENTRIES: tuple[ZooEntry, ...] = timm_entries("densenet", "densenet121.res", {
    "densenet121": {},
    "densenet161": {"growth": 48, "init": 96, "blocks": [6, 12, 36, 24]},
    "densenet169": {"blocks": [6, 12, 32, 32]},
    "densenet201": {"blocks": [6, 12, 48, 32]},
    "densenet264d": {"growth": 48, "init": 96, "blocks": [6, 12, 64, 48], "deep": True},
    "densenetblur121d": {"deep": True, "blur": True},
})
