import hashlib

import numpy as np
import pytest

from trigger_ml.data import SimConfig, simulate, simulate_dataset, write_h5
from trigger_ml.data.features import FEATURE_NAMES
from trigger_ml.data.simulate import class_counts, digitise


def test_same_seed_same_windows_and_different_seed_differs():
    a = simulate(3000, seed=7)
    b = simulate(3000, seed=7)
    c = simulate(3000, seed=8)
    for name in ("images", "labels", "pt", "impact"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.images, c.images)


def test_same_seed_gives_byte_identical_files(tmp_path):
    digests = []
    for i in range(2):
        path = write_h5(simulate_dataset(2000, seed=3), tmp_path / f"d{i}.h5")
        digests.append(hashlib.sha256(path.read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_digitise_rounds_to_nearest_lsb_and_saturates():
    e = np.array([-1.0, 0.0, 0.124, 0.125, 0.26, 1.0, 255.6, 1e6], dtype=np.float32)
    got = digitise(e, 0.25, 10)
    np.testing.assert_array_equal(got, [0, 0, 0, 1, 1, 4, 1022, 1023])
    assert got.dtype == np.uint16


def test_simulated_counts_saturate_at_bit_width():
    w = simulate(2000, SimConfig(bits=6), seed=1)  # 63 counts = 15.75 GeV saturates often
    assert w.images.max() == 63
    assert (w.images == 63).any(axis=(1, 2)).mean() > 0.2


def test_class_counts_sum_and_follow_fractions():
    counts = class_counts(1001, SimConfig().fractions)
    assert sum(counts.values()) == 1001
    assert counts["eg"] == counts["pu"] == 400 or abs(counts["eg"] - 400) <= 1


def test_isolated_eg_shower_containment():
    """Without noise or PU: ~80% in the hit crystal of the 5x5 and 93-98% of it in 3x3."""
    cfg = SimConfig(pu=0, noise_gev=0, lsb_gev=0.25 / 64, bits=16, fractions={"eg": 1.0})
    w = simulate(20000, cfg, seed=11)
    img = w.images.astype(np.float64)
    c = cfg.window // 2
    e55 = img[:, c - 2 : c + 3, c - 2 : c + 3].sum(axis=(1, 2))
    e33 = img[:, c - 1 : c + 2, c - 1 : c + 2].sum(axis=(1, 2))
    hit = np.floor(w.impact + 0.5).astype(int) + c
    e_hit = img[np.arange(len(img)), hit[:, 0], hit[:, 1]]
    assert 0.75 <= np.mean(e_hit / e55) <= 0.85
    assert 0.93 <= np.mean(e33 / e55) <= 0.98
    assert np.all(np.abs(w.impact) <= 1.5)  # impact lies in the seed crystal or a neighbour


def test_pu_fakes_are_wider_and_less_compact_than_eg_at_pu200():
    ds = simulate_dataset(20000, SimConfig(pu=200), seed=5)
    sieie = ds.features[:, FEATURE_NAMES.index("sigma_ieta")]
    r25 = ds.features[:, FEATURE_NAMES.index("r25_55")]
    assert sieie[ds.is_background].mean() > sieie[ds.is_signal].mean() + 0.1
    assert r25[ds.is_background].mean() < r25[ds.is_signal].mean() - 0.05


def test_seed_is_the_window_maximum_of_its_3x3_and_above_threshold():
    cfg = SimConfig()
    w = simulate(5000, cfg, seed=2)
    c = cfg.window // 2
    assert (w.images[:, c, c] >= round(cfg.seed_threshold_gev / cfg.lsb_gev)).all()
    centre = w.images[:, c - 1 : c + 2, c - 1 : c + 2].reshape(len(w), 9)
    np.testing.assert_array_equal(centre.max(axis=1), w.images[:, c, c])


def test_more_pileup_means_more_energy_around_the_seed():
    quiet = simulate(4000, SimConfig(pu=0), seed=4)
    busy = simulate(4000, SimConfig(pu=200), seed=4)
    ring = lambda im: im.sum(axis=(1, 2)) - im[:, 2:7, 2:7].sum(axis=(1, 2))  # noqa: E731
    assert ring(busy.images.astype(int)).mean() > ring(quiet.images.astype(int)).mean() + 4


@pytest.mark.parametrize("bad", [dict(window=8), dict(bits=0), dict(lsb_gev=0.0), dict(fractions={"muon": 1.0})])
def test_bad_config_is_rejected(bad):
    with pytest.raises(ValueError):
        SimConfig(**bad)
