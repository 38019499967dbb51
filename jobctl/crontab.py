"""Crontabs and cron.d files <-> jobs (`jobctl import`, `jobctl export --format crontab`).

Reading follows crontab(5) as Vixie cron (Debian's cron) and cronie run it:
- blank lines and lines whose first non-blank is '#' are ignored; the comment lines just above
  a schedule line (up to a blank line or a line of only punctuation) become its description;
- `NAME = value` sets an environment variable for the lines after it (blanks around '='
  optional; trailing blanks dropped; a value in matching single or double quotes loses them);
- a schedule line is 5 fields or an @macro, then (cron.d, /etc/crontab) the user, then the
  command, run with `$SHELL -c` (SHELL from the file, else /bin/sh); an unescaped '%' ends the
  command and the rest is its standard input, each later unescaped '%' a line break.

Each line becomes the options of `jobctl add` (JobOptions): the same schedule (jobctl's cron
parser keeps cron's rules, the day-of-month/day-of-week OR included), the command as cron
runs it, the file's environment, CRON_TZ (or TZ) as the zone, MAILTO as mail notifications,
HOME as the working folder. Pure, apart from what jobdef checks (cwd exists, sendmail).
"""

from __future__ import annotations

import os.path
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from jobctl import jobdef, jobfile, planner, schedule
from jobctl.errors import ConflictError, UsageError
from jobctl.jobdef import JobOptions
from jobctl.models import Job

MACROS = ("@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight",
          "@hourly")  # fmt: skip
DEFAULT_SHELL = "/bin/sh"  # cron's, and what jobctl's --shell runs
IMPORT_PREFIX = "import."  # the tag of an imported job: import.<source>
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENV_LINE = re.compile(r"""(?:"([^"]*)"|'([^']*)'|([^\s="']+))\s*=\s*(.*)""", re.DOTALL)
MAX_NAME = 64


@dataclass
class Entry:
    """One schedule line of a crontab."""

    line: int
    schedule: str  # the 5 fields joined by one space, or the @macro
    command: str  # as written: '%' not processed
    user: str | None = None  # cron.d and /etc/crontab
    env: dict[str, str] = field(default_factory=dict)  # the variables set above it
    env_lines: dict[str, int] = field(default_factory=dict)  # where each was set
    description: str = ""


@dataclass
class Problem:
    """A line jobctl cannot take, and why (`FILE:LINE: why`)."""

    line: int
    why: str


def parse(text: str, system: bool = False) -> tuple[list[Entry], list[Problem]]:
    """The schedule lines of a crontab (`system`: cron.d/etc/crontab, with a user field)
    and the lines that are neither comments, environment settings nor schedule lines."""
    entries: list[Entry] = []
    problems: list[Problem] = []
    env: dict[str, str] = {}
    env_lines: dict[str, int] = {}
    comments: list[str] = []
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.lstrip(" \t")
        if not line.strip():
            comments = []
            continue
        if line.startswith("#"):
            note = line[1:].strip()
            keep = re.search(r"[^\W_]", note) and not _disabled_line(note)
            comments = [*comments, note] if keep else []
            continue
        setting = parse_env(line)
        if setting is not None:
            name, value = setting
            env[name] = value
            env_lines[name] = number
            comments = []
            continue
        entry = _entry(line, number, system)
        if isinstance(entry, Problem):
            problems.append(entry)
        else:
            entry.env, entry.env_lines = dict(env), dict(env_lines)
            entry.description = " ".join(comments)
            entries.append(entry)
        comments = []
    return entries, problems


def _disabled_line(text: str) -> bool:
    """A comment that is a schedule line put out of use: not a description."""
    fields = text.split()
    expr = fields[0] if text.startswith("@") else " ".join(fields[:5])
    try:
        schedule.parse_cron(expr)
    except schedule.ScheduleError:
        return False
    return len(fields) > (1 if text.startswith("@") else 5)


def parse_env(line: str) -> tuple[str, str] | None:
    """`NAME = value` as cron reads it, or None when the line is not a setting."""
    m = _ENV_LINE.fullmatch(line.rstrip("\r"))
    if m is None:
        return None
    name = next(g for g in m.groups()[:3] if g is not None)
    value = m.group(4).rstrip(" \t\r\f\v")
    if len(value) >= 2 and value[0] in "'\"" and value[-1] == value[0]:
        value = value[1:-1]
    return name, value


