"""Shell completion without the CLI framework: what a Tab offers, and the answer to the Tabs
people press most, given before typer is imported.

A Tab starts a whole `jobctl` (bash, zsh and fish alike). Importing typer and building the
command costs more than a person should wait for a Tab (issue 14: at most 100 ms), so
`jobctl/__main__.py` asks `answer` first. It answers the common cases: a verb (`jobctl
sh<Tab>`), the first argument of a verb that names a job, a run or a shell (`jobctl show
b<Tab>`, `jobctl retry <Tab>`), and the value of an option that takes one of a known list
(`--tz`, `--overlap`, `--misfire`, `--backoff`, `--status`). For everything else (options'
names, a second argument, quoted words, PowerShell) it returns None, and jobctl.cli answers
through typer.
Both paths use the candidates and the formats below, and tests/cli/test_completion.py
checks that the two give the same answer for every verb.

What each shell expects is typer's protocol (typer/_completion_classes.py): the same
environment variables and output, except that a candidate's help is written on one line as
it is (typer renders it through rich, wrapped at 80 columns: fish then took each wrapped
piece for a candidate of its own).

Nothing here imports typer or rich, and the store is opened only to list names and ids.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobctl.config import Settings
    from jobctl.store import Store

#: the most run ids offered: a Tab lists what a person can read, the newest first
MAX_RUN_IDS = 30

#: the verbs in the order `jobctl <Tab>` offers them, each with its help (the first sentence
#: of its docstring, as `jobctl --help` shows it; a test checks they are the CLI's)
VERB_HELP = {
    "add": "Add a job: jobctl add NAME [--cron EXPR | --every D | --at T] [options] -- COMMAND...",
    "edit": "Change a job; given options replace the old values and the next fire is recomputed.",
    "list": "List jobs: schedule, next fire, last run and state.",
    "show": "Show a job: its definition, next 5 fires, recent runs and statistics.",
    "rm": "Remove jobs; their history stays unless --purge.",
    "pause": "Pause jobs: they do not fire until resumed.",
    "resume": "Resume jobs: each fires next at its next fire time from now (no catch-up).",
    "import": "Import cron jobs: one job per schedule line, run as cron runs it; again: updates.",
    "export": "Print jobs as a TOML file for `jobctl apply`, as a crontab, or as JSON.",
    "apply": "Make the jobs what FILE says: add, update (only what differs), keep the rest.",
    "next": "Preview fire times: jobctl next (NAME | --cron EXPR | --every D) [-n 5].",
    "run": "Run a job now.",
    "retry": "Run that fire again now (trigger replay); resolves it if it was dead.",
    "cancel": "Stop a queued or running run (its process group gets SIGTERM, then SIGKILL).",
    "history": "Runs, newest first (of the job now under NAME; --all: of every job that had it).",
    "logs": "Output of the latest run of NAME (the running one, else the last that ran), or "
    "of RUN_ID.",
    "dead": "The dead-letter list: runs that failed with no retries left, one per fire.",
    "prune": "Delete old runs and their output now (also applies each job's --keep-runs).",
    "runner": "Run the scheduler in the foreground: fire jobs on time and execute them.",
    "status": "Whether a runner is active, what runs now, what is queued, next fires, failures.",
    "stats": "Per job: runs, success rate, p50/p95/max duration, last failure, recent durations.",
    "metrics": "Prometheus metrics of the store: runs, durations, lateness, queue, runners.",
    "config": "Show the settings in force (home, store, settings file, notification defaults) "
    "and where each came from.",
    "completion": "Print a shell completion script (source it, or save it where your shell looks).",
    "service": "Run the runner as a service of systemd (Linux) or launchd (macOS).",
}

#: what the first argument of a verb completes to: job names, or run ids ("open": queued and
#: running; "replayable": the dead list, then finished runs; "any": the latest), or both
_JOB_VERBS = ("add", "edit", "show", "rm", "pause", "resume", "export", "next", "run", "history",
              "dead", "stats")  # fmt: skip
FIRST_ARGUMENT = {
    **dict.fromkeys(_JOB_VERBS, "jobs"),
    "retry": "replayable",
    "cancel": "open",
    "logs": "jobs+any",
    "completion": "shells",
}

Item = tuple[str, str]  # (value, help or "")


# ---- candidates ----------------------------------------------------------------------------


def _starting(values: tuple[str, ...], incomplete: str) -> list[str]:
    return [v for v in values if v.startswith(incomplete)]


def overlaps(incomplete: str) -> list[str]:
    from jobctl.models import OVERLAPS

    return _starting(OVERLAPS, incomplete)


def misfires(incomplete: str) -> list[str]:
    from jobctl.models import MISFIRES

    return _starting(MISFIRES, incomplete)


def backoffs(incomplete: str) -> list[str]:
    from jobctl.models import BACKOFFS

    return _starting(BACKOFFS, incomplete)


def statuses(incomplete: str) -> list[str]:
    from jobctl.models import RUN_STATUSES

    return _starting(RUN_STATUSES, incomplete)


def shells(incomplete: str) -> list[str]:
    return _starting(("bash", "zsh", "fish"), incomplete)


def zone_names() -> list[str]:
    """The IANA zone names of the system's tz database (a walk of its folder, no file read),
    else those of the tzdata package; sorted."""
    import zoneinfo

    from jobctl.clock import off_world  # the files --tz refuses (Factory among the capitals)

    for base in zoneinfo.TZPATH:
        if not os.path.isdir(os.path.join(base, "Europe")):
            continue
        names = []
        for folder, dirs, files in os.walk(base):
            rel = os.path.relpath(folder, base)
            dirs[:] = [d for d in dirs if d[0].isupper()]  # not posix/, right/
            prefix = "" if rel == "." else rel + "/"
            names += [prefix + f for f in files
                      if f[0].isupper() and "." not in f and not off_world(prefix + f)]  # fmt: skip
        if names:
            return sorted(names)
    try:
        from importlib.resources import files as resource_files

        text = resource_files("tzdata").joinpath("zones").read_text()
    except Exception:
        return []
    names = (line.strip() for line in text.splitlines())
    return sorted(n for n in names if n and not off_world(n))


def zones(incomplete: str) -> list[str]:
    return [z for z in zone_names() if z.startswith(incomplete)]


#: option -> (the values it takes, the verbs that take it)
OPTION_VALUES: dict[str, tuple[Callable[[str], list[str]], tuple[str, ...]]] = {
    "--tz": (zones, ("add", "edit", "next")),
    "--overlap": (overlaps, ("add", "edit")),
    "--misfire": (misfires, ("add", "edit")),
    "--backoff": (backoffs, ("add", "edit")),
    "--status": (statuses, ("history",)),
}


def glance(settings: Callable[[], Settings]) -> Callable[[], Store]:
    """The store `settings()` names, opened at a glance (open_store(glance=True): nothing
    created, 2 s for a server) when first asked, then kept, and so is a failure to open it:
    the job names and run ids of one Tab (`logs`) come from one opening."""
    opened: list[Store | Exception] = []

    def store() -> Store:
        if not opened:
            from jobctl.store import open_store

            try:
                opened.append(open_store(settings(), glance=True))
            except Exception as exc:  # a --home that cannot be expanded, no store, no server
                opened.append(exc)
        if isinstance(opened[0], Exception):
            raise opened[0]
        return opened[0]

    return store


def job_names(store: Callable[[], Store], incomplete: str) -> list[str]:
    """Job names from `store()`, those that start with `incomplete`; none when the store
    cannot be had or read: a Tab never fails."""
    try:
        names = store().job_names()
    except Exception:
        return []
    return [n for n in names if n.startswith(incomplete)]


def run_ids(store: Callable[[], Store], incomplete: str, which: str) -> list[Item]:
    """Run ids with a line of help (job, status, when), newest first: `open` the queued and
    running ones (cancel), `replayable` the dead list then the finished among the latest 120
    runs (retry), `any` the latest runs (logs)."""
    try:
        from jobctl import render
        from jobctl.store import RunFilter

        s = store()
        if which == "open":
            found = s.list_runs(RunFilter(statuses=["queued", "running"]))
            found.sort(key=lambda r: -(r.id or 0))
        elif which == "replayable":
            from jobctl.runs import dead_runs

            found = dead_runs(s)
            # the finished among the newest runs: a filter on status would make SQLite sort
            # every finished run by id (its status index), 20 ms with 100,000 runs
            latest = s.list_runs(RunFilter(limit=4 * MAX_RUN_IDS))
            finished = ("succeeded", "failed", "timed_out", "cancelled", "abandoned")
            found += [r for r in latest if r.status in finished]
        else:
            found = s.list_runs(RunFilter(limit=MAX_RUN_IDS))
    except Exception:
        return []
    now, out, seen = time.time(), [], set()
    for r in found:
        rid = str(r.id)
        if rid in seen or not rid.startswith(incomplete):
            continue
        seen.add(rid)
        when = render.relative(r.finished_at or r.started_at or r.created_at, now)
        out.append((rid, f"{r.job} {r.status}{' (dead)' if r.dead else ''} {when}"))
        if len(out) == MAX_RUN_IDS:
            break
    return out


def first_argument(settings: Callable[[], Settings], verb: str, incomplete: str) -> list[Item]:
    """The candidates for the first argument of `verb` (FIRST_ARGUMENT names what it takes)."""
    kind = FIRST_ARGUMENT[verb]
    if kind == "shells":
        return [(v, "") for v in shells(incomplete)]
    store = glance(settings)
    items: list[Item] = []
    if kind.startswith("jobs"):
        items += [(n, "job" if "+" in kind else "") for n in job_names(store, incomplete)]
    if kind != "jobs":
        items += run_ids(store, incomplete, kind.rpartition("+")[2])
    return items


# ---- the shells' formats -------------------------------------------------------------------


def one_line(text: str) -> str:
    """A candidate's help on one line, as written."""
    return " ".join(text.split())


