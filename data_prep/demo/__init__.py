"""The demo corpus, generated here from the speech synthesis voices Debian packages: the
voices (``voices``, ``install_voices``), the text they read (``text``), the recording
conditions (``channels``), the generator (``corpus``) and its preparation into training and
test CSVs (``prepare``). Only ``make demo`` and the demo's tests use it."""
