"""Evaluation: numbers only. Exact fast metrics (``metrics``: EER, minDCF, actDCF, Cllr, DET),
fitting back-ends on data (``backend_fit``, ``scoring_fit``: cohort, LDA, calibration,
operating points; ``scoring`` applies them) and verification of trial lists end to end
(``verification``: embeddings -> scores -> ``metrics.json``). Draws nothing: the figures are
``analysis``'s."""
