import numpy as np

from trigger_ml.data.baseline import baseline_pass, working_point
from trigger_ml.data.features import FEATURE_NAMES


def _rows(pt, ss, iso):
    f = np.zeros((len(pt), len(FEATURE_NAMES)), np.float32)
    f[:, FEATURE_NAMES.index("et_3x5")] = pt
    f[:, FEATURE_NAMES.index("r25_55")] = ss
    f[:, FEATURE_NAMES.index("iso")] = iso
    return f


def test_cuts_at_known_points():
    # pT 20: SS >= 0.94 + 0.052 exp(-0.88) = 0.9616; iso < 0.85 - 0.16 = 0.69
    pt = [20, 20, 20, 100, 100, 140]
    ss = [0.97, 0.95, 0.97, 0.95, 0.95, 0.1]
    iso = [0.5, 0.5, 0.7, 0.2, 0.22, 9.0]
    got = baseline_pass(_rows(pt, ss, iso))
    np.testing.assert_array_equal(got, [True, False, False, True, False, True])


def test_working_point_counts():
    wp = working_point(np.array([1, 0, 1, 1], bool), np.array([1, 1, 0, 0], bool), np.array([0, 0, 1, 1], bool))
    assert (wp.efficiency, wp.fake_rate, wp.n_signal, wp.n_background) == (0.5, 1.0, 2, 2)
