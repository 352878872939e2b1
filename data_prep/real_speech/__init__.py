"""Real recorded speech from the package registries, as folder-per-speaker collections and
evaluation sets (one builder per source, ``sets`` for the split and the trial lists)."""
