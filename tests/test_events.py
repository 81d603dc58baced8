"""Event-stream input: the binning rule of hwgen/events.py and its refusals."""

import numpy as np
import pytest

from hwgen.errors import HwgenError
from hwgen.events import EVENT_DTYPE, bin_events, load_event_samples, synthetic_dvs


def events(rows):
    return np.array([tuple(r) for r in rows], dtype=EVENT_DTYPE)


def test_events_fall_into_equal_time_bins_and_count_once():
    ev = events([(0, 0, 0, 1), (1, 0, 9, 1), (1, 0, 9, 1), (2, 1, 10, 0), (3, 2, 39, 1)])
    x = bin_events(ev, (2, 3, 4), timesteps=4, duration=40)
    assert x.shape == (4, 2, 3, 4) and x.dtype == np.uint8
    assert x[0, 1, 0, 0] == 1 and x[0, 1, 0, 1] == 1  # t = 0 and 9 -> bin 0; the repeat counts once
    assert x[1, 0, 1, 2] == 1  # t = 10, polarity 0 -> channel 0
    assert x[3, 1, 2, 3] == 1  # t = 39 -> the last bin
    assert x.sum() == 4


def test_without_a_duration_the_span_of_the_sample_is_used_and_late_events_are_dropped():
    ev = events([(0, 0, 100, 1), (0, 0, 199, -1)])
    x = bin_events(ev, (2, 1, 1), timesteps=2)
    assert x[0, 1, 0, 0] == 1 and x[1, 0, 0, 0] == 1  # -1 polarity goes to channel 0
    assert bin_events(ev, (2, 1, 1), timesteps=2, duration=50).sum() == 1  # 199 is past t0 + 50


@pytest.mark.parametrize("bad,message", [
    (np.zeros(3, dtype=[("x", "i2"), ("y", "i2")]), "missing ['t', 'p']"),
    (events([(5, 0, 0, 1)]), "do not fit the model's 4x3 input"),
])
def test_bad_event_arrays_are_refused(bad, message):
    with pytest.raises(HwgenError, match=message.replace("[", r"\[").replace("]", r"\]")):
        bin_events(bad, (2, 3, 4), timesteps=4)


def test_a_model_without_two_polarity_channels_cannot_take_events():
    with pytest.raises(HwgenError, match="needs 2"):
        bin_events(events([(0, 0, 0, 1)]), (1, 3, 4), timesteps=4)


def test_an_npz_of_samples_loads_in_name_order(tmp_path):
    np.savez(tmp_path / "ev.npz", b=events([(1, 1, 0, 1)]), a=events([(0, 0, 0, 0)]))
    x = load_event_samples(str(tmp_path / "ev.npz"), (2, 2, 2), timesteps=3)
    assert x.shape == (2, 3, 2, 2, 2)
    assert x[0, 0, 0, 0, 0] == 1 and x[1, 0, 1, 1, 1] == 1
    (tmp_path / "junk.npz").write_text("not an archive")
    with pytest.raises(HwgenError, match="junk.npz: not an .npz archive"):
        load_event_samples(str(tmp_path / "junk.npz"), (2, 2, 2), 3)


def test_synthetic_dvs_is_sparse_with_both_polarities():
    for ev in synthetic_dvs(4, 34, 34, seed=3):
        x = bin_events(ev, (2, 34, 34), timesteps=10, duration=100_000)
        assert 0.005 < x.mean() < 0.15
        assert x[:, 0].sum() > 0 and x[:, 1].sum() > 0
