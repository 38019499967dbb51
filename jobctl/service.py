"""The runner as a service (`jobctl service`): the unit for the platform's service manager, where
it goes, whether the manager can be reached, and what to do where there is none.

The unit generators (`systemd_unit`, `launchd_plist`, `alternatives`) are pure; `detect` asks
the manager (`systemctl is-system-running`); `install`, `uninstall` and `status_report` write
the unit and call the manager through a `Run` function (tests pass fakes, or a fake
`systemctl` first on PATH). Nothing here imports typer: jobctl.cli.service parses and prints.

Quoting follows systemd.service(5) and systemd.syntax(7), checked against systemd's own parser
(`systemd --test` dumps the parsed unit, see tests/unit/test_service_units.py): in ExecStart=
and Environment= a '%' is a specifier and is written '%%'; in ExecStart='s arguments '$' starts
a variable and is written '$$' (the executable's path takes '$' as it is); a word with blanks,
quotes or backslashes is double-quoted with '\\' and '"' escaped. systemd refuses quotes and
backslashes in the executable's path itself: such a path is run through /usr/bin/env.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from jobctl.config import Settings, is_postgres, resolve_settings, sqlite_path
from jobctl.errors import JobctlError, NotFoundError, UsageError

UNIT_NAME = "jobctl-runner.service"
LAUNCHD_LABEL = "org.jobctl.runner"
#: test hook: the directory of system units instead of /etc/systemd/system
SYSTEM_DIR_ENV = "JOBCTL_SYSTEMD_SYSTEM_DIR"
SYSTEM_DIR = "/etc/systemd/system"
#: the manager waits this much longer than the runner's --grace before it kills the runner
STOP_MARGIN_S = 15
DEFAULT_GRACE = "30s"  # the runner's own default
LOG_NAME = "runner.log"  # launchd, cron: the runner's output, in the home folder

Scope = Literal["user", "system"]
Kind = Literal["systemd", "launchd"]
Outcome = Literal["written", "updated", "unchanged"]
Run = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]
Echo = Callable[[str], None]


def platform_kind(platform: str | None = None) -> Kind:
    """The service manager jobctl writes units for on `platform` (sys.platform by default):
    launchd on macOS, systemd elsewhere (where there is no systemctl, `detect` says so)."""
    return "launchd" if (sys.platform if platform is None else platform) == "darwin" else "systemd"


def jobctl_command(executable: str | None = None) -> list[str]:
    """How to run this jobctl from a unit: the `jobctl` console script beside the interpreter
    (a venv's bin/), else `python -m jobctl`. The interpreter's path is made absolute but not
    resolved: a venv's python is a symlink, and resolving it would leave the venv."""
    exe = os.path.abspath(executable or sys.executable)
    script = os.path.join(os.path.dirname(exe), "jobctl")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [script]
    return [exe, "-m", "jobctl"]


def has_password(url: str) -> bool:
    """Whether a PostgreSQL URL carries a password (in its user part or as ?password=)."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    try:
        password = parts.password
    except ValueError:
        password = None
    return bool(password) or "password" in parse_qs(parts.query)


def absolute_store_url(url: str, cwd: str) -> str:
    """The store URL with a relative SQLite path made absolute (a service's working directory
    is not the caller's); PostgreSQL URLs as they are."""
    if is_postgres(url):
        return url
    return f"sqlite:///{os.path.join(cwd, sqlite_path(url))}"


def service_user(environ: Mapping[str, str], euid: int | None = None) -> str:
    """Whom a system unit runs as: the user who ran `sudo`, else the caller."""
    uid = os.geteuid() if euid is None else euid
    sudo_user = environ.get("SUDO_USER", "")
    if uid == 0 and sudo_user and sudo_user != "root":
        return sudo_user
    return user_name(uid, environ)


def user_name(uid: int, environ: Mapping[str, str]) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid without a passwd entry (containers): systemd takes the number
        return environ.get("USER") or str(uid)


def default_settings_for(user: str) -> Settings | None:
    """The default home and store of `user` (through sudo, ours are root's), or None when the
    user has no passwd entry."""
    import pwd

    try:
        home_dir = pwd.getpwnam(user).pw_dir
    except KeyError:
        return None
    return resolve_settings(environ={"XDG_DATA_HOME": os.path.join(home_dir, ".local", "share")})


def service_environment(settings: Settings, environ: Mapping[str, str], cwd: str) -> dict[str, str]:
    """The environment the unit passes to the runner: the home and the store, absolute (and
    JOBCTL_HOST, PGPASSFILE when set). A store URL with a password is refused: unit files are
    readable by every user."""
    url = settings.store_url
    postgres = is_postgres(url)
    if postgres and has_password(url):
        raise UsageError(
            "the store URL has a password, which a unit file would show to every user: take it "
            "out of the URL and put it in ~/.pgpass (or in a file named by PGPASSFILE)"
        )
    env = {
        "JOBCTL_HOME": os.path.join(cwd, settings.home),
        "JOBCTL_STORE": absolute_store_url(url, cwd),
    }
    if environ.get("JOBCTL_HOST"):
        env["JOBCTL_HOST"] = environ["JOBCTL_HOST"]
    if postgres and environ.get("PGPASSFILE"):
        env["PGPASSFILE"] = os.path.join(cwd, os.path.expanduser(environ["PGPASSFILE"]))
    return env


@dataclass(frozen=True)
class Service:
    """What the unit runs: `<command> runner --wait --workers N --grace D [--label L]...` with
    `environment`; `user` is a system unit's User=."""

    command: tuple[str, ...]
    environment: dict[str, str]
    workers: int = 4
    labels: tuple[str, ...] = ()
    grace: str = DEFAULT_GRACE
    grace_s: float = 30.0
    user: str | None = None
    postgres: bool = False

    def runner_argv(self) -> list[str]:
        argv = [*self.command, "runner", "--wait", "--workers", str(self.workers)]
        argv += ["--grace", self.grace]
        for label in self.labels:
            argv += ["--label", label]
        return argv

    @property
    def stop_timeout_s(self) -> int:
        """How long the manager lets the runner stop: its --grace and a margin for the end."""
        return math.ceil(self.grace_s) + STOP_MARGIN_S

    @property
    def log_path(self) -> str:
        return os.path.join(self.environment["JOBCTL_HOME"], LOG_NAME)


def build_service(
    settings: Settings,
    *,
    workers: str = "4",
    labels: Sequence[str] = (),
    grace: str = DEFAULT_GRACE,
    scope: Scope = "user",
    explicit_store: bool = True,
    environ: Mapping[str, str] | None = None,
    cwd: str | None = None,
    executable: str | None = None,
    euid: int | None = None,
) -> Service:
    """Validate the options (as `jobctl runner` would) and resolve what the unit runs.
    `explicit_store`: the home or store was named (flag or environment); when not, a system
    unit installed through sudo serves the sudo user's default store, not root's."""
    from jobctl.jobdef import option_duration, parse_int
    from jobctl.models import check_name
    from jobctl.schedule import format_duration

    env = os.environ if environ is None else environ
    n = parse_int(workers, "--workers", minimum=1, maximum=1024)
    checked = tuple(check_name(x, "runner label") for x in labels)
    grace_s = option_duration(grace, "--grace")
    user = service_user(env, euid) if scope == "system" else None
    uid = os.geteuid() if euid is None else euid
    if user is not None and not explicit_store and user != user_name(uid, env):
        settings = default_settings_for(user) or settings
    service = Service(
        command=tuple(jobctl_command(executable)),
        environment=service_environment(settings, env, cwd or os.getcwd()),
        workers=n,
        labels=checked,
        grace=format_duration(grace_s),
        grace_s=grace_s,
        user=user,
        postgres=is_postgres(settings.store_url),
    )
    check_writable(service)
    return service


def notes(service: Service, environ: Mapping[str, str]) -> list[str]:
    """What the service will not have that this shell has (said at install)."""
    if service.postgres and environ.get("PGPASSWORD"):
        return [
            "note: PGPASSWORD is not written to the unit (every user can read it): the service "
            "needs the password in ~/.pgpass (or a file named by PGPASSFILE)"
        ]
    return []


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_writable(service: Service) -> None:
    """A unit line cannot hold a line break (nor a plist most control characters)."""
    values = [*service.runner_argv(), *service.environment.values(), service.user or ""]
    for value in values:
        if _CONTROL.search(value):
            raise UsageError(f"{value!r}: a control character cannot be written in a unit")


# --- systemd ---------------------------------------------------------------------------

_SAFE_WORD = re.compile(r"[\w@%+=:,./$-]+", re.ASCII)
#: characters systemd refuses in the executable's path, however quoted
_BAD_IN_EXECUTABLE = frozenset("\"'\\")


def systemd_word(arg: str, executable: bool = False) -> str:
    """One word of ExecStart=: '%' doubled; in arguments '$' doubled too; quoted if needed."""
    text = arg.replace("%", "%%")
    if not executable:
        text = text.replace("$", "$$")
    if _SAFE_WORD.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_exec(argv: Sequence[str]) -> str:
    """The value of ExecStart= that runs `argv` exactly."""
    first, *rest = argv
    if _BAD_IN_EXECUTABLE & set(first):
        first, rest = "/usr/bin/env", [first, *rest]
    return " ".join([systemd_word(first, executable=True), *(systemd_word(a) for a in rest)])


def systemd_env(key: str, value: str) -> str:
    """One assignment of Environment=: '%' doubled ('$' is literal there); quoted if needed."""
    text = f"{key}={value}".replace("%", "%%")
    if _SAFE_WORD.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_unit(service: Service, scope: Scope) -> str:
    """The text of jobctl-runner.service for a user or system manager."""
    lines = [
        "# The jobctl runner as a service. Written by `jobctl service install`; run that again",
        "# to change it, and `jobctl service uninstall` to remove it.",
        "[Unit]",
        "Description=jobctl runner (job scheduler)",
    ]
    if service.postgres:  # the store is across the network
        if scope == "system":  # (a user manager has no network-online.target to pull in)
            lines.append("Wants=network-online.target")
        lines.append("After=network-online.target")
    lines += ["", "[Service]", "Type=simple"]
    if scope == "system" and service.user:
        lines.append(f"User={service.user.replace('%', '%%')}")
    lines += [f"Environment={systemd_env(k, v)}" for k, v in service.environment.items()]
    lines += [
        f"ExecStart={systemd_exec(service.runner_argv())}",
        "Restart=on-failure",
        "RestartSec=5s",
        "# exit 2 is bad usage or configuration: restarting would not mend it",
        "RestartPreventExitStatus=2",
        "# SIGTERM to the runner alone: it lets running jobs finish for --grace, then ends them",
        "KillMode=mixed",
        f"TimeoutStopSec={service.stop_timeout_s}",
        "",
        "[Install]",
        f"WantedBy={'default.target' if scope == 'user' else 'multi-user.target'}",
    ]
    return "\n".join(lines) + "\n"


# --- launchd ---------------------------------------------------------------------------


def launchd_plist(service: Service) -> bytes:
    """The launchd agent ~/Library/LaunchAgents/org.jobctl.runner.plist."""
    import plistlib

    return plistlib.dumps(
        {
            "Label": LAUNCHD_LABEL,
            "ProgramArguments": service.runner_argv(),
            "EnvironmentVariables": dict(service.environment),
            "RunAtLoad": True,
            "KeepAlive": {"SuccessfulExit": False},  # restarted when it fails, as on systemd
            "ExitTimeOut": service.stop_timeout_s,
            "StandardOutPath": service.log_path,
            "StandardErrorPath": service.log_path,
        }
    )


def render_unit(service: Service, kind: Kind, scope: Scope) -> bytes:
    if kind == "launchd":
        return launchd_plist(service)
    return systemd_unit(service, scope).encode()


def unit_path(kind: Kind, scope: Scope, environ: Mapping[str, str] | None = None) -> Path:
    """Where the unit goes: ~/.config/systemd/user ($XDG_CONFIG_HOME), /etc/systemd/system
    (or $JOBCTL_SYSTEMD_SYSTEM_DIR, a test hook), ~/Library/LaunchAgents."""
    from jobctl.config import expand_user

    env = os.environ if environ is None else environ
    home = Path(env["HOME"]) if env.get("HOME") else expand_user("~", "home folder")
    if kind == "launchd":
        return home / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
    if scope == "system":
        return Path(env.get(SYSTEM_DIR_ENV) or SYSTEM_DIR) / UNIT_NAME
    config = env.get("XDG_CONFIG_HOME", "")
    base = Path(config) if os.path.isabs(config) else home / ".config"  # XDG: absolute only
    return base / "systemd" / "user" / UNIT_NAME


def check_scope(kind: Kind, scope: Scope) -> None:
    if kind == "launchd" and scope == "system":
        raise UsageError(
            "--system: on macOS the runner is installed as a launchd agent of your user "
            "(--user); a LaunchDaemon is not supported"
        )


def missing_manager(kind: Kind, which: Callable[[str], str | None] = shutil.which) -> str | None:
    """Why there is no manager here, found without calling it (for --print, which touches
    nothing): no systemctl or launchctl, or systemd not booted (no /run/systemd/system)."""
    if kind == "launchd":
        return None if which("launchctl") else "no launchctl on PATH"
    if not which("systemctl"):
        return "no systemctl on PATH"
    if not os.path.isdir("/run/systemd/system"):
        return "systemd is not running (not PID 1: a container?)"
    return None


# --- where there is no manager -----------------------------------------------------------


def alternatives(service: Service) -> str:
    """How to start the runner without a service manager: a cron @reboot line, a supervisord
    program, the plain command line."""
    env = [f"{k}={v}" for k, v in service.environment.items()]
    command = shlex.join(["env", *env, *service.runner_argv()])
    log = shlex.quote(service.log_path)
    cron = f"@reboot {command} >> {log} 2>&1".replace("%", "\\%")  # cron: % is a line break
    return "\n".join(
        [
            "Start the runner another way:",
            "- with cron (cron must be running): `crontab -e` and add",
            f"    {cron}",
            "- under a supervisor, e.g. supervisord:",
            "    [program:jobctl]",
            f"    command={command.replace('%', '%%')}",
            f"    stopwaitsecs={service.stop_timeout_s}",
            "    autorestart=unexpected",
            f"- or run this command from your own supervisor or entrypoint (on stop, send it "
            f"SIGTERM and allow {service.stop_timeout_s}s):",
            f"    {command}",
        ]
    )


# --- the manager -------------------------------------------------------------------------


def run_command(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run a manager's command, its output captured; one that cannot start exits 127."""
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=120)
    except OSError as exc:
        return subprocess.CompletedProcess(list(argv), 127, "", exc.strerror or str(exc))
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(list(argv), 124, "", "timed out after 120s")


@dataclass(frozen=True)
class Manager:
    """The service manager as found: `state` is "ok" (calls work), "unreachable" (it runs,
    but not for us here: no user bus) or "absent" (none: write nothing)."""

    kind: Kind
    state: Literal["ok", "unreachable", "absent"]
    tool: str | None = None
    reason: str = ""


def _last_line(text: str) -> str:
    lines = [x.strip() for x in text.strip().splitlines() if x.strip()]
    return lines[-1] if lines else ""


def detect(
    kind: Kind,
    scope: Scope,
    which: Callable[[str], str | None] = shutil.which,
    run: Run = run_command,
) -> Manager:
    """Find the manager. systemd: `systemctl is-system-running` says "offline" (or nothing)
    where systemd is not PID 1 (a container); `systemctl --user is-system-running` the same
    where there is no user bus (su, sudo, ssh without a session manager)."""
    if kind == "launchd":
        tool = which("launchctl")
        if tool is None:
            return Manager(kind, "absent", reason="no launchctl on PATH")
        return Manager(kind, "ok", tool)
    tool = which("systemctl")
    if tool is None:
        return Manager(kind, "absent", reason="no systemctl on PATH")
    running = run([tool, "is-system-running"]).stdout.strip()
    if running in ("", "offline"):
        return Manager(kind, "absent", tool, "systemd is not running (not PID 1: a container?)")
    if scope == "user":
        r = run([tool, "--user", "is-system-running"])
        if r.stdout.strip() in ("", "offline"):
            why = _last_line(r.stderr) or "no user bus"
            return Manager(
                kind, "unreachable", tool, f"your user's systemd cannot be reached ({why})"
            )
    return Manager(kind, "ok", tool)


def write_unit(path: Path, content: bytes, scope: Scope) -> Outcome:
    """Write the unit (mode 0644, atomically); say whether it was new, changed or the same."""
    try:
        old: bytes | None = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        old = None
    except OSError as exc:
        raise JobctlError(f"cannot read {path}: {exc.strerror}") from None
    if old == content:
        return "unchanged"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), "wb") as f:
            os.fchmod(f.fileno(), 0o644)  # whatever the umask: the manager reads it
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        root = scope == "system" and isinstance(exc, PermissionError)
        hint = " (a system unit needs root: run it with sudo)" if root else ""
        raise JobctlError(f"cannot write {path}: {exc.strerror}{hint}") from None
    return "written" if old is None else "updated"