def _entry(line: str, number: int, system: bool) -> Entry | Problem:
    words = line.split(maxsplit=6)
    count = 1 if line.startswith("@") else 5
    if count == 5 and not re.match(r"[0-9*]", line):
        return Problem(number, f"neither a schedule line nor an environment setting "
                               f"(NAME=value): {line.strip()!r}")  # fmt: skip
    if len(words) < count + 1 + system:
        need = "a user and a command" if system else "a command"
        fields = "5 time fields" if count > 1 else "its @schedule"
        return Problem(number, f"a schedule line needs {fields}, then {need}: {line.strip()!r}")
    fields = words[:count]
    user = words[count] if system else None
    rest = line
    for word in words[: count + system]:  # the command starts at the next non-blank
        rest = rest[rest.index(word) + len(word) :].lstrip()
    expr = " ".join(fields)
    if count == 1 and expr.lower() not in MACROS:
        return Problem(number, f"unknown schedule {expr!r}: use 5 fields or one of "
                               f"{', '.join(MACROS)}")  # fmt: skip
    why = unsupported(fields)
    if why is None:
        try:
            schedule.parse_cron(expr)
        except schedule.ScheduleError as exc:
            why = str(exc)
    if why is not None:
        return Problem(number, why)
    return Entry(number, expr, rest, user)


def unsupported(fields: Sequence[str]) -> str | None:
    """Cron dialects' extensions jobctl does not have, named (its parser says the rest)."""
    for name, text in zip(("minute", "hour", "day-of-month", "month", "day-of-week"), fields,
                          strict=False):  # fmt: skip
        if "~" in text:
            return (f"{name} {text!r}: '~' (a random value, cronie) is not supported: pick a "
                    "fixed value, or keep the range and add --jitter")  # fmt: skip
    return None


def system_file(path: str) -> bool:
    """Whether cron reads `path` with a user field: /etc/crontab and /etc/cron.d/*."""
    p = os.path.normpath(path)
    return p == "/etc/crontab" or os.path.dirname(p) == "/etc/cron.d"


def source_tag(source: str) -> str:
    """The tag of the jobs imported from `source` (a file's stem, stdin, crontab)."""
    return (IMPORT_PREFIX + (re.sub(r"[^A-Za-z0-9._-]+", "-", source).strip("-") or "file"))[:64]


# ---- the command, as cron runs it -----------------------------------------------------------


def split_input(command: str) -> tuple[str, str | None]:
    """crontab(5)'s '%' rule as cron applies it: (the command, its standard input or None).

    In the command, '\\%' is '%' and the first other '%' ends it; in the rest, '%' is a line
    break, '\\%' a '%', and a line break is added at the end unless there is one (cron's
    do_command)."""
    out: list[str] = []
    escaped = False
    for i, ch in enumerate(command):
        if escaped:
            escaped = False
            if ch == "%":
                out[-1] = "%"  # replaces the backslash
                continue
        elif ch == "\\":
            escaped = True
        elif ch == "%":
            return "".join(out), _input(command[i + 1 :])
        out.append(ch)
    return "".join(out), None


def _input(data: str) -> str | None:
    if not data:
        return None  # cron writes nothing: the command reads end-of-file
    out: list[str] = []
    escaped = need_newline = False
    for ch in data:
        if escaped:
            if ch != "%":
                out.append("\\")
        elif ch == "%":
            ch = "\n"
        escaped = ch == "\\"
        if not escaped:
            out.append(ch)
            need_newline = ch != "\n"
    if escaped:
        out.append("\\")
    if need_newline:
        out.append("\n")
    return "".join(out)


def feed(data: str) -> str:
    """A shell command that writes `data` to its standard output, exactly."""
    if data.endswith("\n"):
        return "printf '%s\\n' " + " ".join(shlex.quote(x) for x in data[:-1].split("\n"))
    return "printf '%s' " + shlex.quote(data)


def job_command(command: str, shell: str) -> tuple[list[str], bool]:
    """(command, --shell) of a job that runs a cron command line as cron does: `$SHELL -c
    COMMAND` with the input after '%' on its standard input. /bin/sh is a --shell job of the
    command itself; another SHELL runs as argv [SHELL, -c, COMMAND] (cron's own exec);
    standard input is fed by printf through a pipe (jobctl jobs have no stdin option)."""
    text, data = split_input(command)
    if data is not None:
        return [f"{feed(data)} | {shlex.quote(shell)} -c {shlex.quote(text)}"], True
    if shell == DEFAULT_SHELL:
        return [text], True
    return [shell, "-c", text], False


# ---- names ------------------------------------------------------------------------------------

#: commands that only check or prepare (the job's name comes from what follows them)
_GUARDS = {"cd", "test", "[", "[[", "command", "type", "which", "true", ":", "sleep", "exit",
           "set", "export", "umask", "source", "."}  # fmt: skip
