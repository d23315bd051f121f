"""Pattern-file formats: DemonstratorTools' exact layouts, round trips, and one clear error per bad file."""

import numpy as np
import pytest

from trigger_ml.errors import SchemaError, UnsupportedError
from trigger_ml.patterns import BoardData, detect_format, get_format, read_file, write_file

# Two links given out of order (5, then 0; files list them ascending), three frames, and the text
# DemonstratorTools' src/utilities.cc writes for them, transcribed piece by piece from its
# writeEMPFileV1 / writeEMPFileV2 / writeAPxFile (docs/cmssw.md cites the commit).


def _board():
    return BoardData(
        (5, 0),
        data=[[0xABC, 0x1, 0xFFFFFFFFFFFFFFFF], [0x0, 0x123456789ABCDEF0, 0x2]],
        valid=[[1, 1, 0], [1, 1, 1]],
        strobe=np.ones((2, 3)),
        orbit=[[1, 0, 0], [1, 0, 0]],
        start=[[1, 0, 0], [1, 0, 0]],
        end=[[0, 1, 0], [0, 0, 1]],
        name="CMSSW",
    )


EMP1 = "".join(
    [
        "Board CMSSW\n",
        " Quad/Chan :"
        + "         q"
        + "00"
        + "c"
        + "0"
        + "       "
        + "         q"
        + "01"
        + "c"
        + "1"
        + "       "
        + "\n",
        "      Link :" + "          " + "000" + "        " + "          " + "005" + "        " + "\n",
        "Frame 0000 :" + " " + "  " + "1v0000000000000000" + " " + "  " + "1v0000000000000abc" + "\n",
        "Frame 0001 :" + " " + "  " + "1v123456789abcdef0" + " " + "  " + "1v0000000000000001" + "\n",
        "Frame 0002 :" + " " + "  " + "1v0000000000000002" + " " + "  " + "0vffffffffffffffff" + "\n",
    ]
)
EMP2 = "".join(
    [
        "ID: CMSSW\n",
        "Metadata: (strobe,) start of orbit, start of packet, end of packet, valid\n",
        "\n",
        "      Link  " + "            " + "000" + "        " + "            " + "005" + "        " + "\n",
        "Frame 0000  " + "  " + "1101" + " " + "0000000000000000" + "  " + "1101" + " " + "0000000000000abc" + "\n",
        "Frame 0001  " + "  " + "0001" + " " + "123456789abcdef0" + "  " + "0011" + " " + "0000000000000001" + "\n",
        "Frame 0002  " + "  " + "0011" + " " + "0000000000000002" + "  " + "0000" + " " + "ffffffffffffffff" + "\n",
    ]
)
APX = "".join(
    [
        "#Sideband ON\n",
        "#LinkLabel" + "                LINK_" + "00" + "    " + "                LINK_" + "05" + "    " + "\n",
        "#BeginData\n",
        "0x0000" + "    0x03" + " 0x0000000000000000" + "    0x03" + " 0x0000000000000abc" + "\n",
        "0x0001" + "    0x01" + " 0x123456789abcdef0" + "    0x09" + " 0x0000000000000001" + "\n",
        "0x0002" + "    0x09" + " 0x0000000000000002" + "    0x00" + " 0xffffffffffffffff" + "\n",
    ]
)
GOLDEN = {"emp1": EMP1, "emp2": EMP2, "apx": APX}
CARRIED = {"emp1": ("valid",), "emp2": ("valid", "strobe", "orbit", "start", "end"), "apx": ("valid", "start", "end")}


@pytest.mark.parametrize("fmt", sorted(GOLDEN))
def test_writer_matches_demonstratortools_layout(fmt):
    assert get_format(fmt).write(_board()) == GOLDEN[fmt]


def test_emp2_strobed_link_gets_a_strobe_column():
    b = BoardData.empty((3,), 2)
    b.strobe[0, 1] = False
    b.valid[0] = True
    text = get_format("emp2").write(b)
    assert text.splitlines()[3] == "      Link               003        "
    assert text.splitlines()[4:] == ["Frame 0000    10001 0000000000000000", "Frame 0001    00001 0000000000000000"]
    assert get_format("emp2").read(text).strobe.tolist() == [[True, False]]