def _systemctl(scope: Scope, *args: str, tool: str = "systemctl") -> list[str]:
    return [tool, *(["--user"] if scope == "user" else []), *args]


def _shown(commands: Sequence[Sequence[str]]) -> str:
    """Commands as the user would type them (the bare `systemctl`), joined with &&."""
    return " && ".join(shlex.join([os.path.basename(c[0]), *c[1:]]) for c in commands)


def _call(run: Run, argv: Sequence[str], after: str = "") -> None:
    r = run(argv)
    if r.returncode != 0:
        why = _last_line(r.stderr) or _last_line(r.stdout) or f"exit status {r.returncode}"
        raise JobctlError(f"{_shown([argv])} failed: {why}{after}")


def install(
    service: Service,
    manager: Manager,
    scope: Scope,
    path: Path,
    *,
    now: bool,
    echo: Echo,
    run: Run = run_command,
    which: Callable[[str], str | None] = shutil.which,
) -> Outcome:
    """Write the unit and enable it (with `now`, start it). Without a manager nothing is
    written: the alternatives are echoed and JobctlError (exit 1) raised."""
    if manager.state == "absent":
        echo(alternatives(service))
        raise JobctlError(
            f"no service manager: {manager.reason}; nothing written (the alternatives are above)"
        )
    content = render_unit(service, manager.kind, scope)
    if manager.kind == "launchd":
        from jobctl.config import ensure_home

        ensure_home(Path(service.environment["JOBCTL_HOME"]))  # launchd opens the log there
    outcome = write_unit(path, content, scope)
    echo(f"{path}: {outcome}")
    if manager.kind == "launchd":
        _install_launchd(manager, path, outcome, now, echo, run)
        return outcome
    tool = manager.tool or "systemctl"
    commands = [_systemctl(scope, "daemon-reload", tool=tool)]
    if now and outcome == "updated":  # a running runner takes the new unit
        commands.append(_systemctl(scope, "try-restart", UNIT_NAME, tool=tool))
    commands.append(_systemctl(scope, "enable", *(["--now"] if now else []), UNIT_NAME, tool=tool))
    if manager.state == "unreachable":
        echo(f"{manager.reason}: to finish, run this in a login session of yours:")
        echo(f"    {_shown(commands)}")
    else:
        for argv in commands:
            _call(run, argv, f" (the unit is written: {path})")
        flag = " --user" if scope == "user" else ""
        if now:
            echo(f"enabled and started {UNIT_NAME}; logs: journalctl{flag} -u {UNIT_NAME}")
        else:
            echo(f"enabled {UNIT_NAME}; start it now with: systemctl{flag} start {UNIT_NAME}")
            if outcome == "updated":
                restart = f"systemctl{flag} restart {UNIT_NAME}"
                echo(f"a runner already running keeps the old unit until: {restart}")
    if scope == "user":
        echo(linger_advice(which, run))
    return outcome


