"""Inputs: what feeds a model from the cache: frame sampling, streams, augmentation, batches."""
