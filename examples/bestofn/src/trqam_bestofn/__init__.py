"""Best-of-N sampling of the BC flow by the critic: an example method for trqam-bench, installed
as a package of its own and found through the ``trqam_bench.methods`` entry point."""
