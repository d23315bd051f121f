"""Events <-> board data files, per a resolved `Layout` (trigger_ml.patterns.mapping).

`to_boards` is DemonstratorTools' BoardDataWriter (addEvent + flush) for one link set: packets of
`words_per_link` valid frames every `frames_per_event` frames after `offset`, start/end of packet
on the first/last frame, start of orbit on each link's first packet of a file, files padded with
invalid frames to `frames_per_file`. `from_boards` is its reader's inverse (BoardDataReader): the
words of every event whose first frame is valid, file after file.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trigger_ml.errors import SchemaError
from trigger_ml.patterns.board import BoardData
from trigger_ml.patterns.mapping import Layout


def _slots(lay: Layout) -> tuple[np.ndarray, np.ndarray]:
    """(link row, packet frame) of every word slot of a packet set."""
    pos = np.array([lay.position(w) for w in range(len(lay.links) * lay.words_per_link)], dtype=np.int64)
    return pos[:, 0], pos[:, 1]


def to_boards(words: np.ndarray, lay: Layout, name: str = "CMSSW") -> list[BoardData]:
    """Packed words (events, words) -> one BoardData per file."""
    words = np.asarray(words, dtype=np.uint64).reshape(len(words), -1)
    if words.shape[1] != lay.n_words:
        raise ValueError(f"the layout packs {lay.n_words} words per event, got {words.shape[1]}")
    rows, frames = _slots(lay)
    slots = np.zeros((len(words), len(rows)), dtype=np.uint64)
    slots[:, : lay.n_words] = words
    per_file = lay.events_per_file
    boards = []
    for first in range(0, max(len(words), 1), per_file):
        chunk = slots[first : first + per_file]
        b = BoardData.empty(lay.links, lay.frames_per_file, name)
        for e in range(len(chunk)):
            base = lay.offset + e * lay.frames_per_event
            b.data[rows, base + frames] = chunk[e]
            b.valid[:, base : base + lay.words_per_link] = True
            b.start[:, base] = True
            b.end[:, base + lay.words_per_link - 1] = True
        if len(chunk):
            b.orbit[:, lay.offset] = True
        boards.append(b)
        if not len(words):
            break
    return boards


def event_frames(lay: Layout, file_events: int) -> np.ndarray:
    """First frame of each event of a file."""
    return lay.offset + np.arange(file_events) * lay.frames_per_event


def from_boards(boards: Sequence[BoardData], lay: Layout) -> np.ndarray:
    """Board data files (in order) -> packed words (events, words) of every event present."""
    rows, frames = _slots(lay)
    out = []
    for k, b in enumerate(boards):
        missing = [link for link in lay.links if link not in b.links]
        if missing:
            raise SchemaError(f"file {k}: link(s) {missing} of the mapping are missing (file has {list(b.links)})")
        idx = [b.row(link) for link in lay.links]
        data, valid = b.data[idx], b.valid[idx]
        for base in event_frames(lay, lay.events_per_file):
            if base + lay.words_per_link > b.n_frames or not valid[0, base]:
                break  # the file's events end here (padding)
            out.append(data[rows, base + frames][: lay.n_words])
    return np.array(out, dtype=np.uint64).reshape(len(out), lay.n_words)
