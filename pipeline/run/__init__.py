"""Run: a run directory and its contracts (train options, config.json, checkpoints, metrics),
the device and precision a model runs with, and the forward pass train and infer share."""
