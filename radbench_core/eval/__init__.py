"""Paired statistics between cells on the same test items: bootstrap, DeLong, Holm.

See docs/statistics.md for the methods and the marks the report prints.
"""

from radbench_core.eval.delong import DeLongResult, delong_per_class, delong_test
from radbench_core.eval.multiple import holm
from radbench_core.eval.paired import PairedResult, align, cluster_weights, paired_bootstrap
from radbench_core.eval.significance import (ALPHA, TIED_MARK, Comparison, pairwise,
                                              tied_with_best)
from radbench_core.eval.weighted_metrics import (METRIC_KIND, weighted_auroc, weighted_binary_auroc,
                                                  weighted_values)

__all__ = ["ALPHA", "TIED_MARK", "Comparison", "DeLongResult", "METRIC_KIND", "PairedResult", "align",
           "cluster_weights", "delong_per_class", "delong_test", "holm", "paired_bootstrap", "pairwise",
           "tied_with_best", "weighted_auroc", "weighted_binary_auroc", "weighted_values"]
