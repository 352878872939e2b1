"""Who spoke when: speaker diarization on the model's embeddings."""
