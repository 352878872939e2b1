"""The interface: what a user of a trained model calls. ``SpeakerEncoder`` (``encoder``) embeds
files, verifies pairs and enrols and identifies speakers with a pretrained folder; the command
line (``python -m custom_modules``) is built on it."""
