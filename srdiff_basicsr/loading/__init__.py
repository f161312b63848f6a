"""A model on disk: weight files, the manifest model.yml, and the folders older than it."""
