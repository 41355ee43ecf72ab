"""Data: loading OGBench datasets (official or regenerated), regenerating them with ogbench's
oracles, the batch sampler and the replay buffer. Imports only bench's top-level modules."""
