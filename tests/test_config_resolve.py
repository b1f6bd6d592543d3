"""Settings are resolved once, before any service is built (app.resolve), and a mistake in them is a
ConfigError that names the setting. In process, no lab host."""
from __future__ import annotations

import dataclasses

import pytest

from webapp import create_app
from webapp.app import Resolved, resolve
from webapp.config import Settings
from webapp.errors import ConfigError, LabnbError
from webapp.labhost.base import LabHostError

from web_support import FIXTURE_LABS


def plain(tmp_path, **kw) -> Settings:
    return Settings(state_dir=str(tmp_path), labs_dir=FIXTURE_LABS, backend="plain", **kw)


def test_settings_are_frozen_and_resolved_once(tmp_path):
    settings = plain(tmp_path, workshop=1, capacity=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.token = "x"
    resolved = resolve(settings)
    assert isinstance(resolved, Resolved) and resolve(resolved) is resolved
    assert resolved.token and resolved.operator_token and resolved.access_code
    assert (resolved.pool_size, resolved.max_lab_hosts) == (3, 5)
    given = resolve(dataclasses.replace(settings, pool_size=1), frozenset({"pool_size"}))
    assert given.pool_size == 1


def test_config_mistakes_name_the_setting(tmp_path):
    with pytest.raises(ConfigError, match="LABNB_OPERATOR_TOKEN"):
        resolve(plain(tmp_path, token="same", operator_token="same"))
    with pytest.raises(ConfigError, match="LABNB_MAX_LAB_HOSTS.*Raise LABNB_MAX_LAB_HOSTS"):
        resolve(plain(tmp_path, workshop=1, capacity=4, max_lab_hosts=2), frozenset({"max_lab_hosts", "capacity"}))
    with pytest.raises(ConfigError, match="LABNB_WORKSHOP_LABS.*Choose among"):
        create_app(plain(tmp_path, workshop=1, workshop_labs="no-such-lab"))


def test_errors_share_one_base():
    assert issubclass(ConfigError, LabnbError) and issubclass(LabHostError, LabnbError)
    assert str(ConfigError("LABNB_X", "it is wrong", "Fix it")) == "LABNB_X: it is wrong. Fix it"


def test_the_open_server_is_built_whole(tmp_path):
    app = create_app(plain(tmp_path))
    services = app.extensions["labnb"]
    assert services.workshop is None and all(
        getattr(services, name) is not None
        for name in ("store", "learners", "guard", "run_starts", "runs", "shells", "events", "gateway"))
    services.close()


def test_an_app_built_in_code_keeps_the_sizes_it_was_built_with(tmp_path):
    """Without ``given``, the settings that differ from their defaults are the chosen ones: a workshop
    built with a pool of 0 and 3 lab hosts keeps them (only what was left to its default is sized)."""
    resolved = resolve(plain(tmp_path, workshop=1, capacity=3, pool_size=0, max_lab_hosts=3))
    assert (resolved.pool_size, resolved.max_lab_hosts) == (0, 3)
    assert resolve(plain(tmp_path, workshop=1, capacity=3)).pool_size == 3
