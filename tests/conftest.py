"""Shared, session-scoped fixtures: small data and tiny trained models, built once."""

from __future__ import annotations

import os

os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TINY = {"epochs": 2, "batch_size": 256, "patience": 2}


@pytest.fixture(scope="session")
def small_data():
    from trigger_ml.data import simulate_dataset

    return simulate_dataset(4000, seed=5)


def tiny_card(name: str, **training):
    from trigger_ml.config import load_card

    return load_card(ROOT / "models" / f"{name}.yaml").with_overrides(training={**TINY, **training})


@pytest.fixture(scope="session")
def trained(small_data, tmp_path_factory):
    """Train a tiny version of each reference model once per session: name -> (card, run dir, metrics)."""
    from trigger_ml.train.fit import train

    cache = {}

    def get(name: str):
        if name not in cache:
            card = tiny_card(name)
            out = tmp_path_factory.mktemp("runs") / name
            cache[name] = (card, out, train(card, small_data, out))
        return cache[name]

    return get


@pytest.fixture(scope="session", autouse=True)
def compile_cache(tmp_path_factory):
    """Every session compiles into its own empty cache (never the user's ~/.cache)."""
    root = tmp_path_factory.mktemp("cache")
    old = os.environ.get("TRIGGER_ML_CACHE")
    os.environ["TRIGGER_ML_CACHE"] = str(root)
    yield root
    if old is None:
        os.environ.pop("TRIGGER_ML_CACHE", None)
    else:
        os.environ["TRIGGER_ML_CACHE"] = old


@pytest.fixture(scope="session")
def exact_data():
    """10,000 windows for the bit-exactness checks (another seed than the training data)."""
    from trigger_ml.data import simulate_dataset

    return simulate_dataset(10_000, seed=11)


@pytest.fixture(scope="session")
def compiled(trained, tmp_path_factory):
    """Compile a tiny trained model once per session and strategy: (name, strategy) -> Result."""
    from trigger_ml.compile import Options, compile_run

    cache = {}

    def get(name: str, strategy: str):
        if (name, strategy) not in cache:
            _, run, _ = trained(name)
            out = tmp_path_factory.mktemp("firmware") / f"{name}-{strategy}"
            cache[name, strategy] = compile_run(run, out, Options(strategy=strategy))
        return cache[name, strategy]

    return get
