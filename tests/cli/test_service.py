"""CLI: `jobctl service install|uninstall|status` against a fake systemctl, loginctl and
launchctl first on PATH (shell scripts that record their arguments)."""

from __future__ import annotations

import os
import plistlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobctl import service

UNIT = "jobctl-runner.service"

SYSTEMCTL = """#!/bin/sh
echo "systemctl $*" >> "$FAKE_LOG"
case " $* " in
  *" --user "*) if [ -n "$FAKE_NO_USER_BUS" ]; then
      echo "Failed to connect to bus: No medium found" >&2; exit 1; fi ;;
esac
case " $* " in
  *" is-system-running "*) echo "${FAKE_STATE:-running}"
      [ "${FAKE_STATE:-running}" = running ] || exit 1 ;;
  *" status "*) echo "* jobctl-runner.service - jobctl runner (job scheduler)"
      echo "     Active: active (running)" ;;
  *" $FAKE_FAIL "*) echo "Failed to $FAKE_FAIL unit: Access denied" >&2; exit 1 ;;
esac
exit 0
"""
LOGINCTL = """#!/bin/sh
echo "loginctl $*" >> "$FAKE_LOG"
echo "Linger=${FAKE_LINGER:-no}"
"""
LAUNCHCTL = """#!/bin/sh
echo "launchctl $*" >> "$FAKE_LOG"
case "$1" in list) echo '{ "Label" = "org.jobctl.runner"; "PID" = 4242; };' ;; esac
exit 0
"""


@dataclass
class Fake:
    bin: Path
    log: Path
    config: Path
    home: Path

    def calls(self) -> list[str]:
        """The manager calls recorded since the last look (not the detection probes)."""
        if not self.log.exists():
            return []
        lines = self.log.read_text().splitlines()
        self.log.write_text("")
        return [x for x in lines if "is-system-running" not in x]

    @property
    def user_unit(self) -> Path:
        return self.config / "systemd" / "user" / UNIT


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    for name, text in (("systemctl", SYSTEMCTL), ("loginctl", LOGINCTL), ("launchctl", LAUNCHCTL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    f = Fake(bin_dir, tmp_path / "calls.log", tmp_path / "config", tmp_path / "userhome")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(f.log))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(f.config))
    monkeypatch.setenv("HOME", str(f.home))
    monkeypatch.setenv(service.SYSTEM_DIR_ENV, str(tmp_path / "etc-systemd-system"))
    for name in ("FAKE_NO_USER_BUS", "FAKE_STATE", "FAKE_FAIL", "FAKE_LINGER", "SUDO_USER"):
        monkeypatch.delenv(name, raising=False)
    return f


def me() -> str:
    return service.user_name(os.geteuid(), os.environ)


def test_install_user_unit_then_unchanged_then_updated(cli, fake: Fake, home: Path) -> None:
    r = cli("service", "install", "--user")
    assert r.code == 0, r.err
    assert fake.calls() == [
        "systemctl --user daemon-reload",
        f"systemctl --user enable {UNIT}",
        f"loginctl show-user {me()} -p Linger",
    ]
    text = fake.user_unit.read_text()
    assert f"Environment=JOBCTL_HOME={home}\n" in text
    assert f"Environment=JOBCTL_STORE=sqlite:///{home}/jobctl.db\n" in text
    jobctl = service.jobctl_command()
    assert f"ExecStart={service.systemd_exec([*jobctl, 'runner'])} --wait --workers 4" in text
    assert f"{fake.user_unit}: written" in r.out
    assert f"loginctl enable-linger {me()}" in r.out
    assert f"systemctl --user start {UNIT}" in r.out
    assert oct(fake.user_unit.stat().st_mode & 0o777) == "0o644"

    r = cli("service", "install")  # --user is the default
    assert r.code == 0 and f"{fake.user_unit}: unchanged" in r.out
    assert fake.user_unit.read_text() == text
    assert fake.calls()[:2] == ["systemctl --user daemon-reload", f"systemctl --user enable {UNIT}"]

    r = cli("service", "install", "--workers", "2", "--label", "gpu", "--grace", "1m", "--now")
    assert r.code == 0 and f"{fake.user_unit}: updated" in r.out
    assert fake.calls()[:3] == [
        "systemctl --user daemon-reload",
        f"systemctl --user try-restart {UNIT}",  # a running runner takes the new unit
        f"systemctl --user enable --now {UNIT}",
    ]
    text = fake.user_unit.read_text()
    assert "runner --wait --workers 2 --grace 1m --label gpu\n" in text
    assert "TimeoutStopSec=75\n" in text


