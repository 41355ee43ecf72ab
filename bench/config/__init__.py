"""Configuration as data: the profiles, the method registry and the per-domain
hyperparameters, each value with its source. Imports bench's top-level modules and bench.data."""
