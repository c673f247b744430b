import dataclasses
from typing import Literal

import pytest

from analysis.settings import ConfigError, StageSettings, require


@dataclasses.dataclass(frozen=True)
class DemoSettings(StageSettings):
    section = "demo"
    window_s: float = 1.0
    n_iterations: int = 3
    block_px: tuple[int, int] = (8, 8)
    method: Literal["a", "b"] = "a"
    reference: str | None = None

    def __post_init__(self):
        require(self.window_s > 0, "demo.window_s must be > 0")


def test_defaults_and_conversion():
    s = DemoSettings.from_mapping({"window_s": 2, "block_px": [4, 6]})
    assert s.window_s == 2.0 and isinstance(s.window_s, float)
    assert s.block_px == (4, 6)
    assert s.n_iterations == 3


def test_unknown_key_names_key_and_suggests():
    with pytest.raises(
        ConfigError, match=r"'demo'.*unknown key 'windw_s'.*did you mean 'window_s'"
    ):
        DemoSettings.from_mapping({"windw_s": 2})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("n_iterations", 2.5),
        ("n_iterations", True),
        ("window_s", "1"),
        ("block_px", [1]),
        ("method", "c"),
        ("reference", 3),
    ],
)
def test_wrong_type_names_key(key, value):
    with pytest.raises(ConfigError, match=f"key '{key}'"):
        DemoSettings.from_mapping({key: value})


def test_range_check_is_config_error():
    with pytest.raises(ConfigError, match="window_s must be > 0"):
        DemoSettings.from_mapping({"window_s": -1})


def test_frozen():
    s = DemoSettings.from_mapping({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.window_s = 3.0  # type: ignore[misc]


def test_section_that_is_not_a_mapping():
    with pytest.raises(ConfigError, match="'demo' must be a mapping"):
        DemoSettings.from_mapping(5)
