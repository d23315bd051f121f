"""Board data: what a board's link buffers hold, as CMSSW's L1Trigger/DemonstratorTools models it.

DemonstratorTools' `l1t::demo::BoardData` maps a channel (link) index to a vector of `Frame`s; a
`Frame` is a 64-bit word with the flags `valid` (default false), `strobe` (default true),
`startOfOrbit`, `startOfPacket` and `endOfPacket` (interface/BoardData.h, interface/Frame.h). Every
channel of one file has the same number of frames, and files list channels in ascending order
(a `std::map`). Here one `BoardData` holds the same as arrays of shape (links, frames).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FLAGS = ("valid", "strobe", "orbit", "start", "end")  # orbit: startOfOrbit; start/end: of packet


@dataclass(eq=False)
class BoardData:
    """Frames per link: `data[i, f]` is the 64-bit word of link `links[i]` at frame `f`."""

    links: tuple[int, ...]
    data: np.ndarray  # uint64 (n_links, n_frames)
    valid: np.ndarray  # bool (n_links, n_frames), likewise the flags below
    strobe: np.ndarray
    orbit: np.ndarray
    start: np.ndarray
    end: np.ndarray
    name: str = "CMSSW"  # the file's board ID (DemonstratorTools' BoardDataWriter default)

    def __post_init__(self) -> None:
        self.links = tuple(int(link) for link in self.links)
        if len(set(self.links)) != len(self.links) or any(link < 0 for link in self.links):
            raise ValueError(f"link indices must be distinct and >= 0, got {self.links}")
        order = np.argsort(self.links, kind="stable")
        self.links = tuple(self.links[i] for i in order)
        self.data = np.asarray(self.data, dtype=np.uint64).reshape(len(self.links), -1)[order]
        for flag in FLAGS:
            arr = np.asarray(getattr(self, flag), dtype=bool).reshape(len(self.links), -1)[order]
            if arr.shape != self.data.shape:
                raise ValueError(f"{flag} has shape {arr.shape}, data {self.data.shape}")
            setattr(self, flag, arr)

    @classmethod
    def empty(cls, links: tuple[int, ...], n_frames: int, name: str = "CMSSW") -> BoardData:
        """Invalid zero frames (strobe set) on every link: DemonstratorTools' default `Frame`."""
        shape = (len(links), n_frames)
        z = np.zeros(shape, dtype=bool)
        return cls(
            tuple(links),
            np.zeros(shape, dtype=np.uint64),
            z,
            np.ones(shape, dtype=bool),
            z.copy(),
            z.copy(),
            z.copy(),
            name,
        )

    @property
    def n_frames(self) -> int:
        return self.data.shape[1]

    def row(self, link: int) -> int:
        """The array row of a link index."""
        try:
            return self.links.index(link)
        except ValueError:
            raise KeyError(f"no link {link} (links: {list(self.links)})") from None

    def frame(self, link: int, f: int) -> dict[str, int | bool]:
        """One frame as DemonstratorTools' Frame fields (for messages)."""
        i = self.row(link)
        return {"data": int(self.data[i, f]), **{flag: bool(getattr(self, flag)[i, f]) for flag in FLAGS}}

    def equals(self, other: BoardData) -> bool:
        """Same links, frames, words and flags (the name aside)."""
        return (
            self.links == other.links
            and self.data.shape == other.data.shape
            and all(np.array_equal(getattr(self, a), getattr(other, a)) for a in ("data", *FLAGS))
        )
