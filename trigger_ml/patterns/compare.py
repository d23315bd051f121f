"""Compare pattern files frame by frame: the first difference names event, link, frame and word.

A board's captured output is compared with the expected file (both read into `BoardData`): for
every link of the expected file and every frame, the valid bit must agree, and where the expected
frame is valid, the word and (when the captured format carries them) the start/end-of-packet bits.
Invalid frames' words are not compared (boards leave anything there). `skip` drops the first
frames of the captured file (the board's latency, DemonstratorTools' emptyFramesAtStart); `None`
aligns the first valid frame of each file. With the layout the file was written with, the first
difference also names the event, the word of the event and the model's values in the differing bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trigger_ml.patterns.board import BoardData
from trigger_ml.patterns.mapping import Layout


@dataclass(frozen=True)
class Difference:
    file: int
    link: int
    frame: int  # in the expected file
    got_frame: int  # in the captured file
    what: str  # "word", "valid bit", "start of packet", "end of packet", "link missing", "frames missing"
    expected: int | None = None
    got: int | None = None
    event: int | None = None  # event index over all files (with a layout)
    word: int | None = None  # word of the event (with a layout)
    values: tuple[int, ...] = ()  # the model's values whose bits differ (with a layout)

    def describe(self) -> str:
        where = f"file {self.file}, link {self.link}, frame {self.frame}" + (
            f" (captured frame {self.got_frame})" if self.got_frame != self.frame else ""
        )
        if self.event is not None:
            where = f"event {self.event}: " + where + (f", word {self.word}" if self.word is not None else "")
        if self.what == "word":
            bits = int(self.expected) ^ int(self.got)
            diff = [b for b in range(64) if bits >> b & 1]
            vals = f"; value(s) {list(self.values)}" if self.values else ""
            return f"{where}: expected 0x{self.expected:016x}, got 0x{self.got:016x} (bit(s) {diff}{vals})"
        if self.expected is not None:
            return f"{where}: {self.what} expected {self.expected}, got {self.got}"
        return f"{where}: {self.what}"


@dataclass(frozen=True)
class Comparison:
    compared_frames: int
    differing_frames: int
    first: Difference | None

    @property
    def ok(self) -> bool:
        return self.first is None


def _first_valid(b: BoardData) -> int:
    hits = np.flatnonzero(b.valid.any(axis=0))
    return int(hits[0]) if len(hits) else 0


def compare(
    expected: Sequence[BoardData], got: Sequence[BoardData], lay: Layout | None = None, skip: int | None = 0
) -> Comparison:
    """Compare captured files `got` with `expected` (file by file, in order)."""
    compared = differing = 0
    first: Difference | None = None
    for k, exp in enumerate(expected):
        if k >= len(got):
            first = first or Difference(k, exp.links[0], 0, 0, "file missing")
            compared += exp.n_frames * len(exp.links)
            differing += exp.n_frames * len(exp.links)
            continue
        cap = got[k]
        shift = (_first_valid(cap) - _first_valid(exp)) if skip is None else skip
        for link in exp.links:
            i = exp.row(link)
            if link not in cap.links:
                first = first or Difference(k, link, 0, shift, "link missing")
                compared += exp.n_frames
                differing += exp.n_frames
                continue
            j = cap.row(link)
            n = max(0, min(exp.n_frames, cap.n_frames - shift))
            sl = slice(shift, shift + n)
            ev, gv = exp.valid[i, :n], cap.valid[j, sl]
            bad = (ev != gv) | (ev & (exp.data[i, :n] != cap.data[j, sl]))
            flags = cap.start.any() or cap.end.any()  # EMPv1 carries no packet flags
            if flags:
                bad |= ev & ((exp.start[i, :n] != cap.start[j, sl]) | (exp.end[i, :n] != cap.end[j, sl]))
            missing = np.flatnonzero(exp.valid[i, n:]) + n  # expected valid frames the capture lacks
            compared += exp.n_frames
            differing += int(bad.sum()) + len(missing)
            hits = np.flatnonzero(bad)
            f = int(hits[0]) if len(hits) else (int(missing[0]) if len(missing) else None)
            if f is None:
                continue
            d = _difference(k, link, f, shift, exp, i, cap, j, f in missing and not len(hits), lay, flags)
            if first is None or (d.file, d.frame, d.link) < (first.file, first.frame, first.link):
                first = d
    return Comparison(compared, differing, first)


def _difference(
    k: int,
    link: int,
    f: int,
    shift: int,
    exp: BoardData,
    i: int,
    cap: BoardData,
    j: int,
    missing: bool,
    lay: Layout | None,
    flags: bool,
) -> Difference:
    g = f + shift
    ctx: dict = {}
    if lay is not None and f >= lay.offset and link in lay.links:
        e, pf = divmod(f - lay.offset, lay.frames_per_event)
        ctx["event"] = k * lay.events_per_file + e
        if pf < lay.words_per_link:
            ctx["word"] = lay.slot(lay.links.index(link), pf)
    if missing:
        return Difference(k, link, f, g, "frames missing", **ctx)
    if exp.valid[i, f] != cap.valid[j, g]:
        return Difference(k, link, f, g, "valid bit", int(exp.valid[i, f]), int(cap.valid[j, g]), **ctx)
    if exp.data[i, f] != cap.data[j, g]:
        e_word, g_word = int(exp.data[i, f]), int(cap.data[j, g])
        vals = (
            tuple(lay.values_in(ctx["word"], e_word ^ g_word))
            if lay is not None and "word" in ctx and ctx["word"] < lay.n_words
            else ()
        )
        return Difference(k, link, f, g, "word", e_word, g_word, values=vals, **ctx)
    what = "start of packet" if flags and exp.start[i, f] != cap.start[j, g] else "end of packet"
    attr = "start" if what == "start of packet" else "end"
    return Difference(k, link, f, g, what, int(getattr(exp, attr)[i, f]), int(getattr(cap, attr)[j, g]), **ctx)
