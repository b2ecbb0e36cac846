"""BatchedPerpEnv over several segments of one matrix: no episode crosses from one segment into the next."""

import numpy as np
import pytest

from aster_rl.config import EnvConfig
from aster_rl.errors import DataError
from envs import BatchedPerpEnv
from test_perp import synthetic

SEGMENTS = [(20, 180), (180, 260), (300, 560)]


def _bar_indexed(n: int):
    features, prices = synthetic(n=n)
    features = np.array(features, dtype=np.float32)
    features[:, 0] = np.arange(n)  # the observation's first column names the bar it was taken at
    return features, prices


def _segment_of(bar: float) -> int:
    hits = [k for k, (a, b) in enumerate(SEGMENTS) if a <= bar < b]
    assert len(hits) == 1, f"bar {bar} lies in no segment"
    return hits[0]


def test_episodes_stay_inside_one_segment():
    features, prices = _bar_indexed(600)
    cfg = EnvConfig(episode_length=40)
    n = 16
    vec = BatchedPerpEnv(features, prices, cfg, n, start=20, end=560, seed=5, segments=SEGMENTS)
    obs = vec.reset()
    current = [_segment_of(o[0]) for o in obs]
    starts = [float(o[0]) for o in obs]
    rng = np.random.default_rng(1)
    episodes = 0
    for _ in range(600):
        actions = np.stack([rng.integers(0, 3, n), rng.integers(0, len(cfg.leverages), n),
                            rng.integers(0, len(cfg.exit_profiles), n)], axis=1)
        obs, _, done, infos = vec.step(actions)
        for i in range(n):
            last = infos[i]["terminal_observation"][0] if done[i] else obs[i][0]
            assert _segment_of(last) == current[i], (i, last)
            if done[i]:
                episodes += 1
                current[i] = _segment_of(obs[i][0])
                starts.append(float(obs[i][0]))
    assert episodes > 200
    # every segment is drawn, the short one too, and starts are spread inside each
    seen = {_segment_of(s) for s in starts}
    assert seen == {0, 1, 2}
    assert len(set(starts)) > 100


def test_fixed_start_uses_the_first_segment():
    features, prices = _bar_indexed(600)
    vec = BatchedPerpEnv(features, prices, EnvConfig(episode_length=40), 2, start=20, end=560, random_start=False,
                         segments=SEGMENTS)
    obs = vec.reset()
    assert _segment_of(obs[0][0]) == 0 and obs[0][0] == obs[1][0]


@pytest.mark.parametrize("segments, what", [([(20, 50)], "not more than one episode"),
                                            ([(10, 200)], "must lie inside"), ([(300, 700)], "must lie inside"),
                                            ([], "none given")])
def test_bad_segments_refused(segments, what):
    features, prices = _bar_indexed(600)
    with pytest.raises(DataError, match=what):
        BatchedPerpEnv(features, prices, EnvConfig(episode_length=40), 2, start=20, end=560, segments=segments)
