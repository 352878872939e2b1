"""Interoperability with SpeechBrain: converting a SpeechBrain speaker model folder
(``spkrec-ecapa-voxceleb`` layout) into our pretrained folder (``speechbrain``)."""
