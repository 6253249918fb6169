"""A protocol is a function (inputs, hparams, seed) -> ProtocolResult; here: nearest class centroid.

It receives the frozen features radbench extracted and cached (FrozenInputs), fits on train and
scores test; the AUROC comes from radbench's metric, with its bootstrap confidence interval, and the
test predictions go back to radbench (``test_predictions``) for paired comparisons between models.
"""

import numpy as np

from radbench_core.eval.metrics import auroc_metric
from radbench_core.protocols import ProtocolSpec
from radbench_core.protocols.base import FrozenInputs, ProtocolResult, test_predictions


def run_centroid(inputs: FrozenInputs, hparams: dict, seed: int) -> ProtocolResult:
    def feats(split: str) -> np.ndarray:
        x = inputs.features[split]["cls"][:, -1]
        return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-8)

    train, labels, test = feats("train"), inputs.labels["train"], feats("test")
    if inputs.label_kind == "multilabel":       # per class: positives' centroid minus negatives'
        directions = np.stack([train[labels[:, k] == 1].mean(axis=0) - train[labels[:, k] == 0].mean(axis=0)
                               if np.any(labels[:, k] == 1) and np.any(labels[:, k] == 0)
                               else np.zeros(train.shape[1]) for k in range(inputs.num_classes)])
        scores = test @ directions.T
    else:                                       # softmax over similarities to each class centroid
        centroids = np.stack([train[labels == k].mean(axis=0) if np.any(labels == k) else np.zeros(train.shape[1])
                              for k in range(inputs.num_classes)])
        logits = test @ centroids.T / hparams["temperature"]
        scores = np.exp(logits - logits.max(axis=1, keepdims=True))
        scores /= scores.sum(axis=1, keepdims=True)
    auroc = auroc_metric(inputs.labels["test"], scores, inputs.label_kind,
                         resamples=hparams["bootstrap_resamples"], seed=seed)
    # test_predictions: compare-models and the report's "≈" marks then cover this protocol too
    return ProtocolResult(metrics={"auroc": auroc}, chosen={"temperature": hparams["temperature"]},
                          extra=test_predictions(inputs.labels["test"], scores))


CENTROID = ProtocolSpec("centroid", "classification", "frozen", "my_protocol:run_centroid",
                        variant="resolution", hparam_keys=("temperature", "bootstrap_resamples"),
                        description="nearest class centroid on the last block's class token")
