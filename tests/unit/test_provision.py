"""What lab hosts need in a state dir is made when it is missing (webapp/labhost/provision.py; issue 29,
item 1): `labnb serve` on a fresh state dir makes it before it takes learners, or refuses to start naming
the state dir. The seeded image store is made in a lab host: here a stand-in writes it; and the state
dir is laid out under the test's /tmp, which lab hosts would hide (statedir.py refuses it)."""
from __future__ import annotations

import os

import pytest

from webapp.config import Settings
from webapp.labhost import provision
from webapp.labhost.base import LabHostError
from webapp.labhost import image
from webapp.labhost.statedir import image_archive, seed_archive, seed_path


@pytest.fixture
def state(tmp_path, monkeypatch):
    """A fresh state dir, and seeds written without a lab host."""
    settings = Settings(state_dir=str(tmp_path / "state"))
    monkeypatch.setattr(provision, "prepare_state_dir", lambda s: os.makedirs(os.path.dirname(image_archive(s)),
                                                                                   exist_ok=True))

    def seed(s):
        path = seed_path(s, image.image_id(image_archive(s)))
        open(path, "wb").close()
        return path
    monkeypatch.setattr(provision, "build_seed", seed)
    return settings


def test_a_fresh_state_dir_gets_its_image_and_seed_once(state):
    made = []
    provision.provide(state, made.append)
    assert [m.split(": ")[1].split()[0] for m in made] == ["built", "seeded"], made
    assert image.image_id(image_archive(state)) and seed_archive(state)
    again = []
    provision.provide(state, again.append)
    assert again == []


def test_an_image_that_cannot_be_built_names_the_state_dir_and_what_to_do(state, monkeypatch):
    def missing(path):
        raise FileNotFoundError(2, "No such file or directory", image.BUSYBOX)
    monkeypatch.setattr(image, "build", missing)
    with pytest.raises(LabHostError, match=rf"cannot build the busybox image archive .* \(state dir "
                                           rf"{state.state_dir}\).*Install busybox-static"):
        provision.provide(state, print)
