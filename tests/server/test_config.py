"""The server's configuration: the scoring choices of ``lookwhere analyze``, one loopback list."""

from __future__ import annotations

from analysis.scoring_config import ScoringConfig
from lookwhere.transport import LOOPBACK_HOSTS, is_loopback
from server.config import ServeConfig


def test_the_server_scores_with_the_offline_configuration(tmp_path):
    config = ServeConfig(stimuli=tmp_path, seed=7, metrics=("cc", "nss"))
    assert config.scoring == ScoringConfig(seed=7, metrics=("cc", "nss"))
    assert set(ScoringConfig.model_fields) <= set(ServeConfig.model_fields)


def test_loopback_names_and_the_token():
    assert all(is_loopback(host) for host in LOOPBACK_HOSTS) and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("evil.example")
    assert ServeConfig(stimuli=".", bind="::1").token is None
    assert ServeConfig(stimuli=".", bind="0.0.0.0").token  # a token is made for any other interface
