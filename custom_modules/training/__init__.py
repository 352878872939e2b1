"""Training: the recipe (``recipe``: prepare -> train -> export), the SpeechBrain ``Brain``
(``brain``), the AAM-softmax head (``losses``), learning-rate schedules and the time-budget
epoch counter (``schedules``), per-sample SpecAugment (``spec_augment``), training examples
(``examples``: random crops, speed-perturbed speakers), atomic checkpoints
(``checkpointing``), several processes (``distributed``) and the export of the best checkpoint
(``export_pretrained``)."""