def zsh_item(value: str, help_: str) -> str:
    def escape(s: str) -> str:  # as typer escapes for zsh's _arguments
        return (s.replace('"', '""').replace("'", "''").replace("$", "\\$").replace("`", "\\`")
                .replace(":", r"\\:"))  # fmt: skip

    if help_:
        return f'"{escape(value)}":"{escape(one_line(help_))}"'
    return f'"{escape(value)}"'


def fish_item(value: str, help_: str) -> str:
    return f"{value}\t{one_line(help_)}" if help_ else value


def output(shell: str, items: list[Item]) -> str:
    """What `jobctl` prints for `items` to the completion function of `shell`."""
    if shell == "bash":
        return "\n".join(v for v, _ in items)
    if shell == "zsh":
        if not items:
            return "_files"
        lines = "\n".join(zsh_item(v, h) for v, h in items)
        return f"_arguments '*: :(({lines}))'"
    return "\n".join(fish_item(v, h) for v, h in items)


# ---- the early answer ----------------------------------------------------------------------


def typed(environ: Mapping[str, str]) -> tuple[list[str], str] | None:
    """(the words before the one being completed, without the program's name; that word),
    split on whitespace as the shell gives them (bash: COMP_WORDS and COMP_CWORD; zsh, fish
    and PowerShell: _TYPER_COMPLETE_ARGS, whose last word is the one being completed unless
    the line ends with a space); None when COMP_CWORD is not a number. jobctl.cli reads the
    verb from them too, to load the module of that verb alone."""
    if environ.get("_JOBCTL_COMPLETE") == "complete_bash":
        words = environ.get("COMP_WORDS", "").split()
        try:
            cword = int(environ.get("COMP_CWORD", ""))
        except ValueError:
            return None
        try:
            incomplete = words[cword]
        except IndexError:  # as typer reads it (a negative one counts from the end)
            incomplete = ""
        return words[1:cword], incomplete
    line = environ.get("_TYPER_COMPLETE_ARGS", "")
    args = line.split()[1:]
    incomplete = ""
    if args and not line.endswith(" "):
        incomplete = args.pop()
    return args, incomplete


