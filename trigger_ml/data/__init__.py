"""Stage 1, data: simulated ECAL windows, shower-shape features, the cut-based baseline, file I/O."""

from trigger_ml.data.dataset import Dataset, from_windows
from trigger_ml.data.io import RootSchema, load_root_schema, read_dataset, write_h5
from trigger_ml.data.simulate import SimConfig, simulate


def simulate_dataset(n_events: int, cfg: SimConfig | None = None, seed: int = 0, progress=None) -> Dataset:
    """Simulate windows and compute their features in one call."""
    return from_windows(simulate(n_events, cfg, seed, progress=progress))


__all__ = [
    "Dataset",
    "RootSchema",
    "load_root_schema",
    "SimConfig",
    "from_windows",
    "read_dataset",
    "simulate",
    "simulate_dataset",
    "write_h5",
]
