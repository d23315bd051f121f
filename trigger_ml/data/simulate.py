"""Vectorised simulation of ECAL barrel trigger-primitive windows.

A window is N x N crystals (default 9 x 9; axis 0 is ieta, axis 1 is iphi; one crystal is
0.0174 x 0.0174 in eta x phi, 2.2 cm, about one Moliere radius) centred on the seed crystal,
the local maximum of the digitised energies. Every class is built the same way:

1. a class generator (see `GENERATORS`) returns energy deposits: transverse energy, position in
   crystal units relative to the centre of the seed crystal, and a transverse profile;
2. each deposit is integrated over the crystal faces of an (N+2) x (N+2) grid. A profile is a
   sum of two round Gaussians, a narrow core and a wide tail (Grindhammer-style core + tail);
   the integral of a round Gaussian over a square face is a product of two one-dimensional
   integrals, read from tables built once (positions on a 1/64-crystal grid);
3. pileup (PU) overlay: soft neutral particles, Poisson in number with a mean proportional to
   PU, each depositing an exponentially distributed energy in one crystal;
4. Gaussian electronics noise per crystal;
5. digitisation to integer counts of one LSB (rounded to nearest, clipped below at 0 and
   saturated at 2**bits - 1): these integers are the model inputs;
6. the seed is the maximum of the central 3 x 3 of the grid; the N x N window around it is
   kept if the seed is a local maximum (of its own 3 x 3) above the L1 seed threshold, and
   regenerated otherwise.

Classes (the physics of each is in its generator's docstring): `eg` (signal), `pu` (pileup
fakes), and the anomalies `spike`, `diphoton` and `displaced`, never used to train the
autoencoder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy.special import ndtr

CRYSTAL_ETA_PHI = 0.0174
"""Crystal size in eta and in phi (rad)."""

_Q = 64  # sub-crystal position steps of the profile tables


@dataclass(frozen=True)
class Profile:
    """Transverse profile: core and tail Gaussian widths (crystal units) and core weight."""

    core_sigma: float
    tail_sigma: float
    core_weight: float
    weight_jitter: float = 0.0  # shower-to-shower spread of the core weight (Gaussian sigma)


PROFILES: dict[str, Profile] = {
    # Electromagnetic shower: ~80% of the energy in the hit crystal, ~94% in 3x3, ~97% in 5x5.
    "em": Profile(core_sigma=0.06, tail_sigma=1.6, core_weight=0.92, weight_jitter=0.03),
    # Hadronic shower start in ECAL: wide, lumpy (interaction length >> Moliere radius).
    "had": Profile(core_sigma=0.45, tail_sigma=1.60, core_weight=0.45, weight_jitter=0.10),
    # Energy in the hit crystal only (direct ionisation in the photodetector).
    "point": Profile(core_sigma=0.01, tail_sigma=0.01, core_weight=1.0),
}
PROFILE_INDEX = {name: i for i, name in enumerate(PROFILES)}


@dataclass(frozen=True)
class SimConfig:
    """Everything that defines a simulated data set (stored as metadata with it)."""

    window: int = 9
    pu: float = 200.0
    noise_gev: float = 0.045
    lsb_gev: float = 0.25
    bits: int = 10
    seed_threshold_gev: float = 1.0
    pu_particles_per_crystal_per_pu: float = 3.1e-4  # ~5 soft particles per 9x9 at PU 200
    pu_particle_mean_gev: float = 0.4
    eg_pt: tuple[float, float, float] = (5.0, 100.0, 1.0)  # min, max, power-law index
    pu_pt: tuple[float, float, float] = (5.0, 100.0, 3.0)
    anomaly_pt: tuple[float, float, float] = (20.0, 100.0, 1.0)
    electron_fraction: float = 0.5
    conversion_probability: float = 0.3
    max_brem_fraction: float = 0.6
    fractions: dict[str, float] = field(
        default_factory=lambda: {
            "eg": 0.4,
            "pu": 0.4,
            "spike": 0.2 / 3,
            "diphoton": 0.2 / 3,
            "displaced": 0.2 / 3,
        }
    )

    def __post_init__(self) -> None:
        if self.window < 5 or self.window % 2 == 0:
            raise ValueError(f"window must be odd and >= 5, got {self.window}")
        if not 1 <= self.bits <= 16:
            raise ValueError(f"bits must be within 1..16, got {self.bits}")
        if self.lsb_gev <= 0 or self.noise_gev < 0 or self.pu < 0:
            raise ValueError("lsb_gev must be > 0; noise_gev and pu must be >= 0")
        unknown = set(self.fractions) - set(GENERATORS)
        if unknown:
            raise ValueError(f"unknown classes {sorted(unknown)}; known: {sorted(GENERATORS)}")
        if any(f < 0 for f in self.fractions.values()) or sum(self.fractions.values()) <= 0:
            raise ValueError("class fractions must be >= 0 with a positive sum")

    @property
    def saturation(self) -> int:
        return (1 << self.bits) - 1

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


class Deposits(NamedTuple):
    """K energy deposits for each of n windows (zero energy pads unused slots)."""

    et: np.ndarray  # (n, K) GeV
    x: np.ndarray  # (n, K) ieta, crystal units from the seed-crystal centre
    y: np.ndarray  # (n, K) iphi
    profile: np.ndarray  # (n, K) index into PROFILES
    pt: np.ndarray  # (n,) generated transverse momentum, GeV
    impact: np.ndarray  # (n, 2) impact point of the primary, crystal units


# --------------------------------------------------------------------------- spectra, helpers


def power_law(rng: np.random.Generator, n: int, spec: tuple[float, float, float]) -> np.ndarray:
    """Sample pT in [lo, hi] from a density proportional to pT**-index."""
    lo, hi, index = spec
    u = rng.random(n)
    if abs(index - 1.0) < 1e-12:
        return lo * (hi / lo) ** u
    a = 1.0 - index
    return (lo**a + u * (hi**a - lo**a)) ** (1.0 / a)


def _unit_vectors(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    ang = rng.random(n) * 2 * np.pi
    return np.cos(ang), np.sin(ang)


def _impact(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.random((n, 2)) - 0.5


def _brem_spread_crystals(pt: np.ndarray) -> np.ndarray:
    """Phi spread of bremsstrahlung in crystals: 0.3 * B * R / (2 pT), B = 3.8 T, R = 1.29 m."""
    return 0.3 * 3.8 * 1.29 / (2 * pt) / CRYSTAL_ETA_PHI


# --------------------------------------------------------------------------- class generators


def gen_eg(rng: np.random.Generator, n: int, cfg: SimConfig) -> Deposits:
    """Electrons and photons: one EM shower, impact point uniform in the seed crystal.

    Electrons (and converted photons) radiate a fraction of their energy as bremsstrahlung
    photons in the tracker; the 3.8 T field bends the electron so the photons land along phi,
    up to 0.3 B R / 2 pT rad away (about 42 crystals / pT[GeV]): the spread grows as pT falls.
    Converted photons split their energy between an e+ e- pair bent in opposite directions.
    """
    pt = power_law(rng, n, cfg.eg_pt)
    imp = _impact(rng, n)
    is_e = rng.random(n) < cfg.electron_fraction
    is_conv = ~is_e & (rng.random(n) < cfg.conversion_probability)
    spread = _brem_spread_crystals(pt) * rng.choice([-1.0, 1.0], n)
    f_brem = np.where(is_e, rng.random(n) * cfg.max_brem_fraction, 0.0)
    u = rng.random((n, 2))
    z = 0.2 + 0.6 * rng.random(n)  # conversion pair energy sharing
    et = np.zeros((n, 3))
    dy = np.zeros((n, 3))
    # electron: primary deposit plus two brem photons along the bending direction
    et[:, 0] = pt * (1 - f_brem)
    et[:, 1] = pt * f_brem * 0.5
    et[:, 2] = pt * f_brem * 0.5
    dy[:, 1] = -spread * u[:, 0]
    dy[:, 2] = -spread * u[:, 1]
    # converted photon: the pair, bent apart
    et[is_conv, 0] = pt[is_conv] * z[is_conv]
    et[is_conv, 1] = pt[is_conv] * (1 - z[is_conv])
    et[is_conv, 2] = 0.0
    dy[is_conv, 1] = spread[is_conv] * u[is_conv, 0] * 0.5
    x = np.repeat(imp[:, :1], 3, axis=1)
    y = imp[:, 1:2] + dy
    prof = np.full((n, 3), PROFILE_INDEX["em"])
    return Deposits(et, x, y, prof, pt, imp)


def gen_pu(rng: np.random.Generator, n: int, cfg: SimConfig) -> Deposits:
    """Fake clusters from pileup: a leading particle plus Poisson-many soft neighbours.

    Leading particle: a single soft photon (30%), a pi0 -> gamma gamma pair with opening
    angle ~ 2 m_pi0 / pT (40%), a charged hadron depositing 10-70% of its pT in ECAL with a
    hadronic profile (20%), or a neutral hadron likewise (10%). Neighbours: Poisson with mean
    1.5 at PU 200 (proportional to PU), photons within 2.5 crystals, exponential energies
    (mean 15% of the leading pT). The result is wider, lumpier and often multi-peaked.
    """
    pt = power_law(rng, n, cfg.pu_pt)
    imp = _impact(rng, n)
    kind = rng.choice(4, n, p=[0.3, 0.4, 0.2, 0.1])
    k_max = 5
    et = np.zeros((n, k_max))
    x = np.zeros((n, k_max))
    y = np.zeros((n, k_max))
    prof = np.full((n, k_max), PROFILE_INDEX["em"])
    x[:, 0], y[:, 0] = imp[:, 0], imp[:, 1]
    et[:, 0] = pt
    # pi0: two photons, energy sharing z, opening angle m/(pT sqrt(z(1-z)))
    pi0 = kind == 1
    z = 0.1 + 0.8 * rng.random(n)
    theta = 0.135 / (pt * np.sqrt(z * (1 - z))) / CRYSTAL_ETA_PHI
    cx, cy = _unit_vectors(rng, n)
    et[pi0, 0] = pt[pi0] * z[pi0]
    et[pi0, 1] = pt[pi0] * (1 - z[pi0])
    x[pi0, 1] = imp[pi0, 0] + theta[pi0] * cx[pi0]
    y[pi0, 1] = imp[pi0, 1] + theta[pi0] * cy[pi0]
    # hadrons: partial, wide deposits
    had = kind >= 2
    et[had, 0] = pt[had] * (0.1 + 0.6 * rng.random(had.sum()))
    prof[had, 0] = PROFILE_INDEX["had"]
    # soft neighbours
    n_nb = np.minimum(rng.poisson(1.5 * cfg.pu / 200.0, n), 3)
    r = 2.5 * np.sqrt(rng.random((n, 3)))
    ax, ay = _unit_vectors(rng, 3 * n)
    e_nb = rng.exponential(0.15, (n, 3)) * pt[:, None]
    on = np.arange(3)[None, :] < n_nb[:, None]
    et[:, 2:] = np.where(on, e_nb, 0.0)
    x[:, 2:] = imp[:, :1] + r * ax.reshape(n, 3)
    y[:, 2:] = imp[:, 1:2] + r * ay.reshape(n, 3)
    return Deposits(et, x, y, prof, pt, imp)


def gen_spike(rng: np.random.Generator, n: int, cfg: SimConfig) -> Deposits:
    """ECAL spikes: direct ionisation in the avalanche photodiode puts 95-100% of the energy in
    one crystal, with at most a small EM-like leakage around it."""
    pt = power_law(rng, n, cfg.anomaly_pt)
    imp = _impact(rng, n)
    leak = 0.05 * rng.random(n)
    et = np.stack([pt * (1 - leak), pt * leak], axis=1)
    x = np.repeat(imp[:, :1], 2, axis=1)
    y = np.repeat(imp[:, 1:2], 2, axis=1)
    prof = np.tile([PROFILE_INDEX["point"], PROFILE_INDEX["em"]], (n, 1))
    return Deposits(et, x, y, prof, pt, imp)


def gen_diphoton(rng: np.random.Generator, n: int, cfg: SimConfig) -> Deposits:
    """Boosted a -> gamma gamma: m_a uniform in 0.2-0.6 GeV, energy sharing z in 0.2-0.8;
    opening angle m / (pT sqrt(z (1-z))) is 0.5-3 crystals: an elongated, two-core shower."""
    pt = power_law(rng, n, cfg.anomaly_pt)
    imp = _impact(rng, n)
    m = 0.2 + 0.4 * rng.random(n)
    z = 0.2 + 0.6 * rng.random(n)
    theta = m / (pt * np.sqrt(z * (1 - z))) / CRYSTAL_ETA_PHI
    cx, cy = _unit_vectors(rng, n)
    et = np.stack([pt * z, pt * (1 - z)], axis=1)
    x = np.stack([imp[:, 0], imp[:, 0] + theta * cx], axis=1)
    y = np.stack([imp[:, 1], imp[:, 1] + theta * cy], axis=1)
    prof = np.full((n, 2), PROFILE_INDEX["em"])
    return Deposits(et, x, y, prof, pt, imp)


_DEPTH_X0 = np.array([3.0, 6.0, 9.0, 13.0])
_DEPTH_FRACTION = np.array([0.2, 0.35, 0.3, 0.15])
_X0_OVER_CRYSTAL = 0.89 / 2.2  # radiation length of PbWO4 / crystal face


def gen_displaced(rng: np.random.Generator, n: int, cfg: SimConfig) -> Deposits:
    """Non-pointing photons from a displaced (long-lived particle) decay: the photon enters the
    crystals at 15-40 degrees to their axis, so the longitudinal shower (energy at depths of
    3, 6, 9, 13 radiation lengths) is smeared sideways by depth * tan(angle): a broad shower
    elongated along a random direction, unlike any prompt photon from the vertex."""
    pt = power_law(rng, n, cfg.anomaly_pt)
    imp = _impact(rng, n)
    tan_a = np.tan(np.deg2rad(15 + 25 * rng.random(n)))
    cx, cy = _unit_vectors(rng, n)
    d = _DEPTH_X0[None, :] * _X0_OVER_CRYSTAL * tan_a[:, None]  # (n, 4) sideways shift
    et = pt[:, None] * _DEPTH_FRACTION[None, :]
    x = imp[:, :1] + d * cx[:, None]
    y = imp[:, 1:2] + d * cy[:, None]
    prof = np.full((n, 4), PROFILE_INDEX["em"])
    return Deposits(et, x, y, prof, pt, imp)


GENERATORS: dict[str, Callable[[np.random.Generator, int, SimConfig], Deposits]] = {
    "eg": gen_eg,
    "pu": gen_pu,
    "spike": gen_spike,
    "diphoton": gen_diphoton,
    "displaced": gen_displaced,
}
SIGNAL_CLASS = "eg"
BACKGROUND_CLASS = "pu"
ANOMALY_CLASSES = ("spike", "diphoton", "displaced")


# --------------------------------------------------------------------------- rendering


def _profile_tables(grid: int) -> tuple[np.ndarray, int]:
    """Fraction of a unit 1D Gaussian in each crystal: table[profile, component, q, offset].

    The deposit sits at sub-crystal position (q + 0.5) / Q - 0.5 of crystal 0; `offset` runs
    over crystals -R..R with R = 2 * grid.
    """
    r = 2 * grid
    rel = np.arange(-r, r + 1, dtype=np.float64)
    pos = (np.arange(_Q) + 0.5) / _Q - 0.5
    out = np.empty((len(PROFILES), 2, _Q, 2 * r + 1), dtype=np.float32)
    for p, prof in enumerate(PROFILES.values()):
        for c, s in enumerate((prof.core_sigma, prof.tail_sigma)):
            hi = (rel[None, :] + 0.5 - pos[:, None]) / s
            lo = (rel[None, :] - 0.5 - pos[:, None]) / s
            out[p, c] = ndtr(hi) - ndtr(lo)
    return out, r


class _Renderer:
    """Integrates deposits over the crystal faces of a grid x grid patch."""

    def __init__(self, grid: int) -> None:
        self.grid = grid
        self.table, self.r = _profile_tables(grid)
        weights = np.array([p.core_weight for p in PROFILES.values()])
        jitter = np.array([p.weight_jitter for p in PROFILES.values()])
        self.core_weight, self.jitter = weights, jitter

    def __call__(self, rng: np.random.Generator, dep: Deposits) -> np.ndarray:
        n, k = dep.et.shape
        g, half = self.grid, self.grid // 2
        lim = self.r - g
        x = np.clip(dep.x, -lim, lim)
        y = np.clip(dep.y, -lim, lim)
        w = self.core_weight[dep.profile] + self.jitter[dep.profile] * rng.standard_normal((n, k))
        w = np.clip(w, 0.0, 1.0)
        cells = np.arange(g)
        parts = []
        for pos in (x, y):
            cell = np.floor(pos + 0.5)
            q = np.minimum(((pos + 0.5 - cell) * _Q).astype(np.int64), _Q - 1)
            idx = cells[None, None, :] - (cell.astype(np.int64) + half)[..., None] + self.r
            parts.append((q, idx))
        (qx, ix), (qy, iy) = parts
        p = dep.profile[..., None]
        img = np.zeros((n, g, g), dtype=np.float32)
        for c, wc in ((0, w), (1, 1.0 - w)):
            ex = self.table[p, c, qx[..., None], ix] * (dep.et * wc)[..., None].astype(np.float32)
            ey = self.table[p, c, qy[..., None], iy]
            img += np.matmul(ex.transpose(0, 2, 1), ey)
        return img


def _overlay_pu_noise(rng: np.random.Generator, img: np.ndarray, cfg: SimConfig) -> None:
    n, g, _ = img.shape
    flat = img.reshape(n, g * g)
    lam = cfg.pu * cfg.pu_particles_per_crystal_per_pu * g * g
    if lam > 0:
        counts = rng.poisson(lam, n)
        total = int(counts.sum())
        rows = np.repeat(np.arange(n), counts)
        cols = rng.integers(0, g * g, total)
        energy = rng.exponential(cfg.pu_particle_mean_gev, total).astype(np.float32)
        np.add.at(flat, (rows, cols), energy)
    if cfg.noise_gev > 0:
        flat += cfg.noise_gev * rng.standard_normal(flat.shape, dtype=np.float32)


def digitise(energy_gev: np.ndarray, lsb_gev: float, bits: int) -> np.ndarray:
    """Energies (GeV) to trigger-primitive counts: nearest integer, clipped to [0, 2**bits-1]."""
    counts = np.floor(energy_gev / np.float32(lsb_gev) + np.float32(0.5))
    return np.clip(counts, 0, (1 << bits) - 1).astype(np.uint16)


def _seed_crop(counts: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Crop window x window around the maximum of the central 3x3; return images and shifts."""
    n, g, _ = counts.shape
    c = g // 2
    centre = counts[:, c - 1 : c + 2, c - 1 : c + 2].reshape(n, 9)
    arg = np.argmax(centre, axis=1)
    di, dj = arg // 3 - 1, arg % 3 - 1
    ar = np.arange(window)
    rows = (c + di - window // 2)[:, None, None] + ar[None, :, None]
    cols = (c + dj - window // 2)[:, None, None] + ar[None, None, :]
    out = counts[np.arange(n)[:, None, None], rows, cols]
    return out, np.stack([di, dj], axis=1)


# --------------------------------------------------------------------------- data set


@dataclass
class Windows:
    """Simulated windows and their truth; `features` is filled by `trigger_ml.data.features`."""

    images: np.ndarray  # (n, N, N) uint16 counts of lsb_gev
    labels: np.ndarray  # (n,) int8 index into class_names
    class_names: tuple[str, ...]
    pt: np.ndarray  # (n,) float32 generated pT, GeV
    impact: np.ndarray  # (n, 2) float32 impact point (ieta, iphi) from the seed-crystal centre
    config: SimConfig
    seed: int

    def __len__(self) -> int:
        return len(self.labels)


def class_counts(n_events: int, fractions: dict[str, float]) -> dict[str, int]:
    """Deterministic per-class counts summing to n_events (largest remainders)."""
    total = sum(fractions.values())
    raw = {k: n_events * v / total for k, v in fractions.items()}
    counts = {k: int(np.floor(v)) for k, v in raw.items()}
    rest = n_events - sum(counts.values())
    for k in sorted(raw, key=lambda k: (counts[k] - raw[k], k))[:rest]:
        counts[k] += 1
    return counts


def _simulate_class(
    rng: np.random.Generator, name: str, n: int, cfg: SimConfig, renderer: _Renderer, chunk: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    threshold = int(np.floor(cfg.seed_threshold_gev / cfg.lsb_gev + 0.5))
    done = 0
    while done < n:
        m = min(chunk, int((n - done) * 1.05) + 16)
        dep = GENERATORS[name](rng, m, cfg)
        energy = renderer(rng, dep)
        _overlay_pu_noise(rng, energy, cfg)
        counts = digitise(energy, cfg.lsb_gev, cfg.bits)
        img, shift = _seed_crop(counts, cfg.window)
        c = cfg.window // 2
        seed = img[:, c, c]
        local_max = img[:, c - 1 : c + 2, c - 1 : c + 2].max(axis=(1, 2)) == seed
        keep = np.flatnonzero((seed >= threshold) & local_max)[: n - done]
        done += len(keep)
        impact = (dep.impact[keep] - shift[keep]).astype(np.float32)
        yield img[keep], dep.pt[keep].astype(np.float32), impact


def simulate(
    n_events: int,
    cfg: SimConfig | None = None,
    seed: int = 0,
    chunk: int = 16384,
    progress: Callable[[int], None] | None = None,
) -> Windows:
    """Simulate `n_events` windows; the same seed and config give identical arrays."""
    cfg = cfg or SimConfig()
    if n_events < 1:
        raise ValueError(f"n_events must be >= 1, got {n_events}")
    rng = np.random.Generator(np.random.PCG64(seed))
    renderer = _Renderer(cfg.window + 2)
    names = tuple(cfg.fractions)
    counts = class_counts(n_events, cfg.fractions)
    images = np.empty((n_events, cfg.window, cfg.window), dtype=np.uint16)
    labels = np.empty(n_events, dtype=np.int8)
    pt = np.empty(n_events, dtype=np.float32)
    impact = np.empty((n_events, 2), dtype=np.float32)
    at = 0
    for label, name in enumerate(names):
        for img, p, imp in _simulate_class(rng, name, counts[name], cfg, renderer, chunk):
            sl = slice(at, at + len(img))
            images[sl], pt[sl], impact[sl], labels[sl] = img, p, imp, label
            at += len(img)
            if progress:
                progress(len(img))
    order = rng.permutation(n_events)
    return Windows(images[order], labels[order], names, pt[order], impact[order], cfg, seed)
