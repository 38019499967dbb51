"""`jobctl service`: the units it generates (pure functions), checked by hand, by
`systemd-analyze verify`, and by systemd's own parser (`systemd --test` dumps a parsed unit)."""

from __future__ import annotations

import os
import plistlib
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobctl import service
from jobctl.config import Settings
from jobctl.errors import UsageError

SPECIAL = "/tmp/a b%c$d\\e\"f'g"  # blanks, a specifier, a variable, a backslash, quotes


def make(
    home: str = "/srv/jobs",
    store: str | None = None,
    executable: str | None = None,
    **kwargs: object,
) -> service.Service:
    settings = Settings(Path(home), store or f"sqlite:///{home}/jobctl.db")
    env = kwargs.pop("environ", {})
    return service.build_service(settings, environ=env, cwd="/work", executable=executable,
                                 **kwargs)  # type: ignore[arg-type]  # fmt: skip


@pytest.fixture
def exe(tmp_path: Path) -> str:
    """An interpreter path with a `jobctl` console script beside it."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    script = bin_dir / "jobctl"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    return str(bin_dir / "python")


def lines(text: str, key: str) -> list[str]:
    return [x.split("=", 1)[1] for x in text.splitlines() if x.startswith(f"{key}=")]


def test_user_unit(exe: str) -> None:
    unit = service.systemd_unit(make(executable=exe), "user")
    jobctl = str(Path(exe).parent / "jobctl")
    assert lines(unit, "ExecStart") == [f"{jobctl} runner --wait --workers 4 --grace 30s"]
    assert lines(unit, "Environment") == [
        "JOBCTL_HOME=/srv/jobs",
        "JOBCTL_STORE=sqlite:////srv/jobs/jobctl.db",
    ]
    assert lines(unit, "Restart") == ["on-failure"]
    assert lines(unit, "KillMode") == ["mixed"]  # SIGTERM to the runner only: it has a grace
    assert lines(unit, "TimeoutStopSec") == ["45"]
    assert lines(unit, "WantedBy") == ["default.target"]
    assert lines(unit, "User") == [] and lines(unit, "After") == []


def test_system_unit_runs_as_the_sudo_user(exe: str) -> None:
    svc = make(executable=exe, scope="system", environ={"SUDO_USER": "alice"}, euid=0)
    unit = service.systemd_unit(svc, "system")
    assert lines(unit, "User") == ["alice"]
    assert lines(unit, "WantedBy") == ["multi-user.target"]
    # not through sudo: the caller
    svc = make(executable=exe, scope="system", environ={}, euid=os.geteuid())
    assert svc.user == service.user_name(os.geteuid(), {})


def test_system_unit_through_sudo_serves_the_sudo_users_default_store() -> None:
    import pwd

    try:
        other = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' here")
    svc = make(scope="system", environ={"SUDO_USER": "nobody"}, euid=0, explicit_store=False)
    home = os.path.join(other.pw_dir, ".local", "share", "jobctl")
    assert svc.user == "nobody" and svc.environment["JOBCTL_HOME"] == home
    # a home or store named explicitly is kept
    svc = make(scope="system", environ={"SUDO_USER": "nobody"}, euid=0, explicit_store=True)
    assert svc.environment["JOBCTL_HOME"] == "/srv/jobs"


@pytest.mark.parametrize("grace", ["0", "30s", "1m", "2.5", "1h"])
def test_the_manager_waits_longer_than_the_grace(grace: str) -> None:
    svc = make(grace=grace)
    stop = int(lines(service.systemd_unit(svc, "user"), "TimeoutStopSec")[0])
    assert stop >= svc.grace_s + 15 and stop - svc.grace_s < 16
    assert f"--grace {svc.grace}" in lines(service.systemd_unit(svc, "user"), "ExecStart")[0]


def test_options_are_passed_to_the_runner_and_validated() -> None:
    svc = make(workers="8", labels=["gpu", "eu"], grace="90")
    assert svc.runner_argv()[-10:] == [
        "runner", "--wait", "--workers", "8", "--grace", "1m30s", "--label", "gpu", "--label", "eu"
    ]  # fmt: skip
    for bad in ({"workers": "0"}, {"labels": ["no spaces"]}, {"grace": "soon"}):
        with pytest.raises(UsageError):
            make(**bad)


def test_postgres_store_waits_for_the_network() -> None:
    svc = make(store="postgresql://jobs@db.example/jobs")
    user, system = service.systemd_unit(svc, "user"), service.systemd_unit(svc, "system")
    assert lines(system, "Wants") == ["network-online.target"]
    assert lines(system, "After") == ["network-online.target"]
    assert lines(user, "After") == ["network-online.target"]
    assert lines(user, "Wants") == []  # a user manager has no network-online.target


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://jobs:secret@db/jobs",
        "postgres://jobs:s%40cret@db:5432/jobs?sslmode=require",
        "postgresql://db/jobs?user=jobs&password=secret",
    ],
)
def test_a_password_in_the_store_url_is_refused(url: str) -> None:
    with pytest.raises(UsageError, match=r"pgpass") as err:
        make(store=url)
    assert "secret" not in str(err.value) and "\n" not in str(err.value)


def test_store_without_password_and_pgpassfile_pass_through() -> None:
    svc = make(
        store="postgresql://jobs:@db/jobs",
        environ={"PGPASSFILE": "secrets/pgpass", "JOBCTL_HOST": "box-1"},
    )
    assert svc.environment == {
        "JOBCTL_HOME": "/srv/jobs",
        "JOBCTL_STORE": "postgresql://jobs:@db/jobs",
        "JOBCTL_HOST": "box-1",
        "PGPASSFILE": "/work/secrets/pgpass",
    }


def test_relative_home_and_store_become_absolute() -> None:
    svc = make(home="rel/home", store="data/jobs.db")
    assert svc.environment["JOBCTL_HOME"] == "/work/rel/home"
    assert svc.environment["JOBCTL_STORE"] == "sqlite:////work/data/jobs.db"
    svc = make(home="/h", store="sqlite:///rel.db")
    assert svc.environment["JOBCTL_STORE"] == "sqlite:////work/rel.db"


def test_control_characters_are_refused() -> None:
    with pytest.raises(UsageError, match="control character"):
        make(home="/srv/a\nb")


@pytest.mark.parametrize(
    ("arg", "word"),
    [
        ("runner", "runner"),
        ("/a b/jobctl", '"/a b/jobctl"'),
        ("50%", "50%%"),
        ("$HOME", "$$HOME"),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("it's", '"it\'s"'),
        ("", '""'),
    ],
)
def test_exec_start_words(arg: str, word: str) -> None:
    assert service.systemd_word(arg) == word


def test_exec_start_executable() -> None:
    # '$' is literal in the executable's path; '%' is still a specifier
    assert service.systemd_exec(["/o p/%x$y/jobctl", "runner"]) == '"/o p/%%x$y/jobctl" runner'
    # systemd refuses quotes and backslashes there: the path goes through env
    assert service.systemd_exec(['/a"b/jobctl', "x"]) == '/usr/bin/env "/a\\"b/jobctl" x'


@pytest.mark.parametrize(
    ("value", "assignment"),
    [
        ("/srv/jobs", "K=/srv/jobs"),
        ("/a b", '"K=/a b"'),
        ("100%", "K=100%%"),
        ("$x", "K=$x"),  # no variables in Environment=
        ('q"\\', '"K=q\\"\\\\"'),
        ("it's", '"K=it\'s"'),
    ],
)
def test_environment_assignments(value: str, assignment: str) -> None:
    assert service.systemd_env("K", value) == assignment


def test_launchd_plist_parses_back(exe: str) -> None:
    svc = make(home=SPECIAL, executable=exe, labels=["mac"])
    data = plistlib.loads(service.launchd_plist(svc))
    assert data["Label"] == "org.jobctl.runner"
    assert data["ProgramArguments"] == [
        str(Path(exe).parent / "jobctl"), "runner", "--wait", "--workers", "4",
        "--grace", "30s", "--label", "mac",
    ]  # fmt: skip
    assert data["EnvironmentVariables"] == {
        "JOBCTL_HOME": SPECIAL,
        "JOBCTL_STORE": f"sqlite:///{SPECIAL}/jobctl.db",
    }
    assert data["RunAtLoad"] is True and data["KeepAlive"] == {"SuccessfulExit": False}
    assert data["ExitTimeOut"] == 45
    assert data["StandardOutPath"] == data["StandardErrorPath"] == f"{SPECIAL}/runner.log"


def test_jobctl_command(tmp_path: Path, exe: str) -> None:
    assert service.jobctl_command(exe) == [str(Path(exe).parent / "jobctl")]
    bare = tmp_path / "bare" / "python3"
    assert service.jobctl_command(str(bare)) == [str(bare), "-m", "jobctl"]


def test_unit_paths() -> None:
    env = {"HOME": "/home/u"}
    assert service.unit_path("systemd", "user", env) == Path(
        "/home/u/.config/systemd/user/jobctl-runner.service"
    )
    assert service.unit_path("systemd", "user", {**env, "XDG_CONFIG_HOME": "/cfg"}) == Path(
        "/cfg/systemd/user/jobctl-runner.service"
    )
    relative = service.unit_path("systemd", "user", {**env, "XDG_CONFIG_HOME": "cfg"})
    assert relative.parent == Path("/home/u/.config/systemd/user")  # XDG: absolute only
    assert service.unit_path("systemd", "system", env) == Path(
        "/etc/systemd/system/jobctl-runner.service"
    )
    assert service.unit_path("systemd", "system", {service.SYSTEM_DIR_ENV: "/t"}) == Path(
        "/t/jobctl-runner.service"
    )
    assert service.unit_path("launchd", "user", env) == Path(
        "/home/u/Library/LaunchAgents/org.jobctl.runner.plist"
    )
    assert service.platform_kind("darwin") == "launchd"
    assert service.platform_kind("linux") == "systemd"
    with pytest.raises(UsageError):
        service.check_scope("launchd", "system")


def test_alternatives_quote_for_cron_and_supervisord() -> None:
    svc = make(home="/srv/50% off")
    text = service.alternatives(svc)
    cron = next(x.strip() for x in text.splitlines() if x.strip().startswith("@reboot"))
    assert "%" not in cron.replace("\\%", "")  # cron: an unescaped % ends the command
    argv = shlex.split(cron.removeprefix("@reboot ").replace("\\%", "%"))
    assert argv[:3] == [
        "env",
        "JOBCTL_HOME=/srv/50% off",
        "JOBCTL_STORE=sqlite:////srv/50% off/jobctl.db",
    ]
    assert argv[3:-3] == svc.runner_argv() and argv[-3:] == [
        ">>",
        "/srv/50% off/runner.log",
        "2>&1",
    ]
    command = next(x.strip() for x in text.splitlines() if x.strip().startswith("command="))
    assert shlex.split(command.removeprefix("command=").replace("%%", "%"))[3:] == svc.runner_argv()
    assert "stopwaitsecs=45" in text


def test_detect() -> None:
    def which(found: set[str]):  # type: ignore[no-untyped-def]
        return lambda name: f"/bin/{name}" if name in found else None

    def run(answers: dict[str, tuple[str, str]]):  # type: ignore[no-untyped-def]
        def call(argv):  # type: ignore[no-untyped-def]
            out, err = answers["--user" if "--user" in argv else "system"]
            return subprocess.CompletedProcess(argv, 0 if out == "running" else 1, out, err)

        return call

    up = {"system": ("running\n", ""), "--user": ("degraded\n", "")}
    assert service.detect("systemd", "user", which(set()), run(up)).state == "absent"
    assert service.detect("systemd", "user", which({"systemctl"}), run(up)).state == "ok"
    offline = {"system": ("offline\n", ""), "--user": ("offline\n", "")}
    m = service.detect("systemd", "system", which({"systemctl"}), run(offline))
    assert m.state == "absent" and "not running" in m.reason
    no_bus = {"system": ("running\n", ""), "--user": ("", "Failed to connect to bus: No medium")}
    m = service.detect("systemd", "user", which({"systemctl"}), run(no_bus))
    assert m.state == "unreachable" and "No medium" in m.reason
    assert service.detect("systemd", "system", which({"systemctl"}), run(no_bus)).state == "ok"
    assert service.detect("launchd", "user", which({"launchctl"}), run(up)).state == "ok"
    assert service.detect("launchd", "user", which(set()), run(up)).state == "absent"


# --- systemd's own tools ------------------------------------------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A temp dir that other users can read (systemd --test runs as nobody when we are root)."""
    d = Path(tempfile.mkdtemp(prefix="jobctl-svc-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def verify(unit: str, directory: Path, scope: service.Scope) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("no systemd-analyze here")
    path = directory / service.UNIT_NAME
    path.write_text(unit)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(directory)}  # --user needs one
    argv = [tool, *(["--user"] if scope == "user" else []), "verify", str(path)]
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    if "Failed to initialize manager" in r.stderr or "Failed to connect" in r.stderr:
        pytest.skip(f"systemd-analyze verify cannot run here: {r.stderr.strip()}")
    return r


@pytest.mark.parametrize("scope", ["user", "system"])
@pytest.mark.parametrize("store", ["sqlite", "postgresql://jobs@db/jobs"])
def test_systemd_analyze_verify(shared_dir: Path, scope: service.Scope, store: str) -> None:
    """The units as this jobctl writes them (its real path: verify checks the executable)."""
    svc = make(home=str(shared_dir / "home"), store=None if store == "sqlite" else store,
               scope=scope, labels=["x"], environ={})  # fmt: skip
    r = verify(service.systemd_unit(svc, scope), shared_dir, scope)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_systemd_analyze_verify_quoted_executable(shared_dir: Path) -> None:
    """A jobctl in a folder with blanks, '%' and '$' (verify finds the file it names), and
    one with quotes and a backslash (run through env)."""
    for folder in ("a b%c$d", "q\"x'y\\z"):
        bin_dir = shared_dir / folder
        bin_dir.mkdir()
        (bin_dir / "jobctl").symlink_to(service.jobctl_command()[0])
        svc = make(home=SPECIAL, executable=str(bin_dir / "python"), scope="system", environ={})
        r = verify(service.systemd_unit(svc, "system"), shared_dir, "system")
        assert r.returncode == 0 and r.stderr == "", r.stderr


def systemd_parse(unit: str, directory: Path) -> tuple[list[str], list[str]]:
    """(the ExecStart words, the Environment assignments) as systemd parses `unit`: the
    manager's test mode dumps its units (it must not run as root: then as nobody)."""
    binary = next((b for b in ("/lib/systemd/systemd", "/usr/lib/systemd/systemd")
                   if os.access(b, os.X_OK)), None)  # fmt: skip
    if binary is None:
        pytest.skip("no systemd binary here")
    (directory / service.UNIT_NAME).write_text(unit)
    directory.chmod(0o755)
    argv = ["env", f"SYSTEMD_UNIT_PATH={directory}:", binary, "--test", "--system",
            f"--unit={service.UNIT_NAME}", "--no-pager"]  # fmt: skip
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("systemd --test refuses root, and there is no runuser")
        argv = ["runuser", "-u", "nobody", "--", *argv]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    start = r.stdout.find(f"-> Unit {service.UNIT_NAME}:")
    if start < 0:
        pytest.skip(f"systemd --test dumped no unit here: {r.stderr.strip()[:200]}")
    block = r.stdout[start : r.stdout.find("-> Unit ", start + 8)]
    env = re.findall(r"^\s*Environment: (.*)$", block, re.M)
    command = re.search(r"^\s*Command Line: (.*)$", block, re.M)
    assert command is not None, block
    words = [
        re.sub(r"\\(.)", r"\1", quoted) if quoted is not None and bare == "" else bare
        for quoted, bare in re.findall(r'"((?:[^"\\]|\\.)*)"|(\S+)', command.group(1))
    ]
    return words, env


def test_systemd_parses_back_what_was_meant(shared_dir: Path) -> None:
    """Blanks, '%', '$', quotes and a backslash in the home, the store and jobctl's path."""
    for folder in ("o p%q$r", "s\"t'u\\v"):
        exe = str(shared_dir / folder / "python")
        svc = make(home=SPECIAL, store=f"postgresql://%2Fvar%2Frun/jobs?application_name={folder}",
                   executable=exe, scope="system", environ={"JOBCTL_HOST": "h$1 %n"})  # fmt: skip
        words, env = systemd_parse(service.systemd_unit(svc, "system"), shared_dir)
        assert env == [f"{k}={v}" for k, v in svc.environment.items()]
        argv = svc.runner_argv()
        if words[0] == "/usr/bin/env":  # the path is an argument then: '$$' is expanded at exec
            words = words[1:]
            argv = [argv[0].replace("$", "$$"), *argv[1:]]
        assert words == argv
