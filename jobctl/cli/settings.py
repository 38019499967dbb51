"""`jobctl config`: the settings in force and where each came from."""

import os

import typer

from jobctl import render
from jobctl.cli.common import JsonOpt, state


def config(json: JsonOpt = False) -> None:
    """Show the settings in force (home, store, settings file, notification defaults) and
    where each came from."""
    from jobctl.config import config_file, notify_defaults

    settings = state().settings
    home_from = _source("--home", "JOBCTL_HOME", "XDG_DATA_HOME")
    store_from = _source("--store", "JOBCTL_STORE", None)
    path = config_file()
    defaults = notify_defaults()
    rows: list[tuple[str, str, str]] = [
        ("home", str(settings.home), home_from),
        ("store", _shown(settings.store_url), store_from if store_from != "default" else
         "default (the home's jobctl.db)"),
        ("config file", str(path), "exists" if path.exists() else "absent (nothing set)"),
    ]  # fmt: skip
    rows += [(f"notify {event}", target, str(path)) for event, target in defaults]
    if json:
        render.print_json(
            {
                "home": {"value": str(settings.home), "source": home_from},
                "store": {"value": _shown(settings.store_url), "source": store_from},
                "config_file": {"path": str(path), "exists": path.exists()},
                "notify": [{"event": e, "target": t, "source": str(path)} for e, t in defaults],
            }
        )
        return
    render.table(["SETTING", "VALUE", "FROM"], [list(r) for r in rows])


def _source(flag: str, env: str, xdg: str | None) -> str:
    if state().flags.get(flag):
        return f"{flag} flag"
    if os.environ.get(env):
        return f"${env}"
    if xdg and os.environ.get(xdg):
        return f"${xdg}"
    return "default"


def _shown(url: str) -> str:
    """The store URL without its password, if it has one."""
    import re

    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)


def register(app: typer.Typer) -> None:
    app.command()(config)
