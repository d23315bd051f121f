"""Pattern-file text formats, as CMSSW's L1Trigger/DemonstratorTools writes and reads them.

Layouts follow `l1t::demo::write*`/`read*` in DemonstratorTools' src/utilities.cc (docs/cmssw.md
cites the commit) character for character:

- **EMPv1** (EMP up to 0.6): `Board <id>`, ` Quad/Chan :` + per link `         qQQcC       `,
  `      Link :` + per link `          LLL        `, then per frame `Frame NNNN :` + per link
  `   Vv` + 16 hex digits (V the valid bit). Reading also accepts a strobe prefix `Ss` per word.
- **EMPv2** (EMP from 0.7): `ID: <id>`, the fixed `Metadata: ...` line, an empty line,
  `      Link  ` + per link (` ` if the link has a strobe) `            LLL        `, then per frame
  `Frame NNNN  ` + per link `  ` [strobe] + start-of-orbit, start-of-packet, end-of-packet, valid
  digits + ` ` + 16 hex digits.
- **APx**: `#Sideband ON`, `#LinkLabel` + per link `                LINK_LL    `, `#BeginData`,
  then per frame `0xNNNN` (hex) + per link `    0xSS 0x` + 16 hex digits, sideband SS = valid |
  start-of-packet << 1 | end-of-packet << 3.
- **X2O**: DemonstratorTools names the format (`FileFormat::X2O`) but its reader and writer throw
  "not yet implemented"; there is no layout to follow, so it is refused with that reason.

Writers produce exactly DemonstratorTools' bytes for the same board data (EMPv1's first line names
the board as EMPv2's does; DemonstratorTools writes `Board CMSSW` whatever the name). Readers accept
what DemonstratorTools' readers accept (blank lines, `#` comments, Windows line ends too) and raise
one `SchemaError` naming the file, line and what was expected.

Readers stream a file line by line into arrays, so a capture is bounded whatever it is (a huge
file, a device such as /dev/zero, a pipe): at most `MAX_FRAMES` frames and `MAX_WORDS` link words
(links x frames) per file, lines of at most `MAX_LINE` characters, files of at most `MAX_CHARS`
characters; past a limit the reader stops with one `SchemaError`. A board's buffer is far smaller
(DemonstratorTools' writers split files at `maxFramesPerFile`, 1024 frames in CMSSW's writers).
"""

from __future__ import annotations

import io
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trigger_ml.atomic import atomic_file
from trigger_ml.errors import SchemaError, UnsupportedError
from trigger_ml.patterns.board import BoardData

MAX_FRAMES = 1 << 16  # frames per file: APx numbers frames with 4 hex digits (0x0000-0xffff)
MAX_WORDS = 1 << 22  # link words per file (links x frames), e.g. 64 links x 65536 frames; ~100 MB of text
MAX_LINE = 1 << 20  # characters per line (a line holds one frame of every link)
MAX_CHARS = MAX_WORDS * 64  # characters per file (256 MiB): a word takes under 32 characters in every format
MAX_LINES = 2 * MAX_FRAMES  # lines per file: frames plus a few header, blank and comment lines
SIZE_FIX = (
    f"give files of at most {MAX_FRAMES} frames and {MAX_WORDS} link words each (a board buffer holds "
    "far fewer; DemonstratorTools' BoardDataWriter splits files at maxFramesPerFile)"
)
EMP2_METADATA = "Metadata: (strobe,) start of orbit, start of packet, end of packet, valid"
X2O_REASON = (
    'DemonstratorTools declares FileFormat::X2O but its readX2OFile/writeX2OFile throw "not yet '
    'implemented" (src/utilities.cc): there is no X2O layout to match'
)


def write_emp1(board: BoardData) -> str:
    out = [
        f"Board {board.name}\n",
        " Quad/Chan :" + "".join(f"         q{link // 4:02d}c{link % 4:1d}       " for link in board.links) + "\n",
        "      Link :" + "".join(f"          {link:03d}        " for link in board.links) + "\n",
    ]
    words = [
        [f"   {int(v)}v{int(d):016x}" for v, d in zip(board.valid[i], board.data[i])] for i in range(len(board.links))
    ]
    out += [f"Frame {f:04d} :" + "".join(col[f] for col in words) + "\n" for f in range(board.n_frames)]
    return "".join(out)


