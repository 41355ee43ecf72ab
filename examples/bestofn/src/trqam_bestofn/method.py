"""The method as trqam-bench registers it (entry point ``trqam_bench.methods``: ``best-of-n``)."""

from bench.config.methods import Method, per_domain_config
from trqam_bestofn.agent import BestOfN, BestOfNConfig

# The profile's networks, critics, discount and chunk come from the shared fields; N is a constant
# here (a per-domain table {"c2": 16, ...} would be looked up at the task's domain).
METHOD = Method("best-of-n", BestOfN, per_domain_config(BestOfNConfig, clip=False, num_samples=8),
                "best-of-N sampling of the BC flow by the critic (trqam-bench example package)",
                pipeline="fine-tune")