#: commands that run the next word as the program
_WRAPPERS = {"exec", "nice", "ionice", "nohup", "env", "time"}
_RESERVED = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}"}
_OPERATORS = {"&&", "||", ";", "|", "&", ";;", "(", ")", "|&"}
_REDIRECT = re.compile(r"[0-9]*(<|>|>>|<<|>&|<&|&>|&>>|>\|)")


def _programs(command: str) -> list[tuple[str, list[str]]]:
    """(program, words) of each simple command, left to right, after env assignments,
    reserved words and wrappers; redirections dropped."""
    while True:  # command substitutions are arguments, not commands of their own
        plain = re.sub(r"\$\(\([^()]*\)\)|\$\([^()]*\)|`[^`]*`", "X", command)
        if plain == command:
            break
        command = plain
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # an open quote: words split on blanks will do for a name
        tokens = command.split()
    out: list[tuple[str, list[str]]] = []
    words: list[str] = []
    skip = False
    for token in [*tokens, ";"]:
        if skip:
            skip = False
            continue
        if token in _OPERATORS or set(token) <= set("&|;()"):
            if words:
                out.append((words[0], words))
            words = []
            continue
        if _REDIRECT.fullmatch(token):
            skip = True
            continue
        if not words and (token in _RESERVED or _assignment(token)):
            continue
        if words and words[0] in _WRAPPERS:
            if token.startswith("-") or token.isdigit() or _assignment(token):
                continue  # the wrapper's options (nice -n 10, env -i A=1)
            words = []
        words.append(token)
    return out


def _assignment(token: str) -> bool:
    return "=" in token and ENV_NAME.fullmatch(token.split("=", 1)[0]) is not None


def program_name(command: str) -> str:
    """The base name of the program a cron command is about: the first that is not a guard
    (cd, test, [ ], command -v, true, sleep or a random delay such as perl -e 'sleep ...'),
    after env assignments and wrappers (exec, nice, nohup, env...); else the first; "job"."""
    found = _programs(command)
    main = next((p for p, words in found if p not in _GUARDS
                 and not any(re.search(r"\bsleep\b", w) for w in words[1:]
                             if not w.startswith("-"))), None)  # fmt: skip
    if main is None:
        main = found[0][0] if found else ""
    base = main.rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-") or "job"


def unique_names(bases: Sequence[str], prefix: str = "") -> list[str]:
    """`prefix + base`, made unique in order (backup, backup-2, ...), at most 64 characters."""
    taken: set[str] = set()
    out: list[str] = []
    for base in bases:
        n = 1
        while True:
            suffix = f"-{n}" if n > 1 else ""
            name = (prefix + base)[: MAX_NAME - len(suffix)] + suffix
            if name not in taken:
                break
            n += 1
        taken.add(name)
        out.append(name)
    return out


# ---- lines -> jobs --------------------------------------------------------------------------


@dataclass
class Context:
    """What an import needs to know besides the file."""

    source_tag: str  # import.<source>
    home: str  # cron starts jobs in HOME: the working folder when the file sets none
    user: str  # who runs jobctl (cron.d lines of other users are warned about)
    sendmail: bool  # MAILTO becomes mail notifications only where mail can be sent
    default_tz: str
    prefix: str = ""
    tags: list[str] = field(default_factory=list)


@dataclass
class Imported:
    entry: Entry
    name: str
    opts: JobOptions


def options(
    entries: Sequence[Entry], ctx: Context
) -> tuple[list[Imported], list[Problem], list[str]]:
    """The options of `jobctl add` for each line, named (by program, unique in file order:
    a line that cannot be imported still takes its name, so that the others keep theirs),
    the lines that cannot be expressed, and warnings (one each)."""
    names = unique_names([program_name(split_input(e.command)[0]) for e in entries], ctx.prefix)
    out: list[Imported] = []
    problems: list[Problem] = []
    warnings: dict[str, None] = {}
    bad_env: set[int] = set()
    for entry, name in zip(entries, names, strict=True):
        why = _env_problem(entry, bad_env)
        if why is not None:
            problems.append(why)
            continue
        env = entry.env
        shell = env.get("SHELL", DEFAULT_SHELL)
        command, as_shell = job_command(entry.command, shell)
        tags = [ctx.source_tag, *ctx.tags]
        if entry.user is not None:
            tags.append("user." + (re.sub(r"[^A-Za-z0-9._-]+", "-", entry.user).strip("-")
                                   or "unknown"))  # fmt: skip
            if entry.user != ctx.user:
                warnings[
                    f"warning: lines for user {entry.user!r} run as {entry.user} under "
                    f"cron; jobctl runs them as {ctx.user} (tag user.{entry.user})"
                ] = None
        opts = JobOptions(
            cron=entry.schedule,
            tz=env.get("CRON_TZ") or env.get("TZ") or ctx.default_tz,
            shell=as_shell,
            command=command,
            cwd=env.get("HOME") or ctx.home,
            env=[f"{k}={v}" for k, v in env.items()],
            description=entry.description,
            tag=tags,
            notify=mail_notify(env.get("MAILTO")) if ctx.sendmail else [],
        )
        if env.get("MAILTO") and not ctx.sendmail:
            warnings[f"warning: MAILTO={env['MAILTO']} (line {entry.env_lines['MAILTO']}): "
                     "no local sendmail, so no mail notification was set (use --notify "
                     "with a command or a URL)"] = None  # fmt: skip
        out.append(Imported(entry, name, opts))
    return out, problems, list(warnings)


