"""Jobs from and to files: `import` (a crontab or cron.d file), `export` (TOML, crontab, JSON)
and `apply` (a TOML file of jobs, declaratively).

Parsing and planning live in crontab.py and jobfile.py; this module reads the input, asks the
store, prints the diff and writes every change in one transaction (Store.apply_jobs).
"""

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from jobctl import render
from jobctl.cli.common import JsonOpt, complete_job_name, now, store
from jobctl.errors import ConflictError, JobctlError, NotFoundError, UsageError

if TYPE_CHECKING:
    from jobctl.jobfile import Change
    from jobctl.models import Job

#: how often a plan is made again when a runner fired (or someone added a job) meanwhile
ATTEMPTS = 3
_ACTIONS = {"add": "added", "update": "changed", "same": "unchanged", "remove": "removed"}
_PLANNED = {"add": "to add", "update": "to change", "same": "unchanged", "remove": "to remove"}


def _read(file: str) -> str:
    """A file's text; one line naming it when it cannot be read (exit 2: bad input)."""
    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {file!r}: {exc.strerror or exc}") from None
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise UsageError(f"{file}: not UTF-8 text (byte {exc.start})") from None


def _user_crontab() -> str:
    """`crontab -l`: the current user's crontab."""
    import shutil
    import subprocess

    program = shutil.which("crontab")
    if program is None:
        raise JobctlError("no crontab program on PATH: give the file to import (or - to read "
                          "standard input)")  # fmt: skip
    done = subprocess.run([program, "-l"], capture_output=True, check=False)
    err = done.stderr.decode(errors="replace").strip()
    if done.returncode != 0:
        if "no crontab for" in err:  # Vixie cron and cronie say so, and exit 1
            raise NotFoundError(err.splitlines()[0])
        first = err.splitlines()[0] if err else f"exit status {done.returncode}"
        raise JobctlError(f"crontab -l failed: {first}")
    return done.stdout.decode(errors="replace")


def _apply(make_plan: Callable[[], "list[Change]"], dry_run: bool) -> "list[Change]":
    """Plan, then write the plan in one transaction; plan again when the store changed under
    it (a fire of a job being changed, a job added by someone else): ConflictError."""
    for attempt in range(ATTEMPTS):
        changes = make_plan()
        if dry_run:
            return changes
        add = [c.job for c in changes if c.action == "add"]
        update = [c.job for c in changes if c.action == "update"]
        remove = [c.job.name for c in changes if c.action == "remove"]
        if not (add or update or remove):
            return changes
        try:
            written = store().apply_jobs(add, update, remove)
        except ConflictError:
            if attempt == ATTEMPTS - 1:
                raise
            continue
        stored = {j.name: j for j in written}
        for c in changes:
            c.job = stored.get(c.job.name, c.job) if c.action != "remove" else c.job
        from jobctl.owners import nudge_runner

        nudge_runner(store())
        return changes
    raise AssertionError("unreachable")


def _print_changes(
    changes: "list[Change]", json: bool, lines: dict[str, int] | None = None
) -> None:
    if json:
        out = []
        for c in changes:
            data = {"action": _ACTIONS[c.action], **render.job_json(c.job)}
            if c.action == "update":
                data["fields"] = c.fields
            if lines is not None and c.job.name in lines:
                data["line"] = lines[c.job.name]
            out.append(data)
        render.print_json(out)
        return
    for c in changes:
        where = f"  (line {lines[c.job.name]})" if lines and c.job.name in lines else ""
        if c.action == "add":
            typer.echo(render.printable(f"+ {c.job.name}{where}"))
        elif c.action == "update":
            typer.echo(render.printable(f"~ {c.job.name}: {', '.join(c.fields)}{where}"))
        elif c.action == "remove":
            typer.echo(render.printable(f"- {c.job.name}"))


def _summary(changes: "list[Change]", dry_run: bool, what: str) -> str:
    counts = {a: sum(c.action == a for c in changes) for a in _ACTIONS}
    words = _PLANNED if dry_run else _ACTIONS
    parts = [f"{counts[a]} {words[a]}" for a in ("add", "update", "remove", "same")
             if counts[a] or a == "same"]  # fmt: skip
    if dry_run:
        return f"{what} (dry run, nothing written): {', '.join(parts)}"
    return f"{what}: {', '.join(parts)}"