def _random_board(rng, links, frames):
    b = BoardData.empty(links, frames, name="board 7")
    b.data[:] = rng.integers(0, 2**63, size=b.data.shape, dtype=np.uint64) * np.uint64(2) + rng.integers(
        0, 2, size=b.data.shape
    ).astype(np.uint64)
    for flag in ("valid", "orbit", "start", "end"):
        getattr(b, flag)[:] = rng.random(b.data.shape) < 0.5
    b.strobe[:] = rng.random(b.data.shape) < 0.8
    return b


@pytest.mark.parametrize("fmt", sorted(GOLDEN))
def test_write_then_read_gives_the_same_words_and_flags(fmt, tmp_path):
    rng = np.random.default_rng(1)
    b = _random_board(rng, (0, 1, 2, 9, 17, 63), 1100)
    path = write_file(tmp_path / f"b.{fmt}.txt", b, fmt)
    back = read_file(path)  # format detected from the first line
    assert back.links == b.links and back.n_frames == 1100
    np.testing.assert_array_equal(back.data, b.data)
    for flag in CARRIED[fmt]:
        np.testing.assert_array_equal(getattr(back, flag), getattr(b, flag), err_msg=flag)
    assert back.name == ("" if fmt == "apx" else "board 7")


def test_more_than_ten_thousand_frames_keep_their_numbers(tmp_path):
    b = BoardData.empty((0,), 10_002)
    b.data[0] = np.arange(10_002, dtype=np.uint64)
    for fmt in GOLDEN:
        back = read_file(write_file(tmp_path / f"{fmt}.txt", b, fmt), fmt)
        np.testing.assert_array_equal(back.data, b.data)


def test_demonstratortools_format_names_are_accepted():
    for name, fmt in (("EMP", "EMPv1"), ("EMPv1", "EMPv1"), ("EMPv2", "EMPv2"), ("APx", "APx"), ("apx", "APx")):
        assert get_format(name).name == fmt
    with pytest.raises(SchemaError, match="unknown pattern-file format"):
        get_format("csv")


def test_x2o_is_refused_with_the_reason():
    with pytest.raises(UnsupportedError, match="not yet implemented"):
        get_format("X2O").write(_board())


@pytest.mark.parametrize(
    "fmt, bad, message",
    [
        ("emp1", lambda t: t.replace("Board CMSSW", "Boards CMSSW"), r":1: expected the board ID line"),
        ("emp1", lambda t: t.replace("Frame 0001", "Frame 0002"), r":5: expected 'Frame 0001 :'"),
        ("emp1", lambda t: t.replace("1v123456789abcdef0", "1v123456789abcdeZ0"), r":5: word '1v123456789abcdeZ0'"),
        ("emp1", lambda t: t.replace("   0vffffffffffffffff", ""), r":6: 1 words for 2 links"),
        ("emp1", lambda t: t.replace("          005", "          x05"), r":3: link numbers expected"),
        ("emp2", lambda t: t.replace("Metadata:", "Meta:"), r":2: expected 'Metadata"),
        ("emp2", lambda t: t.replace("1101 0000000000000abc", "11010000000000000abc"), r":5: word"),
        ("apx", lambda t: t.replace("#BeginData", "#Begin"), r":3: expected '#BeginData'"),
        ("apx", lambda t: t.replace("LINK_05", "LNK_05"), r":2: link labels must be LINK_"),
        ("apx", lambda t: t.replace("0x0001 ", "0x0007 "), r":5: frame 0x0007 where frame 0x0001"),
        ("apx", lambda t: t.replace("    0x00 0xffffffffffffffff", ""), r":6: 3 tokens, expected 5"),
    ],
)
def test_a_malformed_file_is_one_error_naming_the_line(fmt, bad, message, tmp_path):
    p = tmp_path / "bad.txt"
    p.write_text(bad(GOLDEN[fmt]))
    with pytest.raises(SchemaError, match=message):
        read_file(p, fmt)


def test_not_a_pattern_file():
    with pytest.raises(SchemaError, match="not a pattern file"):
        detect_format("hello\n")
