"""The ``labnb`` command."""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

import click

from ..config import Settings
from ..errors import ConfigError, LabnbError
from ..labhost import backends, subids


def _settings(**overrides) -> Settings:
    try:
        return Settings.from_env(**overrides)
    except ConfigError as e:
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
        click.echo(f"{'FAIL' if not f.ok else 'WARN' if f.warn else 'ok  '} {f.name}: {f.detail}")
        if (not f.ok or f.warn) and f.todo:
            click.echo(f"     -> {f.todo}")
    failed = [f for f in findings if not f.ok]
    if start and not failed:
        from ..labhost import pool
        from ..labhost.base import LabHostError
        from ..labhost.statedir import prepare_state_dir

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
    """The busybox image that every lab host has loaded, and the machine's image cache for labs that name
    other images (docs/images.md)."""


@image.command("build")
@click.option("--force", is_flag=True, help="Rebuild even if the archive exists.")
def image_build(force: bool) -> None:
    """Build the busybox image archive offline from Debian's busybox-static, and a
    lab host data dir seeded with it."""
    from ..labhost import image as img, provision
    from ..labhost.base import LabHostError
    from ..labhost.statedir import image_archive, prepare_state_dir

    settings = _settings()
    prepare_state_dir(settings)
    try:
        built = provision.image_ready(settings, force)
    except LabHostError as e:
        raise click.ClickException(str(e)) from None
    path = image_archive(settings)
    click.echo(built or f"{path}: up to date ({img.image_id(path)[:12]})")
    try:
        seeded = provision.seed_ready(settings, force)
    except LabHostError as e:
        click.echo(f"warning: no seeded image store ({e}); lab hosts will load the image as they start, "
                   "which is slower.", err=True)
    else:
        if seeded:
            click.echo(seeded)


@main.group("lab-hosts")
def lab_hosts() -> None:
    """List and remove sandbox lab hosts (for operators)."""


@lab_hosts.command("ls")
@click.option("--json", "as_json", is_flag=True)
def lab_hosts_ls(as_json: bool) -> None:
    """Every sandbox lab host on this machine."""
    from ..labhost import reaper

    found = reaper.list_all(_settings())
    if as_json:
        click.echo(json.dumps(found, indent=1))
        return
    click.echo(f"{'ID':<20} {'SLOT':>4} {'PID':>8} {'STATE':<8} {'OWNER':<14} CREATED")
    for m in found:
        owner = f"{m.get('owner')} ({'running' if m['owner_alive'] else 'gone'})" if m.get("owner") else "-"
        created = time.strftime("%H:%M:%S", time.localtime(m["created"])) if m.get("created") else "-"
        click.echo(f"{m['id']:<20} {m.get('slot') if m.get('slot') is not None else '-':>4} "
                   f"{m.get('pid') or '-':>8} {'running' if m['alive'] else 'dead':<8} {owner:<14} {created}")


@lab_hosts.command("rm")
@click.argument("ids", nargs=-1, required=True)
def lab_hosts_rm(ids: tuple[str, ...]) -> None:
    """Remove the named lab hosts, even if a server still uses them."""
    from ..labhost import reaper

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
    from ..labhost import reaper

    removed = reaper.gc(_settings(), everything=everything)
    click.echo(f"removed {len(removed)} lab host(s)" + (": " + ", ".join(removed) if removed else ""))


@lab_hosts.command("ranges")
@click.option("--write", is_flag=True, help="Make the files give root that many (scripts/setup.sh does).")
@click.option("--count", is_flag=True, help="Print the number only.")
@click.option("--file", "files", multiple=True, default=subids.FILES, show_default=True,
              help="The subordinate id files.")