def request(environ: Mapping[str, str]) -> tuple[str, list[str], str] | None:
    """(shell, words before the one completed without the program's name, that word) from
    the environment a shell gives `jobctl` on Tab; None when it is not one this module reads
    as typer would (another shell or action, quotes or escapes that need shlex)."""
    shell = {"complete_bash": "bash", "complete_zsh": "zsh", "complete_fish": "fish"}.get(
        environ.get("_JOBCTL_COMPLETE", "")
    )
    if shell is None or (shell == "fish" and environ.get("_TYPER_COMPLETE_FISH_ACTION") !=
                         "get-args"):  # fmt: skip
        return None
    line = environ.get("COMP_WORDS" if shell == "bash" else "_TYPER_COMPLETE_ARGS", "")
    if any(c in "\"'\\" or (c.isspace() and c not in " \t\r\n") for c in line):
        return None  # shlex's words differ from str.split's
    got = typed(environ)
    return None if got is None else (shell, got[0], got[1])


def answer(environ: Mapping[str, str] | None = None) -> str | None:
    """The completion output for a verb or a verb's first argument, or None (typer answers)."""
    env = os.environ if environ is None else environ
    asked = request(env)
    if asked is None:
        return None
    shell, args, incomplete = asked
    if incomplete.startswith("-"):
        return None  # options: typer knows them
    flags: dict[str, str] = {}
    i = 0
    while i < len(args) and args[i].startswith("-"):
        if args[i] == "--debug":
            i += 1
        elif args[i] in ("--home", "--store") and i + 1 < len(args):
            flags[args[i]] = args[i + 1]
            i += 2
        else:
            return None  # --home=DIR, --version, a value still being typed...
    if i == len(args):
        return output(shell, [(v, h) for v, h in VERB_HELP.items() if v.startswith(incomplete)])
    verb, rest = args[i], args[i + 1 :]
    if not rest and verb in FIRST_ARGUMENT:

        def settings() -> Settings:
            from jobctl.config import resolve_settings

            return resolve_settings(flags.get("--home"), flags.get("--store"), dict(env))

        return output(shell, first_argument(settings, verb, incomplete))
    option = OPTION_VALUES.get(rest[-1]) if rest and "--" not in rest else None
    if option is not None and verb in option[1]:
        values, _ = option
        return output(shell, [(v, "") for v in values(incomplete)])
    return None