def _env_problem(entry: Entry, reported: set[int]) -> Problem | None:
    """A variable jobctl cannot give (its name) or a zone it does not know, at its line."""
    for name, line in entry.env_lines.items():
        why = None
        if not ENV_NAME.fullmatch(name):
            why = f"environment variable {name!r}: jobctl takes names of letters, digits, '_'"
        elif name in ("CRON_TZ", "TZ") and entry.env[name]:
            try:
                planner.zone(entry.env[name])
            except schedule.ScheduleError as exc:
                why = f"{name}: {exc}"
        if why is not None:
            if line in reported:
                return Problem(entry.line, f"it uses line {line}: {why}")
            reported.add(line)
            return Problem(line, why)
    return None


def mail_notify(mailto: str | None) -> list[str]:
    """MAILTO's addresses as --notify entries: failed runs and dead ones (cron mails any
    output; jobctl keeps output in history and tells of failures). A bare user name is
    that user on this machine (user@localhost)."""
    out = []
    for addr in re.split(r"[,\s]+", mailto or ""):
        if addr:
            addr = addr if "@" in addr else f"{addr}@localhost"
            out += [f"dead=mailto:{addr}", f"failure=mailto:{addr}"]
    return out


def owned_notify(event: str, target: str) -> bool:
    """The notifications an import sets (from MAILTO), replaced when it runs again."""
    return event in ("dead", "failure") and target.startswith("mailto:")


def plan(
    imported: Sequence[Imported], existing: Mapping[str, Job], now: float, ctx: Context
) -> tuple[list[jobfile.Change], list[Problem]]:
    """What importing does: a new job per new name ("add"), the job of an earlier import of
    this source brought in line with its line ("update", the keys that differ) or left
    ("same"). An import sets what the line says (schedule, zone, command, environment,
    working folder, description, its tags, MAILTO's notifications) and leaves the options
    the line does not (retries, timeout, pause...). A name taken by a job that this source
    did not import is a conflict (ConflictError: --prefix)."""
    out: list[jobfile.Change] = []
    problems: list[Problem] = []
    for item in imported:
        old = existing.get(item.name)
        try:
            if old is None:
                job = jobdef.new_job(item.name, item.opts, now, default_tz=ctx.default_tz,
                                     default_cwd=ctx.home)  # fmt: skip
                out.append(jobfile.Change("add", job))
                continue
            if ctx.source_tag not in old.tags:
                raise ConflictError(
                    f"job {item.name!r} exists and was not imported from this source (no tag "
                    f"{ctx.source_tag}): import with --prefix P, or remove it (jobctl rm)"
                )
            opts = JobOptions(**vars(item.opts))
            opts.tag = sorted({*old.tags, *(item.opts.tag or [])})
            kept = [f"{e}={t}" for e, t in old.notify if not owned_notify(e, t)]
            opts.notify = kept + (item.opts.notify or [])
            if sorted(opts.notify) == sorted(f"{e}={t}" for e, t in old.notify):
                opts.notify = None  # as it is (nothing to check again)
            job = jobdef.apply_options(old, opts, now)
        except UsageError as exc:
            problems.append(Problem(item.entry.line, str(exc)))
            continue
        fields = jobfile.diff(old, job)
        out.append(jobfile.Change("update", job, fields) if fields
                   else jobfile.Change("same", old))  # fmt: skip
    return out, problems


# ---- jobs -> a crontab ------------------------------------------------------------------------

