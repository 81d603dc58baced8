"""Event-camera input: tonic-style ``(t, x, y, p)`` events binned into spike timesteps.

Binning rule (docs/semantics.md works on binary spikes, so this rule is what makes an event
stream an input): with ``t0`` the first event's time (or ``t_start``) and ``D`` the span up
to the last event plus one (or ``duration``), an event at time ``t`` falls into timestep
``floor((t - t0) · T / D)``; events outside ``[t0, t0 + D)`` are dropped. The input at
``(timestep, polarity, y, x)`` is 1 if at least one event fell there (several events in one
bin count once). Polarity is channel ``1`` for ``p > 0`` and channel ``0`` otherwise, which
covers both the 0/1 and the -1/+1 conventions.
"""

from __future__ import annotations

import numpy as np

from .errors import HwgenError

EVENT_FIELDS = ("t", "x", "y", "p")
EVENT_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "<i1")])  # tonic's layout


def bin_events(events: np.ndarray, shape: tuple[int, int, int], timesteps: int,
               duration: float | None = None, t_start: float | None = None,
               what: str = "events") -> np.ndarray:
    """Bin one sample's events into ``[T, P, H, W]`` uint8 spikes (``shape = (P, H, W)``)."""
    names = events.dtype.names or ()
    missing = [f for f in EVENT_FIELDS if f not in names]
    if missing:
        raise HwgenError(f"{what}: not an event array (fields {list(names)}, missing {missing}); "
                         "expected a structured array with fields t, x, y, p as tonic produces")
    # x, y, p index the input map: integers (p may be bool); t may be integer or float.
    kinds = {"x": "iu", "y": "iu", "p": "iub", "t": "iuf"}
    wrong = [f"{f} ({events.dtype[f]})" for f, ok in kinds.items() if events.dtype[f].kind not in ok]
    if wrong:
        raise HwgenError(f"{what}: event field(s) {', '.join(wrong)} are not numbers of the right kind; "
                         "x, y and p must be integers, t an integer or float time stamp")
    channels, height, width = shape
    if channels != 2:
        raise HwgenError(f"{what}: the model takes {channels} input channel(s); event input needs 2 (polarities)")
    out = np.zeros((timesteps, channels, height, width), dtype=np.uint8)
    if len(events) == 0:
        return out
    x, y = events["x"].astype(np.int64), events["y"].astype(np.int64)
    if x.min() < 0 or x.max() >= width or y.min() < 0 or y.max() >= height:
        raise HwgenError(f"{what}: event coordinates x {x.min()}..{x.max()}, y {y.min()}..{y.max()} "
                         f"do not fit the model's {width}x{height} input")
    t = events["t"].astype(np.float64)
    if not np.all(np.isfinite(t)):
        raise HwgenError(f"{what}: {int(np.count_nonzero(~np.isfinite(t)))} event time(s) are NaN or inf; "
                         "every event needs a finite time stamp t")
    t0 = float(t.min()) if t_start is None else float(t_start)
    span = float(t.max() - t0 + 1) if duration is None else float(duration)
    step = np.floor((t - t0) * timesteps / span).astype(np.int64)
    keep = (step >= 0) & (step < timesteps)
    polarity = (events["p"] > 0).astype(np.int64)
    out[step[keep], polarity[keep], y[keep], x[keep]] = 1
    return out


def load_event_samples(path: str, shape: tuple[int, int, int], timesteps: int,
                       duration: float | None = None) -> np.ndarray:
    """Every event array of an ``.npz`` (one per sample, in name order), binned."""
    from .arrays import load_npz

    if duration is not None and not (np.isfinite(duration) and duration > 0):
        raise HwgenError(f"--duration must be a positive time span (in the events' time unit), got {duration}")
    archive = load_npz(path, "event", "numpy.savez(path, *event_arrays), one structured array "
                                      "(fields t, x, y, p) per sample")
    samples = [bin_events(archive[name], shape, timesteps, duration, what=f"{path}:{name}")
               for name in sorted(archive)]
    if not samples:
        raise HwgenError(f"{path}: holds no event arrays")
    return np.stack(samples)


def synthetic_dvs(samples: int, height: int, width: int, duration_us: int = 100_000,
                  seed: int = 0) -> list[np.ndarray]:
    """DVS-like event streams: an edge sweeping across the sensor plus background noise.

    A moving edge makes ON events on its leading side and OFF events on its trailing side,
    as a real DVS does; the events are sparse (a few percent of pixels per timestep).
    """
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(samples):
        angle = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(0.5, 1.5) * max(height, width) / duration_us
        yy, xx = np.mgrid[0:height, 0:width]
        proj = (xx - width / 2) * np.cos(angle) + (yy - height / 2) * np.sin(angle)
        events = []
        for t in np.sort(rng.integers(0, duration_us, size=40)):
            front = -max(height, width) / 2 + speed * t
            for polarity, offset in ((1, 0.0), (0, -2.0)):
                band = np.abs(proj - (front + offset)) < 0.6
                ys, xs = np.nonzero(band & (rng.random(band.shape) < 0.5))
                events.append(np.rec.fromarrays([xs, ys, np.full(len(xs), t), np.full(len(xs), polarity)],
                                                dtype=EVENT_DTYPE))
        noise = int(rng.integers(height * width // 20, height * width // 8))
        events.append(np.rec.fromarrays([rng.integers(0, width, noise), rng.integers(0, height, noise),
                                         rng.integers(0, duration_us, noise), rng.integers(0, 2, noise)],
                                        dtype=EVENT_DTYPE))
        merged = np.concatenate(events).view(np.ndarray).astype(EVENT_DTYPE)
        out.append(np.sort(merged, order="t"))
    return out
