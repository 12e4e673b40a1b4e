"""`make bench`: throughput, gas, anchoring latency and memory of the gateway, measured locally.

`python -m bench.run` prints human-readable lines, then one JSON object as its last line. See the
"Benchmark" section of README.md for what each figure means.
"""
