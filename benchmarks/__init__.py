"""The keras-resblocks benchmark harness; run ``python benchmarks/run.py --help``."""
