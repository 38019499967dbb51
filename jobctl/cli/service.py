"""`jobctl service install|uninstall|status`: the runner as a systemd or launchd service.

Parsing and printing only; jobctl.service generates the units and talks to the manager.
"""

import os
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from jobctl.service import Kind, Scope

service_app = typer.Typer(
    name="service",
    help="Run the runner as a service of systemd (Linux) or launchd (macOS).",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

UserOpt = Annotated[
    bool, typer.Option("--user", help="A service of your user (the default): runs as you.")
]
SystemOpt = Annotated[
    bool,
    typer.Option(
        "--system", help="A system service (needs root): starts at boot, runs as you (User=)."
    ),
]
PlatformOpt = Annotated[
    str | None,
    typer.Option("--platform", hidden=True, help="Tests: write for this platform (linux, darwin)."),
]


def _scope(user: bool, system: bool) -> "Scope":
    from jobctl.errors import UsageError

    if user and system:
        raise UsageError("--user and --system: choose one")
    return "system" if system else "user"


def _kind(platform: str | None, scope: "Scope") -> "Kind":
    from jobctl import service

    kind = service.platform_kind(platform)
    service.check_scope(kind, scope)
    return kind


def _explicit_store(ctx: typer.Context) -> bool:
    """Whether the home or the store was named (global flag or environment)."""
    flags = ctx.find_root().params
    names = ("JOBCTL_HOME", "JOBCTL_STORE", "XDG_DATA_HOME")
    return bool(flags.get("home") or flags.get("store") or any(os.environ.get(n) for n in names))


@service_app.command()
def install(
    ctx: typer.Context,
    user: UserOpt = False,
    system: SystemOpt = False,
    workers: Annotated[
        str, typer.Option("--workers", metavar="N", help="The runner's --workers.")
    ] = "4",
    label: Annotated[
        list[str] | None,
        typer.Option("--label", metavar="L", help="The runner's labels (repeatable)."),
    ] = None,
    grace: Annotated[
        str,
        typer.Option(
            "--grace",
            metavar="D",
            help="The runner's --grace; the manager waits 15s more before killing it.",
        ),
    ] = "30s",
    now: Annotated[
        bool, typer.Option("--now", help="Start it now, not only at boot/login.")
    ] = False,
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the unit; write nothing, call nothing.")
    ] = False,
    platform: PlatformOpt = None,
) -> None:
    """Write the runner's unit (this jobctl, this store) and enable it."""
    from jobctl import render, service
    from jobctl.cli.common import state

    scope = _scope(user, system)
    kind = _kind(platform, scope)
    svc = service.build_service(
        state().settings,
        workers=workers,
        labels=label or [],
        grace=grace,
        scope=scope,
        explicit_store=_explicit_store(ctx),
    )
    for note in service.notes(svc, os.environ):
        render.note(note)
    if print_only:
        typer.echo(service.render_unit(svc, kind, scope).decode(), nl=False)
        missing = service.missing_manager(kind)
        if missing:
            render.note(
                f"note: no service manager: {missing}; `jobctl service install` would write "
                "nothing.\n" + service.alternatives(svc)
            )
        return
    manager = service.detect(kind, scope)
    service.install(svc, manager, scope, service.unit_path(kind, scope), now=now, echo=typer.echo)


@service_app.command()
def uninstall(
    user: UserOpt = False, system: SystemOpt = False, platform: PlatformOpt = None
) -> None:
    """Stop and disable the runner's service and remove its unit."""
    from jobctl import service

    scope = _scope(user, system)
    kind = _kind(platform, scope)
    manager = service.detect(kind, scope)
    service.uninstall(manager, scope, service.unit_path(kind, scope), echo=typer.echo)


@service_app.command()
def status(user: UserOpt = False, system: SystemOpt = False, platform: PlatformOpt = None) -> None:
    """The service manager's view of the runner's service, then `jobctl status`."""
    from jobctl import service
    from jobctl.cli.runner import status as jobctl_status

    scope = _scope(user, system)
    kind = _kind(platform, scope)
    manager = service.detect(kind, scope)
    service.status_report(manager, scope, service.unit_path(kind, scope), echo=typer.echo)
    typer.echo("")
    jobctl_status(json=False)


def register(app: typer.Typer) -> None:
    app.add_typer(service_app, name="service")
