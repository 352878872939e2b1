"""Scoring: what a model's back-end does to embeddings, the part that ``SpeakerEncoder``, the
command line and the verification recipe all apply. ``scores``: cosine, S-/AS-norm, a linear
projection, calibration; ``backend``: the back-end a model folder or sidecar carries (Scoring,
Decisions, operating points); ``trial_rows``: embedded utterances -> rows, trials -> pairs of
rows. Fitting any of it on data is ``evaluation``'s (``backend_fit``, ``scoring_fit``)."""
