"""Quality and speed: the six metrics, evaluation over the shared split, benchmarks."""
