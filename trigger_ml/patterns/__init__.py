"""Board-test pattern files: a model's inputs packed onto links and its bit-exact outputs, in the
text formats of CMSSW's L1Trigger/DemonstratorTools (EMPv1, EMPv2, APx), and their comparison.

    board.py    BoardData: frames (64-bit word, valid, strobe, orbit, start/end of packet) per link
    formats.py  the writers and readers, byte for byte as DemonstratorTools' src/utilities.cc
    mapping.py  LinkMapping (card-configurable) -> Layout: values packed into words, words onto links
    stream.py   events <-> files, as BoardDataWriter / BoardDataReader lay them out
    sets.py     a pattern set: inputs_<i>.txt, expected_<i>.txt, patterns.json; compare_files
    compare.py  the first difference: event, link, frame, word, and the model's values in it

Pure Python and numpy; the model side (raw integers from the C simulation) is the caller's.
"""

from trigger_ml.patterns.board import BoardData
from trigger_ml.patterns.compare import Comparison, Difference, compare
from trigger_ml.patterns.formats import (
    FORMATS,
    canonical,
    detect_format,
    get_format,
    read_file,
    write_file,
    writer,
)
from trigger_ml.patterns.mapping import Layout, LinkMapping, layout, pack, unpack
from trigger_ml.patterns.sets import compare_files, read_side, read_spec, read_values, write_set
from trigger_ml.patterns.stream import from_boards, to_boards

__all__ = [
    "FORMATS",
    "BoardData",
    "Comparison",
    "Difference",
    "Layout",
    "LinkMapping",
    "canonical",
    "compare",
    "compare_files",
    "detect_format",
    "from_boards",
    "get_format",
    "layout",
    "pack",
    "read_file",
    "read_side",
    "read_spec",
    "read_values",
    "to_boards",
    "unpack",
    "write_file",
    "write_set",
    "writer",
]
