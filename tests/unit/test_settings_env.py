"""Settings from LABNB_* variables (config.Settings.from_env): defaults, then the environment, then overrides."""
from __future__ import annotations

import pytest

from webapp.config import Settings
from webapp.errors import ConfigError


@pytest.fixture(autouse=True)
def no_labnb_variables(monkeypatch):
    import os
    for name in [n for n in os.environ if n.startswith("LABNB_")]:
        monkeypatch.delenv(name)


def test_without_variables_the_defaults_hold():
    assert Settings.from_env() == Settings()


def test_each_field_is_read_with_its_type(monkeypatch):
    monkeypatch.setenv("LABNB_CAPACITY", "12")
    monkeypatch.setenv("LABNB_MAX_MINUTES", "90.5")
    monkeypatch.setenv("LABNB_ACCESS_CODE", "abcde-23456")
    s = Settings.from_env()
    assert (s.capacity, s.max_minutes, s.access_code) == (12, 90.5, "abcde-23456")
    assert isinstance(s.capacity, int) and isinstance(s.max_minutes, float)


def test_an_int_setting_refuses_a_word_and_names_the_variable(monkeypatch):
    monkeypatch.setenv("LABNB_POOL_SIZE", "two")
    with pytest.raises(ConfigError, match=r"LABNB_POOL_SIZE: 'two' is not a valid int"):
        Settings.from_env()


def test_a_float_setting_refuses_a_word(monkeypatch):
    monkeypatch.setenv("LABNB_IDLE_MINUTES", "soon")
    with pytest.raises(ConfigError, match="LABNB_IDLE_MINUTES: 'soon' is not a valid float"):
        Settings.from_env()


def test_an_override_beats_the_environment_and_none_does_not(monkeypatch):
    monkeypatch.setenv("LABNB_TOKEN", "from-env")
    monkeypatch.setenv("LABNB_WORKSHOP", "1")
    s = Settings.from_env(token="given", workshop=None)
    assert s.token == "given" and s.workshop == 1


def test_a_string_setting_keeps_its_text_as_given(monkeypatch):
    monkeypatch.setenv("LABNB_WORKSHOP_LABS", " 01-network-modes,02-netns-veth ")
    assert Settings.from_env().workshop_labs == " 01-network-modes,02-netns-veth "


def test_variables_of_other_programs_are_ignored(monkeypatch):
    monkeypatch.setenv("LABNB_NO_SUCH_SETTING", "x")
    monkeypatch.setenv("CAPACITY", "3")
    assert Settings.from_env() == Settings()
