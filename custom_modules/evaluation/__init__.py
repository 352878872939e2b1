"""Evaluation: numbers only. Exact fast metrics (``metrics``: EER, minDCF, actDCF, Cllr, DET),
scoring (``scoring``: cosine, S-/AS-norm, LDA, calibration) and verification of trial lists
end to end (``verification``: embeddings -> scores -> ``metrics.json``). Draws nothing: the
figures are ``analysis``'s."""
