"""Pattern sets: write -> read gives the same values; a changed bit is found at its event/link/frame/word."""

import numpy as np
import pytest

from trigger_ml.errors import SchemaError
from trigger_ml.patterns import (
    BoardData,
    LinkMapping,
    compare,
    layout,
    read_file,
    read_side,
    read_values,
    write_file,
    write_set,
)

FORMATS = ["emp1", "emp2", "apx"]
N = 300


def _set(tmp_path, fmt):
    rng = np.random.default_rng(7)
    lay_in = layout(LinkMapping(links=(0, 1, 2)), [10] * 81, [False] * 81)  # a 9x9 window of 10-bit counts
    lay_out = layout(LinkMapping(links=(8,), frames_per_event=9), [19, 19], [True, True])
    raw_in = rng.integers(0, 1 << 10, size=(N, 81))
    raw_out = rng.integers(-(1 << 18), 1 << 18, size=(N, 2))
    write_set(tmp_path / fmt, raw_in, raw_out, lay_in, lay_out, fmt, name="eg_cnn", meta={"model": "eg_cnn"})
    return raw_in, raw_out


@pytest.mark.parametrize("fmt", FORMATS)
def test_write_then_read_gives_the_same_values(tmp_path, fmt):
    raw_in, raw_out = _set(tmp_path, fmt)
    assert sorted(p.name for p in (tmp_path / fmt).iterdir()) == [
        "expected_0.txt",
        "expected_1.txt",
        "expected_2.txt",
        "inputs_0.txt",
        "inputs_1.txt",
        "inputs_2.txt",
        "patterns.json",
    ]  # 113 events of 9 frames per 1024-frame file
    np.testing.assert_array_equal(read_values(tmp_path / fmt, "inputs"), raw_in)
    np.testing.assert_array_equal(read_values(tmp_path / fmt, "outputs"), raw_out)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_one_bit_change_is_found_at_its_event_link_frame_and_word(tmp_path, fmt):
    _set(tmp_path, fmt)
    expected, lay = read_side(tmp_path / fmt, "outputs")
    assert compare(expected, expected, lay).ok
    got = [read_file(tmp_path / fmt / f"expected_{k}.txt") for k in range(3)]
    event = 200  # file 1 (113 events per file), event 87 of it: frame 87 * 9 = 783, output value 1 at bit 19
    got[1].data[0, 783] ^= np.uint64(1 << 24)
    write_file(tmp_path / "captured.txt", got[1], fmt)  # as a board would have written it
    got[1] = read_file(tmp_path / "captured.txt", fmt)
    res = compare(expected, got, lay)
    d = res.first
    assert (d.event, d.file, d.link, d.frame, d.word, d.what, d.values) == (event, 1, 8, 783, 0, "word", (1,))
    assert d.got == d.expected ^ (1 << 24) and res.differing_frames == 1
    assert "event 200: file 1, link 8, frame 783, word 0" in d.describe() and "bit(s) [24]" in d.describe()


def test_valid_bits_latency_and_missing_links(tmp_path):
    _set(tmp_path, "emp2")
    expected, lay = read_side(tmp_path / "emp2", "inputs")
    got = [read_file(tmp_path / "emp2" / f"inputs_{k}.txt") for k in range(3)]
    got[0].valid[2, 9 * 5 + 3] = False  # link 2, event 5, fourth frame of its packet
    d = compare(expected, got, lay).first
    assert (d.event, d.link, d.frame, d.what, d.expected, d.got) == (5, 2, 48, "valid bit", 1, 0)
    assert d.word == 3 * 3 + 2  # order "frame": word 11 is on link row 2, packet frame 3

    late = [read_file(tmp_path / "emp2" / f"inputs_{k}.txt") for k in range(3)]
    for b in late:  # the board's output arrives 6 frames later
        for a in ("data", "valid", "start", "end", "orbit", "strobe"):
            getattr(b, a)[:, 6:] = getattr(b, a)[:, :-6].copy()
            getattr(b, a)[:, :6] = 0
    assert compare(expected, late, lay).first.what == "valid bit"
    assert compare(expected, late, lay, skip=6).ok  # the 6 lost frames at the end of each file are padding
    assert compare(expected, late, lay, skip=None).ok  # aligned on the first valid frame
    short = BoardData(
        expected[0].links,
        *(getattr(expected[0], a)[:, :500] for a in ("data", "valid", "strobe", "orbit", "start", "end")),
    )
    d = compare(expected[:1], [short], lay).first  # stops after event 55 (frames 495-499 valid, then the gap)
    assert (d.what, d.frame, d.event) == ("frames missing", 504, 56)

    assert compare(expected, [b for b in expected[:2]], lay).first.what == "file missing"


def test_a_pattern_set_without_spec_is_one_error(tmp_path):
    with pytest.raises(SchemaError, match="not a pattern set"):
        read_values(tmp_path, "inputs")
