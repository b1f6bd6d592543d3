"""What sandbox lab hosts need in the state dir before the first one is made: its layout
(statedir.py), the busybox image archive (image.py) and the docker data dir seeded with it
(sandbox.build_seed). `labnb image build` makes them; `labnb serve` makes what is missing before it
takes learners, or refuses to start, so that no learner meets an operator's to-do.
"""
from __future__ import annotations

import subprocess
from typing import Callable

from . import image
from .base import LabHostError
from .sandbox import build_seed
from .statedir import image_archive, prepare_state_dir, seed_archive
from ..config import Settings


def image_ready(settings: Settings, force: bool = False) -> str | None:
    """Build the image archive unless it is there (or ``force``): what was done, None if nothing."""
    path = image_archive(settings)
    if image.image_id(path) and not force:
        return None
    try:
        return f"{path}: built {image.build(path)[:12]}"
    except (OSError, subprocess.CalledProcessError) as e:
        raise LabHostError(f"cannot build the busybox image archive {path} (state dir {settings.state_dir}): {e}",
                           f"Install busybox-static ({image.BUSYBOX}), then run `labnb image build`") from None


def seed_ready(settings: Settings, force: bool = False) -> str | None:
    """Make the seeded image store unless it is there (or ``force``): what was done, None if nothing.
    It is made in a lab host: one that cannot be made is a LabHostError."""
    if seed_archive(settings) and not force:
        return None
    try:
        return f"{build_seed(settings)}: seeded image store for fast lab host starts"
    except (LabHostError, OSError) as e:
        raise LabHostError(f"cannot make a lab host to seed the image store in {settings.state_dir}: {e}",
                           "`labnb doctor --start` tells what the machine lacks") from None


def provide(settings: Settings, say: Callable[[str], None]) -> None:
    """Everything lab hosts need in the state dir, each part made if it is missing; ``say`` hears what was
    made. Raises LabHostError naming the state dir when a part cannot be made."""
    prepare_state_dir(settings)
    for made in (image_ready(settings), seed_ready(settings)):
        if made:
            say(made)
