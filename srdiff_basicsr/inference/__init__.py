"""Super-resolving the user's own images (``srdiff-infer``): reading/writing any image, loading models."""
