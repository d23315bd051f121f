"""Exit codes: every usage error and expected failure is exit 3 with one line and its fix; an
unexpected exception is exit 5 with a report file; Ctrl-C is 130 with a word on what was kept.
Bad card values and bad data attributes each name the key, the value and what is allowed."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from trigger_ml.cli import main
from trigger_ml.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE

ROOT = Path(__file__).resolve().parent.parent


def _exit(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", "fw", "--bogus"],
        ["compile"],
        ["nosuchcommand"],
        ["data", "simulate", "--events", "lots"],
        ["compile", "run", "--clock", "abc"],
        ["run", "--fuzz", "-1"],
        ["verify", "fw", "--fuzz", "10000000"],
    ],
)
def test_usage_errors_exit_3_with_one_line_and_no_traceback(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = _exit(argv, capsys)
    assert code == EXIT_USAGE and "error:" in err and "Traceback" not in err


def test_an_unexpected_exception_exits_5_with_a_report_file(capsys, monkeypatch):
    import trigger_ml.data as D

    def boom(*a, **k):
        raise RuntimeError("a bug")

    monkeypatch.setattr(D, "simulate", boom)
    code, err = _exit(["data", "simulate", "--events", "10", "--out", "/tmp/never.h5"], capsys)
    assert code == EXIT_INTERNAL and "internal error: RuntimeError: a bug" in err
    report = Path(err.split("report is in ")[1].split(";")[0].strip())
    assert "RuntimeError: a bug" in report.read_text()
    report.unlink()


def test_ctrl_c_exits_130_and_says_what_was_kept(capsys, monkeypatch):
    import trigger_ml.data as D

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(D, "simulate", interrupted)
    code, err = _exit(["data", "simulate", "--events", "10", "--out", "/tmp/never.h5"], capsys)
    assert code == EXIT_INTERRUPTED and "interrupted" in err and "kept" in err


BAD_CARD_VALUES = [
    ({"layers": [{"type": "dense", "units": "24"}, {"type": "dense", "units": 1}]}, "units '24'"),
    ({"layers": [{"type": "dense", "units": 0}, {"type": "dense", "units": 1}]}, "units 0"),
    ({"layers": [{"type": "dense", "units": 2.5}, {"type": "dense", "units": 1}]}, "units 2.5"),
    ({"quantization": {"weight_bits": -3}}, "weight_bits: -3 is out of range"),
    ({"quantization": {"weight_bits": 0}}, "weight_bits: 0 is out of range"),
    ({"quantization": {"weight_bits": 64}}, "weight_bits: 64 is out of range"),
    ({"quantization": {"act_frac_bits": -2}}, "act_frac_bits: -2 is out of range"),
    ({"training": {"epochs": 0}}, "epochs: 0 is out of range"),
    ({"training": {"batch_size": 0}}, "batch_size: 0 is out of range"),
    ({"training": {"learning_rate": -1}}, "learning_rate: -1.0 is out of range"),
    ({"training": {"validation_fraction": 1.0}}, "validation_fraction: 1.0 is out of range"),
    ({"pruning": {"default": 1.5}}, "default: 1.5 is out of range"),
    ({"budget": {"lut": "lots"}}, "lut: expected a number, got 'lots'"),
    ({"firmware": {"clock_ns": 0}}, "clock_ns: 0.0 is out of range"),
    ({"name": "my model"}, "model name 'my model'"),
    ({"name": "m\u00fcon"}, "model name"),
    ({"name": 'a"b'}, "model name"),
    ({"layers": [{"type": "dense", "units": 4}] * 2000 + [{"type": "dense", "units": 1}]}, "2001 layers"),
]


@pytest.mark.parametrize("change,message", BAD_CARD_VALUES)
def test_each_bad_card_value_is_one_error_naming_key_value_and_range(change, message, tmp_path, capsys):
    card = yaml.safe_load((ROOT / "models" / "eg_mlp.yaml").read_text())
    for key, value in change.items():
        card[key] = (
            {**card.get(key, {}), **value} if isinstance(value, dict) and isinstance(card.get(key), dict) else value
        )
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(card))
    code, err = _exit(["train", str(tmp_path / "bad.yaml"), "--data", str(tmp_path / "none.h5")], capsys)
    assert code == EXIT_USAGE and message in err.replace("\n", " ") and "fix:" in err, err


@pytest.fixture(scope="module")
def small_h5(tmp_path_factory):
    from trigger_ml.data import simulate_dataset, write_h5

    path = tmp_path_factory.mktemp("data") / "d.h5"
    write_h5(simulate_dataset(200, seed=2), path)
    return path


def _plot(path, capsys, tmp_path):
    return _exit(["data", "plot", str(path), "--out", str(tmp_path / "plots")], capsys)


def test_bad_hdf5_attributes_and_sizes(small_h5, tmp_path, capsys):
    bits = tmp_path / "bits.h5"
    bits.write_bytes(small_h5.read_bytes())
    with h5py.File(bits, "a") as f:
        f.attrs["bits"] = "ten"
    code, err = _plot(bits, capsys, tmp_path)
    assert code == 3 and "metadata 'bits' is 'ten'" in err
    huge = tmp_path / "huge.h5"
    huge.write_bytes(small_h5.read_bytes())
    with h5py.File(huge, "a") as f:  # declares 10**9 windows without storing them (chunked, unwritten)
        del f["images"], f["labels"]
        f.create_dataset("images", shape=(10**9, 9, 9), dtype="u2", chunks=(1024, 9, 9))
        f.create_dataset("labels", shape=(10**9,), dtype="i1", chunks=(4096,))
    code, err = _plot(huge, capsys, tmp_path)
    assert code == 3 and "1,000,000,000 windows need about" in err


def test_bad_npz_files(small_h5, tmp_path, capsys):
    from trigger_ml.data import read_dataset

    ds = read_dataset(small_h5)
    np.savez(tmp_path / "empty.npz")
    code, err = _plot(tmp_path / "empty.npz", capsys, tmp_path)
    assert code == 3 and "'images' is missing" in err
    np.savez(
        tmp_path / "lsb.npz", images=ds.images, labels=ds.labels, class_names=np.array(ds.class_names), lsb_gev="abc"
    )
    code, err = _plot(tmp_path / "lsb.npz", capsys, tmp_path)
    assert code == 3 and "'lsb_gev' is 'abc'" in err
    np.savez(
        tmp_path / "zero.npz",
        images=ds.images[:0],
        labels=ds.labels[:0],
        class_names=np.array(ds.class_names),
        lsb_gev=0.25,
    )
    code, err = _plot(tmp_path / "zero.npz", capsys, tmp_path)
    assert code == 3 and "no windows" in err


def test_root_data_from_the_command_line_with_its_schema(small_h5, tmp_path, capsys):
    from trigger_ml.data import read_dataset
    from trigger_ml.data.io import write_root

    ds = read_dataset(small_h5)
    schema = write_root(ds, tmp_path / "d.root")
    (tmp_path / "schema.yaml").write_text(
        yaml.safe_dump(
            {
                "tree": schema.tree,
                "branches": schema.branches,
                "class_names": list(schema.class_names),
                "lsb_gev": schema.lsb_gev,
            }
        )
    )
    main(
        [
            "data",
            "plot",
            str(tmp_path / "d.root"),
            "--root-schema",
            str(tmp_path / "schema.yaml"),
            "--out",
            str(tmp_path / "plots"),
        ]
    )
    assert "baseline" in capsys.readouterr().out
    code, err = _plot(tmp_path / "d.root", capsys, tmp_path)
    assert code == 3 and "--root-schema" in err


def test_same_seed_gives_byte_identical_data_files(tmp_path):
    for name in ("a.h5", "b.h5"):
        main(["data", "simulate", "--events", "300", "--seed", "4", "--out", str(tmp_path / name)])
        time.sleep(1.1)  # a timestamp would differ now
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["compile", "report"])
def test_sigkill_leaves_nothing_that_the_next_run_does_not_clean(stage, trained, tmp_path):
    """SIGKILL mid-stage (no handler runs): the output is absent or whole, and the temporary names the
    killed process left beside it, in the cache and in the temp folder are removed by the next run."""
    from trigger_ml.compile import Options, compile_run
    from trigger_ml.layout import TMP_PREFIX

    _, run, _ = trained("eg_mlp")
    env = {**os.environ, "TRIGGER_ML_CACHE": str(tmp_path / "cache"), "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    fw = tmp_path / "fw"
    if stage == "report":
        compile_run(run, fw, Options())
    argv = ["compile", str(run), "--out", str(fw), "--no-cache"] if stage == "compile" else ["report", str(fw)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "trigger_ml.cli", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and not _temporaries(tmp_path):
        time.sleep(0.2)
    assert _temporaries(tmp_path), "the stage never made a temporary name"
    os.killpg(proc.pid, signal.SIGKILL)  # the job and its tool processes, as a batch system kills it
    proc.wait()
    assert _temporaries(tmp_path)  # left behind by the killed process
    if stage == "compile":
        assert not fw.exists()
    r = subprocess.run([sys.executable, "-m", "trigger_ml.cli", *argv], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    left = [p for p in _temporaries(tmp_path) if TMP_PREFIX in p.name]
    assert left == [], left


def _temporaries(root: Path) -> list[Path]:
    from trigger_ml.layout import TMP_PREFIX

    return [p for p in root.rglob(f"{TMP_PREFIX}*")]
