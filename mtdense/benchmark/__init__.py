"""Method benchmark (tools/benchmark_methods.py): every PETL method on one upstream backbone."""
