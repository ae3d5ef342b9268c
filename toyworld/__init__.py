"""The toy world: a synthetic instruction/preference task with an exact oracle, and local tokenizers."""
