"""Where state lives (SPEC 2): the home folder and the store URL.

Resolution order: flag, then environment, then the XDG default. Creating the home folder
(mode 0700) is the only write here; nothing is written outside it.
"""

from __future__ import annotations

import os
from pathlib import Path

from jobctl.errors import StoreError, UsageError
from jobctl.records import record


@record(frozen=True)
class Settings:
    home: Path
    store_url: str


def expand_user(text: str, what: str) -> Path:
    """Path(text) with a leading '~' or '~user' expanded; UsageError naming `what` and the
    value when it cannot be (no such user, no home folder)."""
    try:
        return Path(text).expanduser()
    except RuntimeError:  # pathlib: 'Could not determine home directory.'
        raise UsageError(
            f"invalid {what} {text!r}: cannot expand '~' (no such user or no home folder)"
        ) from None


def resolve_home(flag: str | None = None, environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if flag:
        return expand_user(flag, "--home")
    if env.get("JOBCTL_HOME"):
        return expand_user(env["JOBCTL_HOME"], "JOBCTL_HOME")
    data = env.get("XDG_DATA_HOME") or str(expand_user("~/.local/share", "home folder"))
    return Path(data) / "jobctl"


def resolve_settings(
    home: str | None = None, store: str | None = None, environ: dict[str, str] | None = None
) -> Settings:
    env = os.environ if environ is None else environ
    for flag, value, what in (("--home", home, "a path"), ("--store", store, "a path or URL")):
        if value is not None and not value.strip():  # given, but empty: not "the default"
            raise UsageError(f"invalid {flag} {value!r}: give {what} (or leave the flag out)")
    home_path = resolve_home(home, env)
    url = store or env.get("JOBCTL_STORE") or f"sqlite:///{home_path / 'jobctl.db'}"
    return Settings(home=home_path, store_url=url)


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(url: str) -> bool:
    """Whether the store URL names a PostgreSQL database (`postgresql://` or `postgres://`)."""
    return url.lower().startswith(POSTGRES_SCHEMES)


def sqlite_path(url: str) -> Path:
    """The database path of a `sqlite:///PATH` URL or a plain path."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :])
    if url.startswith("sqlite://"):
        raise UsageError(f"invalid store URL {url!r}: use sqlite:///ABSOLUTE/PATH or a plain path")
    if "://" in url:
        scheme = url.split("://", 1)[0]
        raise UsageError(f"unsupported store {scheme!r} in {url!r}: use sqlite or postgresql")
    return expand_user(url, "store path")


def ensure_home(home: Path) -> Path:
    """Create the home folder with mode 0700 (and tighten it if we created it looser); its
    missing parents are made 0700 too, whatever the umask. Existing folders are left alone."""
    try:
        existed = home.is_dir()
        missing = []
        for parent in home.parents:
            if parent.exists():
                break
            missing.append(parent)
        for parent in reversed(missing):
            try:
                parent.mkdir(mode=0o700)
            except FileExistsError:  # made meanwhile (another jobctl): not ours to change
                continue
            os.chmod(parent, 0o700)
        home.mkdir(mode=0o700, exist_ok=True)
        if not existed:
            os.chmod(home, 0o700)
    except OSError as exc:
        raise StoreError(f"cannot create home folder {str(home)!r}: {exc.strerror}") from exc
    return home


def config_file(environ: dict[str, str] | None = None) -> Path:
    """The settings file: $XDG_CONFIG_HOME/jobctl/config.toml (default ~/.config)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(expand_user("~/.config", "config folder"))
    return Path(base) / "jobctl" / "config.toml"


def notify_defaults(environ: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """The `[notify]` defaults of the settings file (EVENT = "TARGET" or a list of them),
    for every job that sets nothing for that event, the way MAILTO covers a crontab.
    UsageError naming the file for a bad one; [] when there is no file."""
    path = config_file(environ)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it: {exc.strerror}") from None
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: {exc}") from None
    table = data.get("notify", {})
    if not isinstance(table, dict):
        raise UsageError(f'{path}: [notify] must be a table of EVENT = "TARGET"')
    from jobctl.notify import parse_notify

    out: list[tuple[str, str]] = []
    for event, value in table.items():
        targets = value if isinstance(value, list) else [value]
        for target in targets:
            if not isinstance(target, str):
                raise UsageError(f"{path}: notify.{event}: a target must be a string")
            try:
                out.append(parse_notify(f"{event}={target}"))
            except UsageError as exc:
                raise UsageError(f"{path}: notify.{event}: {exc}") from None
    return out
