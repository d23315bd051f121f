import pytest

from trigger_ml.cli import main


def test_simulate_then_plot(tmp_path, capsys):
    out = tmp_path / "d.h5"
    main(["data", "simulate", "--events", "3000", "--seed", "2", "--out", str(out)])
    assert out.exists()
    main(["data", "plot", str(out), "--out", str(tmp_path / "plots")])
    assert "signal efficiency" in capsys.readouterr().out
    for name in ("features.png", "mean_images.png", "baseline_vs_pt.png"):
        assert (tmp_path / "plots" / name).stat().st_size > 10_000


def test_bad_option_exits_3_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "d.h5"
    with pytest.raises(SystemExit) as e:
        main(["data", "simulate", "--events", "10", "--window", "8", "--out", str(out)])
    assert e.value.code == 3
    assert "window must be odd" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_missing_data_file_exits_3(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["data", "plot", str(tmp_path / "nope.h5")])
    assert e.value.code == 3
    assert "no such file" in capsys.readouterr().err