#: variables that would change how cron runs the lines (or that it sets itself): a job's own
#: value is exported in its command rather than written as an environment line
_CRON_OWN = ("SHELL", "CRON_TZ", "LOGNAME")
#: options a crontab line keeps (the rest is listed in a comment)
_KEPT = {"cron", "command", "tz", "cwd", "env", "description", "tags", "paused"}


def cron_reason(job: Job) -> str | None:
    """Why cron cannot run `job` as jobctl does (a comment), or None."""
    if job.state == "paused":
        return "paused"
    if job.state == "done":
        return "done (its at time has passed)"
    if job.schedule_kind == "every":
        return f"every {job.schedule}: cron cannot express --every"
    if job.schedule_kind == "at":
        return f"at {job.schedule}: cron cannot express --at (a one-shot)"
    if job.schedule_kind != "cron" or job.schedule is None:
        return "no schedule (manual): nothing for cron to run"
    fields = job.schedule.split()
    if len(fields) == 6:
        return f"cron {job.schedule!r}: cron has no seconds field"
    if schedule.parse_cron(job.schedule).last_day:
        return f"cron {job.schedule!r}: cron has no 'L' (last day of the month)"
    if any("\n" in v for v in job.env.values()):
        return "an environment value with a line break"
    return None


def env_line(name: str, value: str) -> str:
    """`NAME=value` that cron reads back as exactly `value`."""
    if value != value.strip(" \t") or (
        len(value) >= 2 and value[0] in "'\"" and value[-1] == value[0]
    ):
        return f'{name}="{value}"'
    return f"{name}={value}"


def command_line(job: Job, unset: Sequence[str], export: Mapping[str, str], cd: bool) -> str | None:
    """The command field for cron (quoted for sh, '%' escaped), or None when cron cannot
    carry it (a line break, or a backslash before a '%')."""
    text = job.command[0] if job.shell else shlex.join(job.command)
    pre = ""
    if unset:
        pre += f"unset {' '.join(unset)}; "
    if export:
        pre += f"export {' '.join(f'{k}={shlex.quote(v)}' for k, v in export.items())}; "
    if cd:
        pre += f"cd {shlex.quote(job.cwd)} || exit 126; "
    line = pre + text
    if "\n" in line or "\r" in line or "\\%" in line:
        return None
    return line.replace("%", "\\%")


def dump(jobs: Sequence[Job], *, local_tz: str, home: str) -> str:
    """A crontab (for `crontab FILE`) running the jobs cron can express as jobctl does; the
    others are commented out with the reason. Environment lines (HOME: where cron starts
    the command) and CRON_TZ are written where they change; a variable set above that a job
    does not have is unset in its line; SHELL stays /bin/sh (what the lines are quoted for),
    so a job's own SHELL is exported in its line, as is a cwd other than HOME."""
    out = ["# jobctl export --format crontab: install with `crontab FILE` (then disable the",
           "# jobs in jobctl, or both will run them); lines cron cannot express are comments",
           f"SHELL={DEFAULT_SHELL}"]  # fmt: skip
    env: dict[str, str] = {}  # set by the lines written so far
    tz = local_tz
    for job in jobs:
        out.append("")
        why = cron_reason(job)
        if why is not None:
            out.append(f"# {job.name}: {why}")
            continue
        implied = {"SHELL": DEFAULT_SHELL, "CRON_TZ": job.tz}  # what cron gives it anyway
        plain = {k: v for k, v in job.env.items() if k not in _CRON_OWN}
        export = {k: v for k, v in job.env.items() if k in _CRON_OWN and implied.get(k) != v}
        unset = sorted(k for k in env if k not in plain)
        cwd = {**env, **plain}.get("HOME", home)  # cron changes to HOME before it runs it
        line = command_line(job, unset, export, cd=job.cwd != cwd)
        if line is None:
            out.append(f"# {job.name}: its command has a line break or a '\\%', which a "
                       "crontab cannot hold")  # fmt: skip
            continue
        out.append(f"# {job.name}" + (f": {_one_line(job.description)}" if job.description else ""))
        extra = {k: v for k, v in jobfile.to_table(job).items() if k not in _KEPT}
        if extra:
            listed = ", ".join(f"{k}={_one_line(str(v))}" for k, v in extra.items())
            out.append(f"# {job.name}: not kept by cron: {listed}")
        if job.tz != tz:
            out.append(f"CRON_TZ={job.tz}")
            tz = job.tz
        for k, v in plain.items():
            if env.get(k) != v:
                out.append(env_line(k, v))
                env[k] = v
        out.append(f"{job.schedule} {line}")
    return "\n".join(out) + "\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())
