"""HELP's evaluation protocol (Lee et al., NeurIPS 2021), shared by the benchmarks.

Architectures with ``arch_index`` in [0, N) may be measured on any device; the test set is
[N, N + TEST_SIZE) with the fastest and slowest TRIM_FRACTION of the target's latencies removed.
"""

#: N per search space.
N_TRAIN = {"nasbench201": 900, "fbnet": 4000, "ofa_mbv3": 4000}
TEST_SIZE = 1000
TRIM_FRACTION = 0.10
#: HELP's training devices (those a table has are used).
HELP_TRAIN_DEVICES = ["1080ti_1", "1080ti_32", "1080ti_256", "silver_4114", "silver_4210r", "samsung_a50",
                      "pixel3", "essential_ph_1", "samsung_s7"]