def lab_hosts_ranges(write: bool, count: bool, files: tuple[str, ...]) -> None:
    """How many lab hosts' uid ranges this machine should reserve (the memory rule: lab hosts of 64 MiB
    beside LABNB_SERVER_MEMORY_MB), and whether root's entry in /etc/subuid and /etc/subgid gives them:
    grown or added with --write, never shrunk, never over another entry."""
    from ..guard.limits import SMALLEST_MB, mem_total_mb, uid_ranges_wanted

    settings = _settings()
    total = mem_total_mb()
    want = uid_ranges_wanted(settings, total)
    if count:
        click.echo(want)
        return
    click.echo(f"{want} uid ranges of {subids.RANGE} ids from LABNB_UID_BASE={settings.uid_base}: as many lab hosts "
               f"of {min(settings.memory_mb, SMALLEST_MB)} MiB as fit this machine's {total} MiB beside "
               f"LABNB_SERVER_MEMORY_MB={settings.server_memory_mb} (at least {subids.RANGES})")
    short = False
    for path in files:
        try:
            done = subids.allot(path, settings.uid_base, want, write)
        except OSError as e:
            raise click.ClickException(f"{path}: {e.strerror or e}: run this as root") from None
        if not done.changed:
            said = f"root's entry {done.after} gives {done.ranges} ranges: kept" if done.after else "no entry of root's"
        else:
            said = (f"{'' if write else 'would be '}{'grown' if done.before else 'added'}: {done.after} "
                    f"({done.ranges} ranges)" + (f", was {done.before}" if done.before else ""))
        click.echo(f"{path}: {said}")
        for note in done.notes:
            click.echo(f"warning: {note}", err=True)
        short |= done.ranges == 0
    if short:
        raise click.ClickException("root can have no uid range from LABNB_UID_BASE: lab hosts cannot be made; "
                                   "see the warnings above")


def _lab_files(paths: tuple[str, ...]) -> list[Path]:
    """The lab files named, a directory standing for all its ``*.md``."""
    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted(p.glob("*.md")) if p.is_dir() else [p]
    return files


@main.command()
@click.argument("labs", nargs=-1, required=True)
def check(labs: tuple[str, ...]) -> None:
    """Check lab files (a directory: all its *.md); print every problem as file:line: message."""
    from ..lab import check_lab

    files = _lab_files(labs)
    if not files:
        raise click.UsageError(f"no *.md lab files in {', '.join(labs)}")
    bad = 0
    for path in files:
        problems = check_lab(path)
        for problem in problems:
            click.echo(str(problem))
        if problems:
            bad += 1
        else:
            click.echo(f"{path}: OK")
    if bad:
        click.echo(f"{bad} of {len(files)} lab(s) have problems", err=True)
        sys.exit(1)


@main.command()
@click.argument("lab_file", metavar="LAB", type=click.Path(dir_okay=False))
@click.option("--step", "step_no", type=click.IntRange(min=1), help="Run only this step (1-based), after setup.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, writable=True),
              help="Write every command's output, exit code, status and duration, every check's verdict "
                   "and the lab host's network picture after each step here.")
@click.option("--junit", "junit_file", type=click.Path(dir_okay=False, writable=True),
              help="Write JUnit XML here, one testcase per step.")
@click.option("--backend", type=click.Choice(backends.names()), default="sandbox", show_default=True,
              help="plain runs the commands on this machine itself.")
@click.option("--stop-endless-after", "endless_for", type=click.FloatRange(min=0, min_open=True), default=3.0,
              show_default=True, help="Seconds an endless command without stop_after runs before it is stopped.")
