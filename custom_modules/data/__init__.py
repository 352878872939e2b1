"""Data: the utterance catalogue (``catalogue``: one ``Utterance`` type, the prepared CSVs) and
verification trial lists (``trials``). Reads CSVs and lists; never audio or models."""
