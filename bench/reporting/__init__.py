"""Reporting from stored runs: tables, statistics, figures, learning curves, the report, the
CI regression gate and the studies. May import every other part of bench."""
