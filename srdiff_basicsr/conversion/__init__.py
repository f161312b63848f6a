"""Checkpoint conversion: official SRDiff, ECDP and StableSR checkpoints and Stable Diffusion's diffusers folders into this project's networks, and the folder the converters write."""