def write_emp2(board: BoardData) -> str:
    strobed = [not bool(np.all(board.strobe[i])) for i in range(len(board.links))]
    head = "".join((" " if s else "") + f"            {link:03d}        " for link, s in zip(board.links, strobed))
    out = [f"ID: {board.name}\n", EMP2_METADATA + "\n", "\n", "      Link  " + head + "\n"]
    cols = []
    for i, s in enumerate(strobed):
        flags = zip(board.strobe[i], board.orbit[i], board.start[i], board.end[i], board.valid[i], board.data[i])
        cols.append(
            [f"  {int(st) if s else ''}{int(o)}{int(a)}{int(e)}{int(v)} {int(d):016x}" for st, o, a, e, v, d in flags]
        )
    out += [f"Frame {f:04d}  " + "".join(col[f] for col in cols) + "\n" for f in range(board.n_frames)]
    return "".join(out)


def write_apx(board: BoardData) -> str:
    out = [
        "#Sideband ON\n",
        "#LinkLabel" + "".join(f"                LINK_{link:02d}    " for link in board.links) + "\n",
        "#BeginData\n",
    ]
    side = board.valid.astype(np.uint16) | board.start.astype(np.uint16) << 1 | board.end.astype(np.uint16) << 3
    cols = [
        [f"    0x{int(s):02x} 0x{int(d):016x}" for s, d in zip(side[i], board.data[i])] for i in range(len(board.links))
    ]
    out += [f"0x{f:04x}" + "".join(col[f] for col in cols) + "\n" for f in range(board.n_frames)]
    return "".join(out)


class _Lines:
    """A file's lines, read one at a time within the size limits, for readers that say where a file is wrong."""

    def __init__(self, text: str | io.TextIOBase, source: str) -> None:
        self.stream = io.StringIO(text) if isinstance(text, str) else text
        self.source, self.i, self.chars = source, 0, 0
        self.pending: list[str] = []  # lines read ahead (format detection), given back first

    def error(self, what: str, line: int | None = None, fix: str | None = None) -> SchemaError:
        at = self.i if line is None else line
        return SchemaError(
            f"{self.source}:{at}: {what}",
            fix or "write the file with `trigger-ml patterns` or a board of that format, or pass the right --format",
        )

    def _read(self) -> str | None:
        """The next line from the stream (without its line end), within MAX_LINE, MAX_LINES and MAX_CHARS."""
        line = self.stream.readline(MAX_LINE + 1)
        if not line:
            return None
        n = self.i + len(self.pending) + 1
        self.chars += len(line)
        if len(line) > MAX_LINE:
            raise self.error(f"a line longer than {MAX_LINE} characters (not a pattern file?)", n, SIZE_FIX)
        if n > MAX_LINES or self.chars > MAX_CHARS:
            raise self.error(f"more than {min(n - 1, MAX_LINES)} lines or {MAX_CHARS} characters", n, SIZE_FIX)
        return line.rstrip("\r\n").rstrip()

    def raw(self) -> str | None:
        line = self.pending.pop(0) if self.pending else self._read()
        if line is not None:
            self.i += 1
        return line

    def peek_meaningful(self) -> str:
        """The first non-blank line (stripped), left to be read again: what `detect_format` looks at."""
        while True:
            line = self._read()
            if line is None:
                return ""
            self.pending.append(line)
            if line.strip():
                return line.strip()

    def next(self, skip_comments: bool = True) -> str | None:
        while (line := self.raw()) is not None:
            if not skip_comments or (line.strip() and not line.lstrip().startswith("#")):
                return line
        return None

    def tokens_after(self, prefix: str) -> list[str]:
        """DemonstratorTools' searchAndTokenize: the next meaningful line must start with `prefix`."""
        line = self.next()
        if line is None or not line.lstrip(" \t").startswith(prefix):
            raise self.error(f"expected a line starting with {prefix!r}, found {line!r}")
        return line.lstrip(" \t")[len(prefix) :].split()


