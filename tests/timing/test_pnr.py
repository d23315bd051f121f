"""The cross-check flow: nextpnr-ecp5 reproduces the ECP5 figures the model carries (a changed
router or timing database shows up here), and the model's path on a placed-and-routed design."""

from __future__ import annotations

import dataclasses

import pytest

from trigger_ml.fpga import ECP5

pytestmark = pytest.mark.slow


def test_calibration_reproduces_the_ecp5_figures():
    from trigger_ml.timing import pnr

    got = pnr.calibrate()
    want = dataclasses.asdict(ECP5)
    for k in ("t_clk_q", "t_setup", "t_lut", "t_net", "t_carry_entry", "t_carry_bit", "t_carry_exit"):
        assert got[k] == pytest.approx(want[k], abs=2e-3), (k, got[k], want[k])
    assert len(got["t_net_samples"]) >= 5
