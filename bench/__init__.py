"""Quality and speed benchmarks, run against the public data in ../shared/eval."""