class _Frames:
    """Frames of a file as arrays, grown while lines are read: at most MAX_FRAMES frames and MAX_WORDS words."""

    def __init__(self, links: tuple[int, ...], lines: _Lines) -> None:
        self.links, self.lines, self.n = links, lines, 0
        self.limit = min(MAX_FRAMES, MAX_WORDS // max(1, len(links)))
        self._alloc(min(self.limit, 1024))

    def _alloc(self, cap: int) -> None:
        data = np.zeros((cap, len(self.links)), dtype=np.uint64)
        flags = np.zeros((cap, len(self.links), 5), dtype=bool)  # valid, strobe, orbit, start, end
        if self.n:
            data[: self.n], flags[: self.n] = self.data[: self.n], self.flags[: self.n]
        self.data, self.flags = data, flags

    def add(self, row: list[tuple]) -> None:
        """One frame: per link (data, valid, strobe, orbit, start, end)."""
        if len(row) != len(self.links):
            raise self.lines.error(f"{len(row)} words for {len(self.links)} links")
        if self.n == self.limit:
            raise self.lines.error(
                f"more than {self.limit} frames of {len(self.links)} link(s) in one file", fix=SIZE_FIX
            )
        if self.n == len(self.data):
            self._alloc(min(self.limit, 2 * self.n))
        try:
            self.data[self.n] = [r[0] for r in row]
        except OverflowError:
            raise self.lines.error("a word wider than 64 bits") from None
        self.flags[self.n] = [r[1:] for r in row]
        self.n += 1

    def board(self, name: str) -> BoardData:
        if len(set(self.links)) != len(self.links):
            raise self.lines.error(f"a link is listed twice: {list(self.links)}", 0)
        data, flags = self.data[: self.n].T, self.flags[: self.n].transpose(1, 0, 2)
        return BoardData(self.links, data, *(flags[..., k] for k in range(5)), name=name)


def _links(tokens: list[str], lines: _Lines) -> tuple[int, ...]:
    if not tokens or not all(t.isdigit() and len(t) <= 9 for t in tokens):
        raise lines.error(f"link numbers expected, found {' '.join(tokens)[:80]!r}")
    return tuple(int(t) for t in tokens)


def _frames(lines: _Lines, links: tuple[int, ...], sep: str, split, word: re.Pattern, what: str, fields) -> _Frames:
    """The `Frame NNNN<sep>` lines of an EMP file: per frame, per link (data, valid, strobe, orbit, start, end)."""
    rows = _Frames(links, lines)
    while (line := lines.next()) is not None:
        prefix = f"Frame {rows.n:04d}{sep}"
        if not line.startswith(prefix):
            raise lines.error(f"expected {prefix!r}, found {line[:40]!r}")
        row = []
        for tok in split(line[len(prefix) :]):
            m = word.fullmatch(tok)
            if m is None:
                raise lines.error(f"word {tok[:40]!r} is not {what}")
            row.append(fields(m))
        rows.add(row)
    return rows


def read_emp1(text: str | io.TextIOBase | _Lines, source: str = "<text>") -> BoardData:
    lines = text if isinstance(text, _Lines) else _Lines(text, source)
    first = lines.next()
    if first is None or not first.startswith("Board "):
        raise lines.error(f"expected the board ID line 'Board <id>' (EMPv1), found {first!r}")
    lines.tokens_after("Quad/Chan :")
    links = _links(lines.tokens_after("Link :"), lines)
    word = re.compile(r"([01]s)?([01]v)([0-9a-fA-F]{16})")
    rows = _frames(
        lines,
        links,
        " :",
        str.split,
        word,
        "[Ss]Vv + 16 hex digits",
        lambda m: (int(m[3], 16), m[2] == "1v", m[1] != "0s", False, False, False),
    )
    return rows.board(first[6:])


def read_emp2(text: str | io.TextIOBase | _Lines, source: str = "<text>") -> BoardData:
    lines = text if isinstance(text, _Lines) else _Lines(text, source)
    first = lines.next()
    if first is None or not first.startswith("ID: "):
        raise lines.error(f"expected the board ID line 'ID: <id>' (EMPv2), found {first!r}")
    meta = lines.next(skip_comments=False)
    if meta is None or not meta.startswith(EMP2_METADATA):
        raise lines.error(f"expected {EMP2_METADATA!r} after the ID line, found {meta!r}")
    links = _links(lines.tokens_after("Link  "), lines)
    word = re.compile(r"([01])?([01])([01])([01])([01]) ([0-9a-fA-F]{16})")
    rows = _frames(
        lines,
        links,
        "  ",
        lambda s: filter(None, re.split(r"\s\s+", s)),
        word,
        "[S]OSEV + space + 16 hex digits",
        lambda m: (int(m[6], 16), m[5] == "1", m[1] != "0", m[2] == "1", m[3] == "1", m[4] == "1"),
    )
    return rows.board(first[4:])


def read_apx(text: str | io.TextIOBase | _Lines, source: str = "<text>") -> BoardData:
    lines = text if isinstance(text, _Lines) else _Lines(text, source)
    line = lines.next(skip_comments=False)
    if line is not None and line.startswith("#Sideband"):
        line = lines.next(skip_comments=False)
    if line is None or not line.startswith("#LinkLabel"):
        raise lines.error(f"expected '#LinkLabel LINK_nn ...' (APx), found {line!r}")
    labels = line[len("#LinkLabel") :].split()
    if not labels or not all(re.fullmatch(r"LINK_\d{1,9}", t) for t in labels):
        raise lines.error(f"link labels must be LINK_<number>, found {labels}")
    links = tuple(int(t[5:]) for t in labels)
    if lines.next(skip_comments=False) != "#BeginData":
        raise lines.error("expected '#BeginData'")
    rows = _Frames(links, lines)
    while (line := lines.next(skip_comments=False)) is not None:
        if not line.strip():
            continue
        toks = line.split()
        if not all(re.fullmatch(r"0x[0-9a-fA-F]+", t) for t in toks):
            raise lines.error(f"every token must be a 0x hexadecimal number: {line[:60]!r}")
        if len(toks) != 2 * len(links) + 1:
            raise lines.error(
                f"{len(toks)} tokens, expected {2 * len(links) + 1} (frame, then sideband and word per link)"
            )
        if int(toks[0], 16) != rows.n:
            raise lines.error(f"frame {toks[0][:20]} where frame {rows.n:#06x} was expected")
        sb = [int(t, 16) for t in toks[1::2]]
        rows.add(
            [(int(d, 16), bool(s & 1), True, False, bool(s >> 1 & 1), bool(s >> 3 & 1)) for s, d in zip(sb, toks[2::2])]
        )
    return rows.board("")


def _x2o(*_args, **_kw):
    raise UnsupportedError(X2O_REASON, "use --format emp2 (EMP from 0.7), emp1 or apx")


@dataclass(frozen=True)
class Format:
    """One pattern-file format: DemonstratorTools' `FileFormat` name, reader and writer."""

    name: str
    read: Callable[..., BoardData]
    write: Callable[[BoardData], str]


FORMATS = {
    "emp1": Format("EMPv1", read_emp1, write_emp1),
    "emp2": Format("EMPv2", read_emp2, write_emp2),
    "apx": Format("APx", read_apx, write_apx),
    "x2o": Format("X2O", _x2o, _x2o),
}
# DemonstratorTools' parseFileFormat spellings (EMP, emp, EMPv1, EMPv2, APx, apx, X2O, x2O), in any case
ALIASES = {"emp": "emp1", "empv1": "emp1", "empv2": "emp2"}


def canonical(name: str) -> str:
    """Our name of a format (emp1, emp2, apx, x2o) from any accepted spelling."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in FORMATS:
        raise SchemaError(f"unknown pattern-file format {name!r}", f"use one of {sorted(FORMATS)}")
    return key


def get_format(name: str) -> Format:
    return FORMATS[canonical(name)]


def writer(name: str) -> Callable[[BoardData], str]:
    """The writer of a format: one error now for an unknown format or X2O (not when writing)."""
    f = get_format(name)
    if f.name == "X2O":
        _x2o()
    return f.write


def _detect(first: str) -> str:
    for start, fmt in (("Board ", "emp1"), ("ID: ", "emp2"), ("#Sideband", "apx"), ("#LinkLabel", "apx")):
        if first.startswith(start):
            return fmt
    raise SchemaError(f"not a pattern file: first line {first[:40]!r}", "pass --format emp1|emp2|apx")


def detect_format(text: str) -> str:
    """The format of a pattern file's text, from its first meaningful line."""
    return _detect(_Lines(text, "<text>").peek_meaningful())


def read_file(path: str | Path, fmt: str | None = None) -> BoardData:
    """Read a pattern file (`fmt` None: detected from its first line), streamed within the size limits."""
    path = Path(path)
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise SchemaError(f"{path}: a directory, not a pattern file", "give the pattern files themselves")
        if stat.S_ISREG(st.st_mode) and st.st_size > MAX_CHARS:
            raise SchemaError(f"{path}: {st.st_size} bytes, more than a pattern file's {MAX_CHARS}", SIZE_FIX)
        f = open(path, encoding="utf-8", errors="replace")
    except OSError as exc:
        raise SchemaError(f"{path}: cannot read ({exc.strerror or exc})", "check the path") from None
    with f:
        lines = _Lines(f, str(path))
        if fmt is None:
            first = lines.peek_meaningful()
            try:
                fmt = _detect(first)
            except SchemaError as exc:
                raise SchemaError(f"{path}: {exc.what}", exc.fix) from None
        return get_format(fmt).read(lines, str(path))


def write_file(path: str | Path, board: BoardData, fmt: str) -> Path:
    """Write a pattern file atomically."""
    text = writer(fmt)(board)
    with atomic_file(path) as tmp:
        Path(tmp).write_text(text)
    return Path(path)
