"""Versioned reference-architecture sets: the architectures whose measured
latencies form a device's hardware signature.

``help-v1`` is the set of HELP (Lee et al., NeurIPS 2021): 10 fixed
architectures per search space, given by their index in HELP's data (noted
after each string). A set is versioned because a saved model's device
embeddings are only meaningful with the exact same architectures; model files
store the strings themselves too.
"""

from __future__ import annotations

from edgeperf.errors import UnknownNameError

__all__ = ["REFERENCE_SETS", "DEFAULT_REFERENCE_SET", "reference_archs"]

DEFAULT_REFERENCE_SET = "help-v1"

REFERENCE_SETS: dict[str, dict[str, tuple[str, ...]]] = {
    "help-v1": {
        "nasbench201": (
            '|avg_pool_3x3~0|+|none~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|',  # arch_index 11982
            '|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|',  # arch_index 431
            '|skip_connect~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|skip_connect~1|none~2|',  # arch_index 55
            '|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|',  # arch_index 9
            '|none~0|+|nor_conv_1x1~0|none~1|+|nor_conv_3x3~0|nor_conv_1x1~1|nor_conv_1x1~2|',  # arch_index 14451
            '|skip_connect~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|',  # arch_index 8636
            '|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|none~0|nor_conv_1x1~1|avg_pool_3x3~2|',  # arch_index 9881
            '|skip_connect~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|',  # arch_index 13479
            '|avg_pool_3x3~0|+|none~0|skip_connect~1|+|none~0|nor_conv_1x1~1|avg_pool_3x3~2|',  # arch_index 6196
            '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|',  # arch_index 1462
        ),
        "fbnet": (
            'k3_e1_g2-skip-k5_e3-k5_e3-skip-k3_e1-k3_e6-k5_e1-k3_e6-k5_e6-skip-k5_e6-k5_e1-k3_e6-k3_e3-k5_e1_g2-k5_e6-k3_e6-k3_e1-k3_e1_g2-k3_e6-k5_e6',  # arch_index 3328
            'k5_e1_g2-k5_e1-skip-k5_e1_g2-k3_e1_g2-k5_e3-skip-k5_e1_g2-k3_e6-k3_e1-k5_e1-skip-k3_e1-k3_e3-k5_e1-k5_e1_g2-k3_e1-k5_e3-k5_e3-k3_e1-k3_e1-k5_e1_g2',  # arch_index 3790
            'k5_e6-k3_e3-k5_e6-k5_e1_g2-k5_e1-k5_e3-skip-k3_e1-k5_e3-k5_e3-k5_e1_g2-k3_e1_g2-k3_e3-k5_e1-k3_e1-k5_e6-k5_e1_g2-k5_e3-k3_e1-k3_e6-k3_e6-k3_e3',  # arch_index 3313
            'skip-k3_e1_g2-k5_e3-k3_e1_g2-k5_e3-k3_e3-k5_e6-k3_e1_g2-k5_e3-skip-k5_e6-k5_e1_g2-k3_e3-k3_e1-k3_e1_g2-skip-k3_e1-k3_e6-k3_e3-k3_e3-k5_e1_g2-k5_e1',  # arch_index 890
            'k3_e1_g2-k5_e6-k3_e1-k5_e6-k5_e1-k3_e6-k5_e1-k5_e3-k5_e3-k3_e1_g2-k3_e1_g2-k3_e1-k5_e1_g2-k5_e3-k5_e6-k5_e6-k5_e3-k5_e6-k5_e3-k3_e6-k3_e1_g2-k3_e3',  # arch_index 3052
            'k3_e3-k3_e3-k5_e1-k5_e1_g2-k5_e6-k3_e3-k5_e1_g2-k5_e6-k3_e3-k3_e3-k3_e1_g2-k3_e3-k3_e6-k3_e1_g2-k5_e1-k5_e3-k3_e6-k5_e3-k3_e6-k3_e3-k3_e1-k3_e1_g2',  # arch_index 2538
            'k5_e1-k5_e1-k5_e1_g2-k5_e1_g2-k3_e6-k3_e1_g2-k3_e1_g2-k3_e1-k5_e1-k3_e3-k3_e3-k5_e1-k3_e3-k3_e1-k5_e1_g2-k3_e1-k5_e1_g2-k5_e3-k3_e3-k5_e1_g2-k3_e3-k5_e1_g2',  # arch_index 1640
            'skip-skip-k5_e1-k5_e1-k5_e3-skip-k3_e1_g2-skip-k3_e1-k3_e6-k3_e1_g2-k3_e3-skip-skip-k5_e1_g2-skip-k3_e3-k3_e3-skip-k3_e1_g2-k5_e1-skip',  # arch_index 2514
            'k3_e1-k5_e6-k5_e3-k5_e6-k3_e6-k3_e6-k5_e3-k3_e1_g2-k5_e6-k5_e1-k3_e6-k5_e6-k5_e6-k3_e1-skip-k5_e1-skip-k5_e1_g2-k5_e3-skip-k5_e1_g2-k3_e1_g2',  # arch_index 457
            'k3_e1_g2-k3_e3-k5_e1-k3_e1-k5_e6-k3_e6-k3_e1-k5_e1_g2-k5_e3-k5_e1-k5_e1_g2-k5_e6-k3_e1-k3_e1_g2-k5_e1-k3_e6-k3_e3-k3_e6-k3_e6-k3_e6-k3_e1-k5_e3',  # arch_index 2100
        ),
        "ofa_mbv3": (
            '{"d":[4,3,3,4,2],"e":[3,6,3,6,6,4,3,6,4,6,6,3,3,4,4,3,3,3,3,4],"ks":[7,7,5,5,7,7,3,5,7,7,5,7,3,5,3,3,3,5,5,7],"r":196}',  # arch_index 1316
            '{"d":[3,2,2,3,2],"e":[4,3,6,6,6,6,4,3,3,6,3,4,6,3,3,4,6,3,4,3],"ks":[7,3,3,7,5,3,7,3,5,7,7,7,3,7,5,5,3,5,7,7],"r":172}',  # arch_index 1587
            '{"d":[2,2,2,2,3],"e":[4,4,6,6,4,4,4,6,6,3,6,6,3,6,3,3,3,6,4,6],"ks":[7,5,7,3,3,3,7,3,7,7,5,7,5,5,7,7,7,7,7,3],"r":204}',  # arch_index 1621
            '{"d":[4,3,4,4,4],"e":[4,3,3,6,3,3,4,4,6,6,4,6,3,6,6,6,4,4,4,6],"ks":[3,7,5,7,3,3,5,7,3,3,5,3,7,5,3,7,7,5,5,3],"r":200}',  # arch_index 1636
            '{"d":[2,2,2,3,2],"e":[4,6,6,3,4,6,6,6,4,3,3,3,6,4,4,3,4,6,4,4],"ks":[5,7,3,5,7,7,3,7,7,3,7,7,7,7,7,3,7,7,5,5],"r":136}',  # arch_index 1980
            '{"d":[4,2,3,4,4],"e":[6,4,3,6,6,6,6,3,6,4,6,6,6,6,4,3,4,6,6,3],"ks":[7,7,5,7,3,7,3,5,3,7,7,5,3,3,7,7,3,5,7,7],"r":224}',  # arch_index 2329
            '{"d":[4,2,4,2,3],"e":[6,3,4,4,3,3,3,6,3,3,4,4,3,3,6,4,3,6,6,3],"ks":[5,5,7,3,3,3,3,7,7,3,3,5,7,3,3,7,3,3,3,5],"r":132}',  # arch_index 2487
            '{"d":[2,4,2,4,4],"e":[3,6,6,4,6,4,3,4,6,4,4,3,6,3,4,3,4,3,3,6],"ks":[7,3,7,3,3,7,5,7,7,3,3,3,3,3,3,7,7,7,3,7],"r":152}',  # arch_index 3355
            '{"d":[2,4,3,4,4],"e":[4,4,4,6,6,3,6,4,4,4,4,4,3,4,6,4,6,3,3,3],"ks":[7,3,3,5,3,7,3,5,5,5,5,3,5,5,3,5,5,5,3,7],"r":152}',  # arch_index 3740
            '{"d":[4,4,3,4,2],"e":[3,3,4,6,6,6,4,3,6,3,3,3,3,3,6,3,6,6,6,3],"ks":[3,3,7,7,7,7,7,7,5,7,3,7,3,5,5,3,3,7,3,5],"r":200}',  # arch_index 4948
        ),
    },
}


def reference_archs(space: str, reference_set: str = DEFAULT_REFERENCE_SET) -> list[str]:
    """Canonical strings of the reference architectures of ``space`` in ``reference_set``."""
    from edgeperf import spaces

    if reference_set not in REFERENCE_SETS:
        raise UnknownNameError("reference set", reference_set, REFERENCE_SETS)
    sets = REFERENCE_SETS[reference_set]
    if space not in sets:
        raise UnknownNameError(f"search space of reference set {reference_set!r}", space, sets)
    return spaces.get(space).validate(sets[space])
