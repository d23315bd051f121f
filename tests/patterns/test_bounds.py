"""Pattern files, link mappings and data attributes as untrusted input: bounded reads and one exit-3
error naming the file and the fix (issue 27, items 10 and 12).

The unbounded cases run in a child process with a 1.5 GB address-space limit and a time limit, so
that code without the bounds fails the test (MemoryError, timeout) instead of filling the machine.
"""

import json
import resource
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from trigger_ml.cli import main
from trigger_ml.errors import EXIT_USAGE, SchemaError
from trigger_ml.patterns import BoardData, LinkMapping, layout, read_file, write_file, write_set
from trigger_ml.patterns.formats import MAX_CHARS, MAX_FRAMES

ROOT = Path(__file__).resolve().parents[2]
LIMIT_BYTES = 1536 << 20


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))


def _read_in_child(path: Path) -> str:
    """`read_file(path)` in a child process under LIMIT_BYTES and 60 s: what it printed."""
    code = textwrap.dedent(
        f"""
        from trigger_ml.errors import SchemaError
        from trigger_ml.patterns import read_file
        try:
            read_file({str(path)!r})
            print("READ")
        except SchemaError as exc:
            print("SchemaError", exc)
        """
    )
    try:
        r = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, preexec_fn=_limited
        )
    except subprocess.TimeoutExpired:
        return "TIMEOUT"
    return r.stdout + r.stderr[-500:]


def _exit(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code, capsys.readouterr().err


def _set(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    lay_in = layout(LinkMapping(links=(0,)), [10] * 4, [False] * 4)
    lay_out = layout(LinkMapping(links=(8,)), [19, 19], [True, True])
    out = tmp_path / "set"
    write_set(
        out, rng.integers(0, 1 << 10, (20, 4)), rng.integers(-(1 << 18), 1 << 18, (20, 2)), lay_in, lay_out, "emp2"
    )
    return out


# ----------------------------------------------------------------------------- item 10: streamed reads


def test_a_capture_that_never_ends_is_refused_at_its_first_line(tmp_path):
    out = _read_in_child(Path("/dev/zero"))
    assert out.startswith("SchemaError /dev/zero:1: a line longer than"), out


def test_a_capture_larger_than_a_pattern_file_can_be_is_refused_before_reading(tmp_path):
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:  # sparse: a valid header, then MAX_CHARS bytes of nothing
        f.write(b"ID: x\nMetadata: (strobe,) start of orbit, start of packet, end of packet, valid\n\n")
        f.truncate(MAX_CHARS + 1)
    out = _read_in_child(big)
    assert out.startswith(f"SchemaError {big}: {MAX_CHARS + 1} bytes, more than"), out


@pytest.mark.parametrize("fmt", ["emp1", "emp2", "apx"])
def test_more_frames_than_a_file_holds_is_one_error(tmp_path, fmt):
    p = write_file(tmp_path / "long.txt", BoardData.empty((0,), MAX_FRAMES + 1), fmt)
    with pytest.raises(SchemaError, match=f"more than {MAX_FRAMES} frames of 1 link") as exc:
        read_file(p)
    assert "maxFramesPerFile" in exc.value.fix
    b = read_file(write_file(tmp_path / "full.txt", BoardData.empty((0,), MAX_FRAMES), fmt))
    assert b.n_frames == MAX_FRAMES  # the limit itself is a valid file


def test_compare_reads_a_capture_that_is_a_device_and_exits_3(tmp_path, capsys):
    code, err = _exit(["patterns", "compare", str(_set(tmp_path)), "/dev/zero"], capsys)
    assert code == EXIT_USAGE and "/dev/zero:1: a line longer than" in err and "fix:" in err


def test_a_spec_naming_files_outside_the_set_or_not_json_is_one_error(tmp_path, capsys):
    s = _set(tmp_path)
    spec = json.loads((s / "patterns.json").read_text())
    spec["outputs"]["files"] = ["../../../../etc/passwd"]
    (s / "patterns.json").write_text(json.dumps(spec))
    code, err = _exit(["patterns", "compare", str(s), str(s / "expected_0.txt")], capsys)
    assert code == EXIT_USAGE and "'files' must list file names in the set's folder" in err
    (s / "patterns.json").write_text("{not json")
    code, err = _exit(["patterns", "compare", str(s), str(s / "expected_0.txt")], capsys)
    assert code == EXIT_USAGE and f"{s / 'patterns.json'}: not a readable JSON spec" in err


# ----------------------------------------------------------------------------- item 10: mapping values


@pytest.mark.parametrize(
    "values, message",
    [
        ({"frames_per_event": 10**9}, r"m\.yaml: inputs\.frames_per_event: 1000000000 is out of range"),
        ({"frames_per_file": 2 * 10**7}, r"m\.yaml: inputs\.frames_per_file: 20000000 is out of range"),
        ({"offset": 10**9}, r"m\.yaml: inputs\.offset: 1000000000 is out of range"),
        ({"words_per_link": 0}, r"m\.yaml: inputs\.words_per_link: 0 is out of range"),
        ({"links": list(range(65)), "frames_per_file": MAX_FRAMES}, r"inputs\.links: 65 links x frames_per_file"),
    ],
)
def test_mapping_values_are_bounded(values, message):
    with pytest.raises(SchemaError, match=message) as exc:
        LinkMapping.from_dict(values, "m.yaml: inputs")
    assert "allowed:" in exc.value.fix or "at most" in exc.value.fix


def _firmware(tmp_path: Path) -> Path:
    """A compiled model's card and manifest (what the mapping is checked against; no model runs)."""
    fw = tmp_path / "fw"
    fw.mkdir()
    for name in ("card.yaml", "manifest.json"):
        shutil.copyfile(ROOT / "firmware" / "eg_mlp" / name, fw / name)
    return fw


@pytest.mark.parametrize(
    "text, message",
    [
        ("inputs: {frames_per_event: 1000000000, frames_per_file: 1000000000}\n", "inputs.frames_per_event"),
        ("outputs: {frames_per_file: 20000000}\n", "outputs.frames_per_file: 20000000 is out of range"),
        # item 12: a mapping of the wrong shape, three kinds
        ("- inputs\n- outputs\n", "a list where inputs: and outputs: sections were expected"),
        ("inputs: [0, 1]\n", "inputs: a list where a mapping of keys was expected"),
        ("inputs: {links: 3}\n", "inputs.links: 3 is not a list"),
    ],
)
def test_a_bad_mapping_file_exits_3_naming_it_before_anything_runs(tmp_path, capsys, text, message):
    fw = _firmware(tmp_path)
    m = tmp_path / "m.yaml"
    m.write_text(text)
    code, err = _exit(["patterns", str(fw), "--mapping", str(m), "--out", str(tmp_path / "out")], capsys)
    assert code == EXIT_USAGE, err
    assert f"{m}: " in err and message in err and "fix:" in err
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- item 12: simulator config


def test_a_simulator_config_that_is_not_json_exits_3(tmp_path, capsys):
    from trigger_ml.data import simulate_dataset
    from trigger_ml.data.io import write_h5

    p = write_h5(simulate_dataset(40, seed=2), tmp_path / "d.h5")
    with h5py.File(p, "a") as f:
        f.attrs["sim_config"] = "{not json"
    code, err = _exit(["data", "plot", str(p), "--out", str(tmp_path / "plots")], capsys)
    assert code == EXIT_USAGE, err
    assert f"{p}: attribute 'sim_config' is not the simulator's configuration" in err and "fix:" in err
    assert not (tmp_path / "plots").exists()
