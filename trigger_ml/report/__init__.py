"""The report stage: latency and resources of a compiled model, each figure labelled by its source."""
