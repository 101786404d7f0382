"""``python -m bench --profile quick|full``: every benchmark, written to bench/RESULTS.md."""

from bench.run import main

main()
