"""The ``labnb`` command."""
from __future__ import annotations

import json
import sys
import time

import click

from .config import Settings


def _settings(**overrides) -> Settings:
    try:
        return Settings.from_env(**overrides)
    except ValueError as e:
        raise click.UsageError(str(e)) from None


@click.group()
def main() -> None:
    """labnb: a web lab notebook server for Docker networking labs."""


@main.command()
@click.option("--start", is_flag=True, help="Also make one lab host, time it and remove it.")
def doctor(start: bool) -> None:
    """Check that this machine can make lab hosts; say what to do about each problem."""
    from . import doctor as doc

    settings = _settings()
    findings = doc.run_all(settings)
    for f in findings:
        click.echo(f"{'ok  ' if f.ok else 'FAIL'} {f.name}: {f.detail}")
        if not f.ok and f.todo:
            click.echo(f"     -> {f.todo}")
    failed = [f for f in findings if not f.ok]
    if start and not failed:
        from .labhost import pool
        from .labhost.base import LabHostError
        from .labhost.sandbox import prepare_state_dir

        t0 = time.monotonic()
        try:
            prepare_state_dir(settings)
            host = pool.create(settings)
        except LabHostError as e:
            click.echo(f"FAIL lab host: {e}")
            sys.exit(1)
        click.echo(f"ok   lab host: {host.id} ready in {time.monotonic() - t0:.2f} s")
        host.destroy()
    sys.exit(1 if failed else 0)


@main.group()
def image() -> None:
    """The busybox image that every lab host has loaded."""


@image.command("build")
@click.option("--force", is_flag=True, help="Rebuild even if the archive exists.")
def image_build(force: bool) -> None:
    """Build the busybox image archive offline from Debian's busybox-static."""
    from .labhost import image as img
    from .labhost.sandbox import image_archive, prepare_state_dir

    settings = _settings()
    prepare_state_dir(settings)
    path = image_archive(settings)
    if not force and img.image_id(path):
        click.echo(f"{path}: up to date ({img.image_id(path)[:12]})")
        return
    try:
        image_id = img.build(path)
    except (OSError, FileNotFoundError) as e:
        raise click.ClickException(f"cannot build the busybox image: {e}; install busybox-static") from None
    click.echo(f"{path}: built {image_id[:12]}")


@main.group("lab-hosts")
def lab_hosts() -> None:
    """List and remove sandbox lab hosts (for operators)."""


@lab_hosts.command("ls")
@click.option("--json", "as_json", is_flag=True)
def lab_hosts_ls(as_json: bool) -> None:
    """Every sandbox lab host on this machine."""
    from .labhost import reaper

    found = reaper.list_all(_settings())
    if as_json:
        click.echo(json.dumps(found, indent=1))
        return
    click.echo(f"{'ID':<14} {'SLOT':>4} {'PID':>8} {'STATE':<8} {'OWNER':<14} CREATED")
    for m in found:
        owner = f"{m.get('owner')} ({'running' if m['owner_alive'] else 'gone'})" if m.get("owner") else "-"
        created = time.strftime("%H:%M:%S", time.localtime(m["created"])) if m.get("created") else "-"
        click.echo(f"{m['id']:<14} {m.get('slot') if m.get('slot') is not None else '-':>4} "
                   f"{m.get('pid') or '-':>8} {'running' if m['alive'] else 'dead':<8} {owner:<14} {created}")


@lab_hosts.command("rm")
@click.argument("ids", nargs=-1, required=True)
def lab_hosts_rm(ids: tuple[str, ...]) -> None:
    """Remove the named lab hosts, even if a server still uses them."""
    from .labhost import reaper

    settings = _settings()
    known = {m["id"]: m for m in reaper.list_all(settings)}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise click.ClickException(f"no lab host {', '.join(unknown)}; see `labnb lab-hosts ls`")
    for i in ids:
        reaper.remove(settings, known[i])
        click.echo(f"removed {i}")


@lab_hosts.command("gc")
@click.option("--all", "everything", is_flag=True, help="Remove every lab host, not only orphans.")
def lab_hosts_gc(everything: bool) -> None:
    """Remove lab hosts whose server is gone (a crash), and half-made ones."""
    from .labhost import reaper

    removed = reaper.gc(_settings(), everything=everything)
    click.echo(f"removed {len(removed)} lab host(s)" + (": " + ", ".join(removed) if removed else ""))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8888, show_default=True, type=int)
@click.option("--pool-size", type=int, default=None, help="Lab hosts kept ready (LABNB_POOL_SIZE).")
@click.option("--backend", type=click.Choice(["sandbox", "plain"]), default=None, help="LABNB_BACKEND.")
def serve(host: str, port: int, pool_size: int | None, backend: str | None) -> None:
    """Start the server and print the URL to open."""
    from .server import serve as run_server

    run_server(_settings(pool_size=pool_size, backend=backend), host, port)


if __name__ == "__main__":
    main()