def test_linger_on_is_reported(cli, fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_LINGER", "yes")
    r = cli("service", "install", "--now")
    assert r.code == 0 and "linger is on" in r.out and "enable-linger" not in r.out


def test_print_writes_and_calls_nothing(cli, fake: Fake) -> None:
    r = cli("service", "install", "--print", "--workers", "3")
    assert r.code == 0
    assert r.out.startswith("# The jobctl runner as a service.")
    assert "--workers 3" in r.out and "WantedBy=default.target" in r.out
    assert not fake.user_unit.exists() and not fake.log.exists()
    r = cli("service", "install", "--system", "--print")
    assert r.code == 0 and f"User={me()}\n" in r.out and "WantedBy=multi-user.target" in r.out
    assert not fake.log.exists()


def test_print_where_there_is_no_manager_adds_the_alternatives(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    r = cli("service", "install", "--print")
    assert r.code == 0 and "ExecStart=" in r.out
    assert "no service manager: no systemctl on PATH" in r.err and "@reboot" in r.err


def test_install_system_unit(cli, fake: Fake, tmp_path: Path) -> None:
    r = cli("service", "install", "--system", "--now", "--label", "eu")
    assert r.code == 0, r.err
    unit = tmp_path / "etc-systemd-system" / UNIT
    text = unit.read_text()
    assert f"User={me()}\n" in text and "WantedBy=multi-user.target\n" in text
    assert "--label eu" in text
    assert fake.calls() == ["systemctl daemon-reload", f"systemctl enable --now {UNIT}"]
    assert "enable-linger" not in r.out  # a system unit runs from boot


def test_install_through_sudo_runs_as_the_sudo_user(
    cli, fake: Fake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.geteuid() != 0:
        pytest.skip("SUDO_USER counts only for root")
    monkeypatch.setenv("SUDO_USER", "alice")
    r = cli("service", "install", "--system", "--print")
    assert r.code == 0 and "User=alice\n" in r.out


def test_without_a_user_bus_the_unit_is_written_and_the_rest_is_shown(
    cli, fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_NO_USER_BUS", "1")
    r = cli("service", "install", "--now")
    assert r.code == 0, r.err
    assert fake.user_unit.exists()
    assert "No medium found" in r.out
    assert f"systemctl --user daemon-reload && systemctl --user enable --now {UNIT}" in r.out
    assert [c for c in fake.calls() if not c.startswith("loginctl")] == []
    # uninstall: removes the unit and its wants link, says what remains
    wants = fake.user_unit.parent / "default.target.wants"
    wants.mkdir()
    (wants / UNIT).symlink_to(fake.user_unit)
    r = cli("service", "uninstall")
    assert r.code == 0, r.err
    assert not fake.user_unit.exists() and not (wants / UNIT).is_symlink()
    assert f"systemctl --user stop {UNIT} && systemctl --user daemon-reload" in r.out


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("offline", "systemd is not running"),
        ("no-systemctl", "no systemctl on PATH"),
    ],
)
def test_no_manager_writes_nothing_and_prints_the_alternatives(
    cli, fake: Fake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setup: str, reason: str
) -> None:
    if setup == "offline":
        monkeypatch.setenv("FAKE_STATE", "offline")
    else:
        (tmp_path / "empty").mkdir()
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    r = cli("service", "install", "--now")
    assert r.code == 1
    assert r.err.count("\n") == 1 and reason in r.err and "nothing written" in r.err
    assert "@reboot env JOBCTL_HOME=" in r.out and "runner --wait" in r.out
    assert "cron must be running" in r.out and "[program:jobctl]" in r.out
    assert not fake.user_unit.exists()
    assert fake.calls() == []
    r = cli("service", "status")
    assert r.code == 0 and f"service manager: {reason}" in r.out
    assert "runner: not running" in r.out


def test_uninstall(cli, fake: Fake) -> None:
    assert cli("service", "install", "--now").code == 0
    fake.calls()
    r = cli("service", "uninstall", "--user")
    assert r.code == 0, r.err
    assert fake.calls() == [
        f"systemctl --user disable --now {UNIT}",
        "systemctl --user daemon-reload",
    ]
    assert not fake.user_unit.exists()
    assert f"removed {fake.user_unit}" in r.out and "stopped and disabled" in r.out
    r = cli("service", "uninstall")
    assert r.code == 4 and r.err.count("\n") == 1 and str(fake.user_unit) in r.err
    assert fake.calls() == []


def test_status(cli, fake: Fake) -> None:
    assert cli("service", "install").code == 0
    fake.calls()
    r = cli("service", "status")
    assert r.code == 0, r.err
    assert fake.calls() == [f"systemctl --user status {UNIT} --no-pager"]
    assert f"unit: {fake.user_unit}\n" in r.out and "Active: active (running)" in r.out
    assert "runner: not running" in r.out and "queued: 0" in r.out  # `jobctl status`
    cli("service", "uninstall")
    r = cli("service", "status", "--system")
    assert r.code == 0 and "(not installed)" in r.out


def test_a_failing_manager_call_is_one_line(
    cli, fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_FAIL", "enable")
    r = cli("service", "install", "--system")
    assert r.code == 1 and r.err.count("\n") == 1
    assert f"systemctl enable {UNIT} failed: Failed to enable unit: Access denied" in r.err


def test_unwritable_unit_dir_is_one_line(
    cli, fake: Fake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv(service.SYSTEM_DIR_ENV, str(tmp_path / "afile" / "sub"))
    r = cli("service", "install", "--system")
    assert r.code == 1 and r.err.count("\n") == 1 and "cannot write" in r.err


def test_launchd_agent(cli, fake: Fake, home: Path) -> None:
    plist = fake.home / "Library" / "LaunchAgents" / "org.jobctl.runner.plist"
    r = cli("service", "install", "--platform", "darwin")
    assert r.code == 0, r.err
    assert f"{plist}: written" in r.out and "launchctl load -w" in r.out
    assert fake.calls() == []  # loaded at the next login
    data = plistlib.loads(plist.read_bytes())
    assert data["ProgramArguments"][-6:] == ["runner", "--wait", "--workers", "4", "--grace", "30s"]
    assert data["EnvironmentVariables"]["JOBCTL_HOME"] == str(home)
    assert data["StandardOutPath"] == str(home / "runner.log") and home.is_dir()

    r = cli("service", "install", "--platform", "darwin", "--now", "--workers", "2")
    assert r.code == 0 and f"{plist}: updated" in r.out
    assert fake.calls() == [f"launchctl unload {plist}", f"launchctl load -w {plist}"]

    r = cli("service", "status", "--platform", "darwin")
    assert r.code == 0 and '"PID" = 4242' in r.out
    assert fake.calls() == ["launchctl list org.jobctl.runner"]

    r = cli("service", "uninstall", "--platform", "darwin")
    assert r.code == 0 and not plist.exists()
    assert fake.calls() == [f"launchctl unload -w {plist}"]

    r = cli("service", "install", "--platform", "darwin", "--system")
    assert r.code == 2 and "LaunchDaemon" in r.err


def test_bad_usage_is_one_line(cli, fake: Fake) -> None:
    for argv, needle in (
        (["--user", "--system"], "choose one"),
        (["--workers", "0"], "--workers"),
        (["--label", "a b"], "runner label"),
        (["--grace", "soon"], "--grace"),
    ):
        r = cli("service", "install", *argv)
        assert r.code == 2 and r.err.count("\n") == 1 and needle in r.err, (argv, r.err)
    assert fake.calls() == [] and not fake.user_unit.exists()


def test_a_password_in_the_store_url_is_refused(cli, fake: Fake) -> None:
    r = cli("--store", "postgresql://jobs:s3cret@db/jobs", "service", "install", "--print")
    assert r.code == 2 and r.err.count("\n") == 1
    assert "~/.pgpass" in r.err and "PGPASSFILE" in r.err and "s3cret" not in r.err
    assert r.out == ""


def test_pgpassword_is_not_written(cli, fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "s3cret")
    r = cli("--store", "postgresql://jobs@db/jobs", "service", "install", "--print")
    assert r.code == 0 and "s3cret" not in r.out and "PGPASSWORD is not written" in r.err
    assert "After=network-online.target" in r.out


def test_help(cli) -> None:
    r = cli("service", "--help")
    assert r.code == 0
    for verb in ("install", "uninstall", "status"):
        assert verb in r.out
    r = cli("service", "install", "--help")
    assert r.code == 0 and "--now" in r.out and "--print" in r.out and "--platform" not in r.out
    assert cli("service").code == 2