def run(lab_file: str, step_no: int | None, json_file: str | None, junit_file: str | None,
        backend: str, endless_for: float) -> None:
    """Run a lab headless in a fresh lab host: setup, its steps, cleanup.

    Exits 1 if a step fails, 2 if the lab has problems, 3 if no lab host can
    be made, 130 if interrupted (the lab host is removed in every case)."""
    import signal

    from ..images import service as image_service
    from ..images.ensure import ensure as ensure_images
    from ..learners import runner
    from ..lab import LabError, load_lab, requires
    from ..labhost.base import LabHostError
    from ..labhost.hostset import HostSet, names_of
    from ..labhost.statedir import prepare_state_dir

    try:
        lab = load_lab(lab_file)
    except LabError as e:
        click.echo(f"{e}\n{lab_file} has problems; fix them (`labnb check {lab_file}` lists them)", err=True)
        sys.exit(2)
    steps = None
    if step_no is not None:
        if step_no > len(lab.steps):
            raise click.BadParameter(f"the lab has {len(lab.steps)} steps", param_hint="--step")
        steps = [lab.steps[step_no - 1]]
        click.echo(f"running only step {step_no} of {len(lab.steps)} (after setup); the steps before it "
                   "do not run, so what it builds on may be missing")
    settings = _settings(backend=backend)
    chosen = backends.get(settings.backend)
    if not chosen.isolated:
        click.secho(f"WARNING: --backend {chosen.name} runs the lab's commands on THIS machine, as "
                    f"{os.environ.get('USER', 'this user')}, with nothing isolated and nothing undone but the "
                    "lab's cleanup. Use it only on a disposable VM.", fg="red", bold=True, err=True)

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    hosts, images, code = HostSet(), None, 130
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    try:
        try:
            if chosen.recorded:
                prepare_state_dir(settings)
            images = image_service.for_labs(settings, [lab])   # the cache and forwarder, if the lab names images
            hosts = _host_set(settings, names_of(lab), images.prepare if images else None)
            host = hosts.host()
        except LabnbError as e:
            click.echo(f"cannot make a lab host: {e}", err=True)
            sys.exit(3)
        on = ", ".join(f"{name}: {id_}" for name, id_ in hosts.ids().items()) if lab.hosts else host.id
        click.echo(f"{lab.path}: {lab.title}, on {host.backend} lab host{'s' if len(hosts) > 1 else ''} {on}")
        try:
            for _, member in hosts.members():
                ensure_images(member, lab.images)
        except LabHostError as e:
            click.echo(f"cannot give lab host {member.id} the lab's images: {e}", err=True)
            sys.exit(3)
        try:
            missing = requires.lacking(host, lab.requires)
        except LabHostError as e:
            click.echo(f"cannot find out what lab host {host.id} offers: {e}", err=True)
            sys.exit(3)
        if missing:
            click.echo(requires.refusal(lab.path, missing, host), err=True)
            sys.exit(3)
        printer = runner.Printer()
        result = runner.run_lab(lab, host, steps=steps, endless_for=endless_for, on_event=printer,
                                network=bool(json_file), hosts=dict(hosts.members()))
        printer.summary(result)
        if json_file:
            runner.write_json(result, json_file)
        if junit_file:
            runner.write_junit(result, junit_file)
        code = 0 if result.passed else 1
    except KeyboardInterrupt:
        click.echo("\ninterrupted: the run was stopped; removing the lab host", err=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)    # a second ^C must not cut the teardown short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _dispose(hosts)
        if images is not None:
            images.close()
    sys.exit(code)


def _host_set(settings: Settings, names: list[str], prepare=None) -> "HostSet":
    """A headless run's lab hosts, one per name the lab gives (each given to ``prepare``, the images'
    forwarder, as the pool does), on a lab network of their own when several; every one made is destroyed
    if the next cannot be."""
    from ..labhost import pool
    from ..labhost.hostset import HostSet

    members, network = [], None
    try:
        for name in names:
            members.append((name, pool.create(settings, prepare)))
        if len(members) > 1:
            network = backends.get(settings.backend).new_network(settings)
            network.wire(members)
        return HostSet(members, network)
    except BaseException:
        _dispose(HostSet(members, network))
        raise


def _dispose(hosts: "HostSet") -> None:
    """Remove a headless run's lab network, then its lab hosts (each, whatever the others do)."""
    if hosts.network is not None:
        hosts.network.destroy()
    for _, host in hosts.members():
        host.destroy()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8888, show_default=True, type=int)
@click.option("--pool-size", type=int, default=None, help="Lab hosts kept ready (LABNB_POOL_SIZE).")
@click.option("--backend", type=click.Choice(backends.names()), default=None, help="LABNB_BACKEND.")
@click.option("--workshop", is_flag=True, default=None,
              help="Run a workshop: learners join with an access code and a name (LABNB_WORKSHOP=1).")
