"""How a model's values travel on a board's links: the documented, configurable link mapping.

Per event, the model's raw integers (inputs, or outputs) are **packed into 64-bit words**: value
0 in the lowest bits of word 0, each next value in the next bits above; a value that would not fit
in the rest of a word starts the next word (no value straddles two words). Each value takes `bits`
bits (default: its format's width), two's complement for a signed format.

The words are then **laid out on links**, one packet per event per link, as DemonstratorTools'
BoardDataWriter lays out event data (src/BoardDataWriter.cc): an event occupies `frames_per_event`
frames on every link (framesPerBX x TMUX: 9 frames per bunch crossing at 360 MHz, TMUX 1); its
first `words_per_link` frames are valid and carry the words, start-of-packet set on the first and
end-of-packet on the last; the remaining frames (the inter-packet gap) are invalid zeros. Word `w`
of the event goes to link `links[w % n]` at frame `w // n` of the packet (`order="frame"`: all
links carry the event's first words in its first frame), or to link `links[w // words_per_link]`
at frame `w % words_per_link` (`order="link"`: link 0 is filled first). Word slots beyond the
packed words are valid zeros, so every packet has the same length. The first event starts after
`offset` invalid frames; a file holds `(frames_per_file - offset) // frames_per_event` events and is
padded with invalid frames to `frames_per_file` (the buffer depth); start-of-orbit is set on each
link's first start-of-packet frame of a file (BoardDataWriter::flush does the same).

`LinkMapping` is what a model card's `patterns:` section gives (`inputs:` and `outputs:`, each
with the fields below, all optional); `layout()` resolves it for values of given widths.

Limits (`LIMITS`; a value outside is one error naming the key, the value and the range): a file
holds at most `MAX_FRAMES` frames (65,536: APx numbers frames with 4 hex digits; CMSSW's writers
use 1,024) and `MAX_WORDS` link words (links x frames_per_file, ~100 MB of text), the same limits
the readers apply; so `frames_per_event` and `offset` are below `frames_per_file` <= 65,536 and a
file has at most `MAX_WORDS // frames_per_file` links.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from trigger_ml.errors import SchemaError
from trigger_ml.patterns.formats import MAX_FRAMES, MAX_WORDS

ORDERS = ("frame", "link")
# key -> (lowest, highest) allowed value; `links` is bounded by MAX_WORDS // frames_per_file entries
LIMITS = {
    "bits": (1, 64),
    "words_per_link": (1, MAX_FRAMES),
    "frames_per_event": (1, MAX_FRAMES),
    "offset": (0, MAX_FRAMES - 1),
    "frames_per_file": (1, MAX_FRAMES),
}


@dataclass(frozen=True)
class LinkMapping:
    """Link mapping of one side (inputs or outputs); None fields are derived (see the module)."""

    bits: int | None = None  # bits per value on the link (>= its format's width); None: the width
    links: tuple[int, ...] | None = None  # channel indices; None: 0, 1, ... as many as needed
    words_per_link: int | None = None  # valid frames per event on each link; None: as few as hold the words
    frames_per_event: int = 9  # frames from one event's start to the next (framesPerBX x TMUX)
    offset: int = 0  # invalid frames before the first event of a file
    frames_per_file: int = 1024  # frames per file (the buffer depth); more events go to further files
    order: str = "frame"  # "frame": word w on link w % n; "link": link 0 filled first

    @classmethod
    def from_dict(cls, d: dict | None, where: str = "patterns") -> LinkMapping:
        """From a card section; an unknown key or a wrong type is one error naming it."""
        known = {f.name for f in fields(cls)}
        if d is not None and not isinstance(d, dict):
            raise SchemaError(
                f"{where}: a {type(d).__name__} where a mapping of keys was expected",
                f"write it as keys and values, e.g. {{links: [0, 1], frames_per_event: 9}} (keys: {sorted(known)})",
            )
        d = dict(d or {})
        bad = sorted(set(d) - known)
        if bad:
            raise SchemaError(f"{where}: unknown key(s) {bad}", f"known keys: {sorted(known)}")
        if d.get("links") is not None:
            if not isinstance(d["links"], list | tuple):
                raise SchemaError(f"{where}.links: {d['links']!r} is not a list", "write links: [0, 1, ...]")
            if len(d["links"]) > MAX_WORDS:
                raise SchemaError(f"{where}.links: {len(d['links'])} links", f"give at most {MAX_WORDS}")
            d["links"] = tuple(d["links"])
        for k, v in d.items():
            ok = (
                v is None
                or (k == "order" and isinstance(v, str))
                or (k == "links" and all(isinstance(x, int) and not isinstance(x, bool) for x in v))
                or (k not in ("order", "links") and isinstance(v, int) and not isinstance(v, bool))
            )
            if not ok:
                raise SchemaError(
                    f"{where}.{k}: {v!r} is not {'a string' if k == 'order' else 'an integer'}"
                    + (" list" if k == "links" else "")
                )
        m = cls(**d)
        m.check(where)
        return m

    def check(self, where: str = "patterns") -> None:
        """One `SchemaError` naming the key, the value and the allowed range of a value outside `LIMITS`."""
        for key, (lo, hi) in LIMITS.items():
            v = getattr(self, key)
            if v is not None and not lo <= v <= hi:
                raise SchemaError(
                    f"{where}.{key}: {v} is out of range",
                    f"allowed: {lo} to {hi} (a pattern file holds at most {MAX_FRAMES} frames and {MAX_WORDS} "
                    "link words; see trigger_ml.patterns.mapping)",
                )
        if self.links is not None and len(self.links) * self.frames_per_file > MAX_WORDS:
            raise SchemaError(
                f"{where}.links: {len(self.links)} links x frames_per_file {self.frames_per_file} = "
                f"{len(self.links) * self.frames_per_file} link words per file, more than {MAX_WORDS}",
                f"give at most {MAX_WORDS // self.frames_per_file} links, or lower frames_per_file",
            )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["links"] = None if self.links is None else list(self.links)
        return d


@dataclass(frozen=True)
class Layout:
    """A mapping resolved for values of given widths: where every value and word goes."""

    mapping: LinkMapping
    widths: tuple[int, ...]  # bits per value on the link
    signed: tuple[bool, ...]
    word: np.ndarray  # value -> word index
    shift: np.ndarray  # value -> position of its lowest bit in the word
    n_words: int
    links: tuple[int, ...]
    words_per_link: int

    @property
    def frames_per_event(self) -> int:
        return self.mapping.frames_per_event

    @property
    def offset(self) -> int:
        return self.mapping.offset

    @property
    def frames_per_file(self) -> int:
        return self.mapping.frames_per_file

    @property
    def events_per_file(self) -> int:
        return (self.mapping.frames_per_file - self.mapping.offset) // self.mapping.frames_per_event

    def position(self, w: int) -> tuple[int, int]:
        """(link row, frame within the packet) of word slot `w`."""
        n = len(self.links)
        return (w % n, w // n) if self.mapping.order == "frame" else (w // self.words_per_link, w % self.words_per_link)

    def slot(self, row: int, frame: int) -> int:
        """The word slot at link row `row`, packet frame `frame` (inverse of `position`)."""
        return frame * len(self.links) + row if self.mapping.order == "frame" else row * self.words_per_link + frame

    def values_in(self, w: int, bits: int) -> list[int]:
        """Indices of the values whose bits in word `w` include any bit set in the mask `bits`."""
        out = []
        for i in np.flatnonzero(self.word == w):
            mask = ((1 << self.widths[i]) - 1) << int(self.shift[i])
            if mask & bits:
                out.append(int(i))
        return out


def layout(mapping: LinkMapping, widths: list[int] | tuple[int, ...], signed: list[bool] | tuple[bool, ...]) -> Layout:
    """Resolve `mapping` for values of the given format widths; one `SchemaError` names what does not fit."""
    m = mapping
    m.check()
    n = len(widths)
    if m.order not in ORDERS:
        raise SchemaError(f"patterns order {m.order!r} is not one of {ORDERS}")
    bits = [m.bits if m.bits is not None else int(w) for w in widths]
    for i, (b, w) in enumerate(zip(bits, widths)):
        if not (w <= b <= 64):
            raise SchemaError(
                f"value {i} has a {w}-bit format but the mapping gives it {b} bits",
                "set patterns bits between the format's width and 64",
            )
    word, shift, used, k = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64), 0, 0
    for i, b in enumerate(bits):
        if used + b > 64:
            k, used = k + 1, 0
        word[i], shift[i], used = k, used, used + b
    n_words = k + 1 if n else 0
    for name, v in (("frames_per_event", m.frames_per_event), ("frames_per_file", m.frames_per_file)):
        if v < 1:
            raise SchemaError(f"patterns {name} must be >= 1, got {v}")
    if m.offset < 0:
        raise SchemaError(f"patterns offset must be >= 0, got {m.offset}")
    if m.links is not None and (not m.links or len(set(m.links)) != len(m.links) or min(m.links) < 0):
        raise SchemaError(f"patterns links must be distinct channel numbers >= 0, got {list(m.links)}")
    per_link = m.words_per_link or m.frames_per_event
    links = m.links if m.links is not None else tuple(range(max(1, -(-n_words // per_link))))
    wpl = m.words_per_link if m.words_per_link is not None else max(1, -(-n_words // len(links)))
    if len(links) * m.frames_per_file > MAX_WORDS:
        raise SchemaError(
            f"{len(links)} links x frames_per_file {m.frames_per_file} is more than {MAX_WORDS} link words per file",
            "lower patterns frames_per_file",
        )
    if wpl * len(links) < n_words:
        raise SchemaError(
            f"{n_words} words per event do not fit on {len(links)} link(s) x {wpl} words",
            "add links, or raise patterns words_per_link",
        )
    if wpl > m.frames_per_event:
        raise SchemaError(
            f"{wpl} words per link do not fit in an event of {m.frames_per_event} frames",
            "add links, or raise patterns frames_per_event (framesPerBX x TMUX)",
        )
    if m.offset + m.frames_per_event > m.frames_per_file:
        raise SchemaError(
            f"no event fits in a file of {m.frames_per_file} frames after {m.offset} offset frames",
            "raise patterns frames_per_file",
        )
    return Layout(m, tuple(bits), tuple(bool(s) for s in signed), word, shift, n_words, tuple(links), wpl)


def pack(raw: np.ndarray, lay: Layout) -> np.ndarray:
    """Raw integers (events, values) -> 64-bit words (events, words); each value keeps its low bits."""
    raw = np.asarray(raw, dtype=np.int64).reshape(len(raw), -1)
    if raw.shape[1] != len(lay.widths):
        raise ValueError(f"the layout holds {len(lay.widths)} values per event, got {raw.shape[1]}")
    words = np.zeros((len(raw), lay.n_words), dtype=np.uint64)
    for i, (b, w, s) in enumerate(zip(lay.widths, lay.word, lay.shift)):
        mask = np.uint64((1 << b) - 1)
        words[:, w] |= (raw[:, i].astype(np.uint64) & mask) << np.uint64(s)
    return words


def unpack(words: np.ndarray, lay: Layout) -> np.ndarray:
    """64-bit words (events, words) -> raw integers (events, values), sign-extended where signed."""
    words = np.asarray(words, dtype=np.uint64).reshape(len(words), -1)
    raw = np.zeros((len(words), len(lay.widths)), dtype=np.int64)
    for i, (b, w, s, sg) in enumerate(zip(lay.widths, lay.word, lay.shift, lay.signed)):
        v = (
            ((words[:, w] >> np.uint64(s)) & np.uint64((1 << b) - 1)).astype(np.int64)
            if b < 64
            else words[:, w].view(np.int64)
        )
        if sg and b < 64:
            v = np.where(v >= (1 << (b - 1)), v - (1 << b), v)
        raw[:, i] = v
    return raw
