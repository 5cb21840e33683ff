"""The live pipeline: timestamp synchronizer of running sources and the real-time engine."""
