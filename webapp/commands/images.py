"""``labnb image import|pull|ls``: the machine's image cache (docs/images.md). ``labnb image build``
(busybox) is in cli.py; these are added to its group."""
from __future__ import annotations

import contextlib

import click

from ..config import Settings
from ..errors import LabnbError


@contextlib.contextmanager
def _cache():
    """The cache the settings name: labnb's own (run here for the command if no labnb process runs it), or
    the operator's (LABNB_IMAGE_CACHE)."""
    from ..images.cache import open_cache
    from ..labhost.statedir import prepare_state_dir

    try:
        settings = Settings.from_env()
        prepare_state_dir(settings)
        cache = open_cache(settings)
    except LabnbError as e:
        raise click.ClickException(str(e)) from None
    try:
        yield cache
    except (LabnbError, ValueError) as e:   # a refused name, archive or pull: what to do
        raise click.ClickException(str(e)) from None
    finally:
        cache.close()


@click.command("import")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", default=None, help="Name the archive's one image so (NAME:TAG), not as it was saved.")
def image_import(archive: str, name: str | None) -> None:
    """Add the images of a `docker save` or OCI archive to the machine's cache: every lab host can then
    pull them. An imported image wins over the upstream's of the same name."""
    from ..images import admin

    with _cache() as cache:
        for done in admin.import_archive(cache, archive, name, click.echo):
            click.echo(f"imported {done}")


@click.command("pull")
@click.argument("names", nargs=-1, required=True)
def image_pull(names: tuple[str, ...]) -> None:
    """Fill the machine's cache with images from LABNB_IMAGE_UPSTREAM ahead of class (a lab host's pull
    then needs no upstream)."""
    from ..images import admin

    with _cache() as cache:
        for name in names:
            click.echo(f"pulling {name}")
            click.echo(f"cached {admin.pull(cache, name, click.echo)}")


@click.command("ls")
def image_ls() -> None:
    """The images the machine's cache holds: imported, and cached from the upstream."""
    from ..images import admin

    with _cache() as cache:
        rows = admin.listing(cache)
        if not rows:
            click.echo("the image cache is empty: `labnb image import FILE.tar` or `labnb image pull NAME`")
        for where, repository, tag in rows:
            click.echo(f"{where:9} {repository}:{tag}" if tag else f"{where:9} {repository}")


COMMANDS = [image_import, image_pull, image_ls]