# ---- import -------------------------------------------------------------------------------------


def import_(
    file: Annotated[
        str | None,
        typer.Argument(
            metavar="[FILE | -]",
            help="A crontab or cron.d file; '-': standard input; none: `crontab -l`.",
            show_default=False,
        ),
    ] = None,
    format_: Annotated[
        str | None,
        typer.Option(
            "--format",
            metavar="crontab|cron.d",
            help="cron.d: lines have a user field (the default for /etc/crontab and "
            "/etc/cron.d/*).",
        ),
    ] = None,
    prefix: Annotated[
        str, typer.Option("--prefix", metavar="P", help="Put P before every job name.")
    ] = "",
    tag: Annotated[
        list[str] | None, typer.Option("--tag", metavar="T", help="Tag the jobs (repeatable).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would change; write nothing.")
    ] = False,
    skip_invalid: Annotated[
        bool,
        typer.Option("--skip-invalid", help="Skip (and report) lines jobctl cannot express."),
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Import cron jobs: one job per schedule line, run as cron runs it; again: updates."""
    import getpass

    from jobctl import crontab
    from jobctl.clock import local_zone_name
    from jobctl.models import check_name
    from jobctl.notify import sendmail

    if format_ is not None and format_ not in ("crontab", "cron.d"):
        raise UsageError(f"invalid --format {format_!r}: choose crontab or cron.d")
    if prefix and not re.fullmatch(r"[A-Za-z0-9._-]{1,48}", prefix):
        raise UsageError(f"invalid --prefix {prefix!r}: use up to 48 letters, digits, '.', '_' "
                         "or '-'")  # fmt: skip
    tags = [check_name(t, "tag") for t in tag or [] if t]
    if file is None:
        label, text, source = "crontab", _user_crontab(), "crontab"
    else:
        label, text = ("<stdin>" if file == "-" else file), _read(file)
        source = "stdin" if file == "-" else Path(file).stem
    system = format_ == "cron.d"
    if format_ is None and file is not None and file != "-":
        system = crontab.system_file(os.path.abspath(file))
    entries, problems = crontab.parse(text, system=system)
    ctx = crontab.Context(
        source_tag=crontab.source_tag(source),
        home=os.path.expanduser("~"),
        user=getpass.getuser(),
        sendmail=sendmail() is not None,
        default_tz=local_zone_name(),
        prefix=prefix,
        tags=tags,
    )
    imported, bad, warnings = crontab.options(entries, ctx)
    problems += bad
    lines = {i.name: i.entry.line for i in imported}
    skipped: list[crontab.Problem] = []

    def refuse(found: "list[crontab.Problem]") -> None:
        if found and not skip_invalid:
            found = sorted(found, key=lambda p: p.line)
            more = f" (and {len(found) - 1} more; --skip-invalid skips them)" if found[1:] else ""
            raise UsageError(f"{label}:{found[0].line}: {found[0].why}{more}")

    refuse(problems)  # before the store is asked anything

    def make_plan() -> "list[Change]":
        names = [i.name for i in imported]
        existing = {j.name: j for j in store().list_jobs(names=names, last_runs=False)}
        changes, late = crontab.plan(imported, existing, now(), ctx)
        refuse(late)
        skipped[:] = sorted(problems + late, key=lambda p: p.line)
        return changes

    changes = _apply(make_plan, dry_run)
    for p in skipped:
        render.note(f"{label}:{p.line}: skipped: {p.why}")
    for w in warnings:
        render.note(w)
    _print_changes(changes, json, lines)
    render.note(_summary(changes, dry_run, f"import of {label}"))
    if not dry_run and changes:
        render.note(_disable_hint(file, system))


def _disable_hint(file: str | None, system: bool) -> str:
    both = "cron still runs these lines: both would fire"
    if file is None:
        return (
            f"{both}. Remove them from your crontab with `crontab -e` (or all of it: crontab -r)."
        )
    if file == "-":
        return f"{both} if they are installed. Remove them where cron reads them (crontab -e)."
    if system and os.path.abspath(file) != "/etc/crontab":
        return f"{both}. Remove {file} (or comment its lines out with '#')."
    if system:
        return f"{both}. Comment them out in {file} with '#'."
    return f"{both} if {file} is installed. Remove the lines there (crontab -e)."


# ---- export -------------------------------------------------------------------------------------


def export(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[NAME]...",
            help="Jobs to export (default: all).",
            autocompletion=complete_job_name,
            show_default=False,
        ),
    ] = None,
    format_: Annotated[
        str, typer.Option("--format", metavar="toml|crontab|json", help="What to write.")
    ] = "toml",
) -> None:
    """Print jobs as a TOML file for `jobctl apply`, as a crontab, or as JSON."""
    if format_ not in ("toml", "crontab", "json"):
        raise UsageError(f"invalid --format {format_!r}: choose toml, crontab or json")
    jobs = store().list_jobs(names=names, last_runs=format_ == "json") if names else \
        store().list_jobs(last_runs=format_ == "json")  # fmt: skip
    missing = sorted(set(names or []) - {j.name for j in jobs})
    if missing:
        raise NotFoundError(f"no job named {missing[0]!r}")
    if format_ == "json":
        render.print_json([render.job_json(j) for j in jobs])
        return
    if format_ == "toml":
        from jobctl import jobfile

        sys.stdout.write(jobfile.dump(jobs))
        return
    from jobctl import crontab
    from jobctl.clock import local_zone_name

    sys.stdout.write(crontab.dump(jobs, local_tz=local_zone_name(),
                                  home=os.path.expanduser("~")))  # fmt: skip


# ---- apply --------------------------------------------------------------------------------------


def apply(
    file: Annotated[str, typer.Argument(metavar="FILE", help="A TOML file of [jobs.NAME] tables.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would change; write nothing.")
    ] = False,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune",
            help="Remove the jobs an earlier apply of this file created that it no longer holds.",
        ),
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Make the jobs what FILE says: add, update (only what differs), keep the rest."""
    import tomllib

    from jobctl import jobfile
    from jobctl.clock import local_zone_name

    text = _read(file)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        why = str(exc)
        m = re.search(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)$", why)
        if m is None:
            raise UsageError(f"{file}: {why}") from None
        line, column = m[1], m[2]
        if line is None:  # the end: after the last character
            line, column = str(text.count("\n") + 1), str(len(text.rsplit("\n", 1)[-1]) + 1)
        raise UsageError(f"{file}:{line}:{column}: {why[: m.start()]}") from None
    path = Path(file).absolute()
    origin = jobfile.origin_tag(path)
    notes: list[str] = []

    def make_plan() -> "list[Change]":
        existing = {j.name: j for j in store().list_jobs(last_runs=False)}
        try:
            changes = jobfile.plan(doc, existing, now(), default_tz=local_zone_name(),
                                   base_dir=path.parent, origin=origin, prune=prune)  # fmt: skip
        except jobfile.JobFileError as exc:
            line = jobfile.locate(text, exc.where)
            raise UsageError(f"{file}:{line}: {exc}" if line else f"{file}: {exc}") from None
        _refuse_running([c.job for c in changes if c.action == "remove"])
        notes[:] = [c.note for c in changes if c.note]
        return changes

    changes = _apply(make_plan, dry_run)
    for note in notes:
        render.note(note)
    _print_changes(changes, json)
    render.note(_summary(changes, dry_run, f"apply of {file}"))
    if not dry_run:
        from jobctl.cli.common import warn_unmatched

        warn_unmatched([c.job for c in changes if c.action in ("add", "update")])


def _refuse_running(jobs: "list[Job]") -> None:
    """--prune does not remove a running job (as `rm` without --force)."""
    if not jobs:
        return
    from jobctl.store import RunFilter

    running = store().list_runs(RunFilter(jobs=[j.name for j in jobs], statuses=["running"]))
    if running:
        r = running[-1]
        raise ConflictError(f"job {r.job!r} is running (run {r.id}): --prune would remove it; "
                            f"apply again when it ends, or jobctl rm --force {r.job}")  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("import")(import_)
    app.command()(export)
    app.command()(apply)
