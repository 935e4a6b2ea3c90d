"""Subprocess entry point: ``python -m benchmarks.memory SUITE CASE SIDE DEVICE`` prints JSON."""

import json
import sys

from benchmarks.harness import find_case, measure_memory_here

if __name__ == "__main__":
    suite, name, side, device = sys.argv[1:5]
    print(json.dumps(measure_memory_here(find_case(suite, name), side, device)))
