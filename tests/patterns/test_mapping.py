"""Link mapping: values packed into 64-bit words and words laid onto links, and back."""

import numpy as np
import pytest

from trigger_ml.errors import SchemaError
from trigger_ml.patterns import LinkMapping, from_boards, layout, pack, to_boards, unpack


def _raw(rng, n, widths, signed):
    cols = [
        rng.integers(-(1 << (w - 1)) if s else 0, (1 << (w - 1)) if s else (1 << w), size=n)
        for w, s in zip(widths, signed)
    ]
    return np.stack(cols, axis=1).astype(np.int64)


@pytest.mark.parametrize(
    "widths, signed, mapping",
    [
        ([16] * 10, [False] * 10, LinkMapping()),  # eg_mlp: 4 values per word, 3 words on one link
        ([10] * 81, [False] * 81, LinkMapping(links=(4, 5, 6))),  # a 9x9 window: 6 per word, 14 words
        ([20, 3, 64, 1, 33, 31, 9], [True, False, True, True, False, True, False], LinkMapping(order="link")),
        (
            [7] * 30,
            [True] * 30,
            LinkMapping(bits=12, words_per_link=9, frames_per_event=18, offset=5, frames_per_file=100),
        ),
    ],
)
def test_pack_unpack_and_files_round_trip(widths, signed, mapping):
    rng = np.random.default_rng(len(widths))
    lay = layout(mapping, widths, signed)
    raw = _raw(rng, 1000, widths, signed)
    words = pack(raw, lay)
    np.testing.assert_array_equal(unpack(words, lay), raw)
    boards = to_boards(words, lay)
    assert len(boards) == -(-1000 // lay.events_per_file) and all(b.n_frames == mapping.frames_per_file for b in boards)
    np.testing.assert_array_equal(from_boards(boards, lay), words)


def test_values_do_not_straddle_words_and_links_fill_frame_by_frame():
    lay = layout(LinkMapping(links=(2, 3)), [40, 40, 24], [False] * 3)
    assert lay.word.tolist() == [0, 1, 1] and lay.shift.tolist() == [0, 0, 40] and lay.n_words == 2
    assert [lay.position(w) for w in range(2)] == [(0, 0), (1, 0)]  # both words in the event's first frame
    words = pack(np.array([[1, 2, 3]]), lay)
    assert words.tolist() == [[1, 2 | 3 << 40]]


def test_packets_and_flags_are_laid_out_as_boarddatawriter_does():
    lay = layout(LinkMapping(words_per_link=3, frames_per_event=5, offset=2, frames_per_file=20), [64] * 3, [False] * 3)
    (b,) = to_boards(np.arange(9, dtype=np.uint64).reshape(3, 3), lay)
    assert b.links == (0,) and lay.events_per_file == 3
    assert b.valid[0].astype(int).tolist() == [0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0]
    assert np.flatnonzero(b.start[0]).tolist() == [2, 7, 12] and np.flatnonzero(b.end[0]).tolist() == [4, 9, 14]
    assert np.flatnonzero(b.orbit[0]).tolist() == [2]  # the first start of packet of the file
    assert b.data[0, 7:10].tolist() == [3, 4, 5]


def test_derived_links_and_words():
    lay = layout(LinkMapping(), [10] * 81, [False] * 81)  # 14 words, 9 frames per event -> 2 links of 7 words
    assert lay.links == (0, 1) and lay.words_per_link == 7


@pytest.mark.parametrize(
    "mapping, widths, message",
    [
        (LinkMapping(bits=8), [10], "10-bit format but the mapping gives it 8 bits"),
        (LinkMapping(links=(0,), words_per_link=2), [64] * 3, "3 words per event do not fit on 1 link"),
        (LinkMapping(words_per_link=10), [64] * 3, "10 words per link do not fit in an event of 9 frames"),
        (LinkMapping(frames_per_file=8), [16], "no event fits in a file of 8 frames"),
        (LinkMapping(order="zigzag"), [16], "order 'zigzag'"),
        (LinkMapping(links=(1, 1)), [16], "distinct channel numbers"),
    ],
)
def test_a_mapping_that_does_not_fit_is_one_error(mapping, widths, message):
    with pytest.raises(SchemaError, match=message):
        layout(mapping, widths, [False] * len(widths))


def test_card_section_names_the_bad_key():
    assert LinkMapping.from_dict({"links": [0, 1], "frames_per_event": 54}) == LinkMapping(
        links=(0, 1), frames_per_event=54
    )
    with pytest.raises(SchemaError, match=r"patterns.inputs: unknown key\(s\) \['frames'\]"):
        LinkMapping.from_dict({"frames": 9}, "patterns.inputs")
    with pytest.raises(SchemaError, match="patterns.bits: '16' is not an integer"):
        LinkMapping.from_dict({"bits": "16"})
    assert LinkMapping.from_dict(LinkMapping(links=(3,)).to_dict()) == LinkMapping(links=(3,))