def _install_launchd(
    manager: Manager, path: Path, outcome: Outcome, now: bool, echo: Echo, run: Run
) -> None:
    tool = manager.tool or "launchctl"
    if not now:
        load = shlex.join(["launchctl", "load", "-w", str(path)])
        echo(f"it starts at your next login; to start it now: {load}")
        return
    if outcome != "written":  # a loaded agent reads its plist again only when reloaded
        run([tool, "unload", str(path)])
    _call(run, [tool, "load", "-w", str(path)], f" (the agent is written: {path})")
    echo(f"loaded and started {LAUNCHD_LABEL}; its output: {_plist_log(path)}")


def _plist_log(path: Path) -> str:
    import plistlib

    try:
        return str(plistlib.loads(path.read_bytes()).get("StandardOutPath", "?"))
    except Exception:
        return "?"


def linger_advice(which: Callable[[str], str | None] = shutil.which, run: Run = run_command) -> str:
    """A user unit runs while its user is logged in, unless lingering is on."""
    user = user_name(os.geteuid(), os.environ)
    loginctl = which("loginctl")
    if loginctl is not None:
        r = run([loginctl, "show-user", user, "-p", "Linger"])
        if r.returncode == 0 and r.stdout.strip() == "Linger=yes":
            return "linger is on: it runs from boot, logged in or not"
    return (
        "it runs while you are logged in; to run it from boot, logged in or not: "
        f"loginctl enable-linger {shlex.quote(user)}"
    )


