"""The shipped reward config equals the library defaults, term for term."""

from pathlib import Path

import yaml

from simenv.reward import TERMS, RewardWeights

CONF = Path(__file__).resolve().parents[1] / "conf" / "reward" / "default.yaml"


def test_default_reward_yaml_matches_dataclass():
    data = yaml.safe_load(CONF.read_text())
    assert sorted(data) == sorted(TERMS)
    assert RewardWeights.from_mapping(data) == RewardWeights()