@click.option("--capacity", type=click.IntRange(min=1), default=None,
              help="Learners in the workshop at once; more wait in a queue (LABNB_CAPACITY; "
                   "default 30, or as many as the machine's memory fits).")
@click.option("--access-code", default=None, help="What learners type to join (LABNB_ACCESS_CODE; default: random).")
@click.option("--lab", "labs", multiple=True, help="A lab of the workshop, by id; repeat for more (default: all).")
@click.option("--node", default=None, help="Join a cluster as this node (LABNB_NODE; docs/cluster.md).")
def serve(host: str, port: int, pool_size: int | None, backend: str | None, workshop: bool | None,
          capacity: int | None, access_code: str | None, labs: tuple[str, ...], node: str | None) -> None:
    """Start the server and print the URL to open (with --workshop: the instructor's and the join URL).

    The server runs in a memory cgroup of its own, limited to LABNB_SERVER_MEMORY_MB."""
    from ..lab import LabError
    from ..labhost import cgroups, records
    from .server import serve as run_server

    try:
        settings = _settings(pool_size=pool_size, backend=backend, workshop=1 if workshop else None,
                             capacity=capacity, access_code=access_code, workshop_labs=",".join(labs) or None,
                             node=node)
        if (capacity or access_code or labs) and not settings.workshop:
            raise click.UsageError("--capacity, --access-code and --lab are a workshop's: add --workshop")
        with contextlib.ExitStack() as stack:
            try:
                if os.geteuid() != 0:
                    raise cgroups.CgroupError("making its cgroup needs root")
                name = f"server-{records.id_prefix(settings.state_dir, settings.node).rstrip('-')}"
                stack.enter_context(cgroups.server_memory(name, settings.server_memory_mb << 20))
            except (cgroups.CgroupError, OSError) as e:
                why = f"the server has no memory limit of its own (LABNB_SERVER_MEMORY_MB): {e}"
                if backends.get(settings.backend).isolated:
                    raise click.ClickException(f"{why}. Run `labnb doctor` to see what the machine lacks") from None
                click.echo(f"warning: {why}", err=True)   # the plain backend, on a learner's own VM
            run_server(settings, host, port, frozenset(name for name, value in
                                                       (("pool_size", pool_size), ("capacity", capacity))
                                                       if value is not None))
    except LabError as e:
        raise click.ClickException(f"the labs in {_settings().labs_dir} have problems:\n{e}") from None
    except LabnbError as e:   # a setting (ConfigError) or the machine (LabHostError): what to do
        raise click.ClickException(str(e)) from None


@main.group()
def service() -> None:
    """labnb as a systemd service (Delegate=yes, restarts on failure, logs in the journal)."""


@service.command("install")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8888, show_default=True, type=int)
def service_install(host: str, port: int) -> None:
    """Install, enable and start labnb.service; print the learners' URL."""
    from . import service as svc

    try:
        token = svc.install(host, port)
    except (RuntimeError, OSError) as e:
        raise click.ClickException(str(e)) from None
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    click.echo(f"labnb.service is running ({svc.UNIT_PATH}, settings in {svc.ENV_PATH}).\n"
               f"Learners open: http://{shown}:{port}/?token={token}\n"
               f"The operator's URL is in its log: journalctl -u labnb.service | grep -A2 operator")


@service.command("remove")
def service_remove() -> None:
    """Stop, disable and remove labnb.service (its settings file and state dir stay)."""
    from . import service as svc

    try:
        svc.remove()
    except (RuntimeError, OSError) as e:
        raise click.ClickException(str(e)) from None
    click.echo("labnb.service removed")


from .cluster import cluster   # noqa: E402  (the `labnb cluster` group, in a module of its own)
from .images import COMMANDS as IMAGE_COMMANDS   # noqa: E402  (`labnb image import|pull|ls`)

main.add_command(cluster)
for _command in IMAGE_COMMANDS:
    image.add_command(_command)

if __name__ == "__main__":
    main()