def uninstall(
    manager: Manager, scope: Scope, path: Path, *, echo: Echo, run: Run = run_command
) -> None:
    """Stop, disable and remove the unit; NotFoundError (exit 4) when there is none."""
    if not path.exists():
        raise NotFoundError(f"no jobctl service is installed: {path} does not exist")
    if manager.kind == "launchd":
        if manager.tool is not None:
            run([manager.tool, "unload", "-w", str(path)])  # fails if not loaded: fine
        _remove(path)
        echo(f"unloaded {LAUNCHD_LABEL} and removed {path}")
        return
    tool = manager.tool or "systemctl"
    if manager.state == "ok":
        _call(run, _systemctl(scope, "disable", "--now", UNIT_NAME, tool=tool))
        echo(f"stopped and disabled {UNIT_NAME}")
    _remove(path)
    if manager.state != "ok":  # what `disable` would have removed
        for wants in path.parent.glob("*.wants"):
            if (wants / UNIT_NAME).is_symlink():  # dangling now: glob would not see it
                _remove(wants / UNIT_NAME)
    echo(f"removed {path}")
    if manager.state == "ok":
        _call(run, _systemctl(scope, "daemon-reload", tool=tool))
    elif manager.state == "unreachable":
        commands = [
            _systemctl(scope, "stop", UNIT_NAME, tool=tool),
            _systemctl(scope, "daemon-reload", tool=tool),
        ]
        echo(f"{manager.reason}: if a runner runs as the service, in a login session run:")
        echo(f"    {_shown(commands)}")


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise JobctlError(f"cannot remove {path}: {exc.strerror}") from None


def status_report(
    manager: Manager, scope: Scope, path: Path, *, echo: Echo, run: Run = run_command
) -> None:
    """The unit file and the manager's view of the service."""
    echo(f"unit: {path}" + ("" if path.exists() else " (not installed)"))
    if manager.state != "ok" or manager.tool is None:
        echo(f"service manager: {manager.reason}")
        return
    if manager.kind == "launchd":
        r = run([manager.tool, "list", LAUNCHD_LABEL])
    else:
        r = run(_systemctl(scope, "status", UNIT_NAME, "--no-pager", tool=manager.tool))
    for text in (r.stdout, r.stderr):
        if text.strip():
            echo(text.rstrip("\n"))
