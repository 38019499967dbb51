"""The root of the CLI: global flags, the verb modules, and the one place errors become exit codes.

Verb modules register their commands on `app`; this module only wires them and turns
JobctlError (and click's usage errors) into one line on stderr and the exit code of SPEC 3.
"""

import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from jobctl import __version__
from jobctl.cli.common import State, set_argv, set_state
from jobctl.config import resolve_settings
from jobctl.errors import EXIT_FAILED, EXIT_USAGE, JobctlError

try:  # typer >= 0.20 vendors click; older ones depend on it
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

app = typer.Typer(
    name="jobctl",
    help="A job scheduler that keeps history, retries failures and never runs a fire twice.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"jobctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    home: Annotated[
        str | None,
        typer.Option(
            "--home", metavar="DIR", help="Home folder (default $JOBCTL_HOME, XDG data dir)."
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option("--store", metavar="URL", help="Store URL or path (default $JOBCTL_STORE)."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Schedule, run and inspect jobs. Global flags go before the command."""
    set_state(State(settings=resolve_settings(home, store), debug=debug,
                    flags={"--home": home, "--store": store}))  # fmt: skip


#: verb -> the module that defines it; only that module is imported to run it (start-up time)
VERBS = {
    **dict.fromkeys(("add", "edit", "list", "show", "rm", "pause", "resume"), "jobs"),
    "next": "preview",
    **dict.fromkeys(("run", "retry", "cancel", "history", "logs", "dead", "prune"), "runs"),
    **dict.fromkeys(("runner", "status"), "runner"),
    **dict.fromkeys(("stats", "metrics"), "observe"),
    "completion": "completion",
    "config": "settings",
    "service": "service",
    **dict.fromkeys(("import", "export", "apply"), "transfer"),
}
_registered: set[str] = set()


def register(modules: set[str] | None = None) -> typer.Typer:
    """Register the verb modules named (all by default) on `app` and return it."""
    import importlib

    # as `jobctl --help` lists them
    order = ("jobs", "transfer", "preview", "runs", "runner", "observe", "service", "settings",
             "completion")  # fmt: skip
    for name in (m for m in order if m in (modules or order) and m not in _registered):
        importlib.import_module(f"jobctl.cli.{name}").register(app)
        _registered.add(name)
    return app


def _completion_words() -> list[str]:
    """The words a shell asking for completions has before the one being completed, without
    the program's name (jobctl/completing.py reads them): a Tab after a verb loads its
    module alone."""
    from jobctl.completing import typed

    got = typed(os.environ)
    return got[0] if got is not None else []


def _one_line_help() -> None:
    """zsh and fish get each candidate's help on one line, as jobctl/completing.py writes it
    when it answers first: typer renders the help through rich (an import of rich per Tab)
    wrapped at 80 columns, and fish took each wrapped piece for a candidate of its own."""
    from typer._click.shell_completion import CompletionItem, add_completion_class
    from typer._completion_classes import FishComplete, ZshComplete

    from jobctl import completing

    class Zsh(ZshComplete):
        def format_completion(self, item: CompletionItem) -> str:
            return completing.zsh_item(item.value, item.help or "")

    class Fish(FishComplete):
        def format_completion(self, item: CompletionItem) -> str:
            return completing.fish_item(item.value, item.help or "")

    add_completion_class(Zsh, "zsh")
    add_completion_class(Fish, "fish")


def _verb_index(args: list[str]) -> int:
    """Where the verb is: after the global flags (and the values of --home/--store)."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in ("--home", "--store") else 1
    return i


def run(args: list[str]) -> int:
    """Run the CLI on `args`; returns the exit code. Errors print one line on stderr."""
    i = _verb_index(args)
    verb = args[i] if i < len(args) else None
    only: str | None = None  # the one command typer builds (its options), if known
    if "_JOBCTL_COMPLETE" in os.environ:  # the shell asks for completions
        from typer.completion import completion_init

        completion_init()
        _one_line_help()
        typed = _completion_words()  # the words before the one being completed
        j = _verb_index(typed)
        register({VERBS[typed[j]]} if j < len(typed) and typed[j] in VERBS else None)
    else:  # help, unknown verbs and usage errors need them all
        helping = {"-h", "--help"} & set(args)
        register({VERBS[verb]} if verb in VERBS and not helping else None)
        only = verb if verb in VERBS and not helping else None
    if _long_running(verb, args[i + 1 :]):
        import gc

        from jobctl import deferred

        gc.enable()  # __main__ turns it off for a short command's start
        deferred.stop()  # and defers modules: loaded now, before any thread starts
    set_argv(args)
    command = _click_command(only)
    debug = _global_debug(args)
    try:
        result = command.main(args, prog_name="jobctl", standalone_mode=False)
    except JobctlError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        _error(str(exc))
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        sys.stderr.write("jobctl: aborted\n")
        return EXIT_FAILED
    except click_exceptions.NoArgsIsHelpError as exc:
        sys.stderr.write(exc.format_message() + "\n")
        return EXIT_USAGE
    except click_exceptions.ClickException as exc:
        _error(_usage_message(exc))
        return exc.exit_code if exc.exit_code else EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("jobctl: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # the system's, not ours (e.g. stdout on a full disk): said plainly
        if debug:
            import traceback

            traceback.print_exc()
        where = f": {exc.filename}" if exc.filename else ""
        _error(f"{exc.strerror or exc}{where}")
        return EXIT_FAILED
    except Exception as exc:
        if debug:
            import traceback

            traceback.print_exc()
        hint = "" if debug else " (rerun with --debug)"
        _error(f"internal error: {type(exc).__name__}: {exc}{hint}")
        return EXIT_FAILED
    return result if isinstance(result, int) else 0


#: verbs that may keep running (for hours): they collect cyclic garbage as usual
LONG_RUNNING = frozenset({"runner", "run", "service", "metrics"})
_LONG_FLAGS = frozenset({"--watch", "-w", "--follow", "-f"})


def _long_running(verb: str | None, rest: list[str]) -> bool:
    """Whether the command may run for long: the verbs above, `retry` in the foreground (it
    runs the job, as `run` does, with a thread beside it), or --watch/--follow among its own
    options (not a job's command after `--`)."""
    own = rest[: rest.index("--")] if "--" in rest else rest
    foreground_retry = verb == "retry" and "--detach" not in own
    return verb in LONG_RUNNING or foreground_retry or bool(_LONG_FLAGS & set(own))


def _click_command(only: str | None) -> typer.main._click.Command:
    """The click command typer builds from `app`, with just the command `only` when given:
    typer converts every registered command's parameters on each call (`add` and `edit`
    have thirty options), and a run of `list` needs none of them."""
    commands, groups = app.registered_commands, app.registered_groups
    if only is not None:
        app.registered_commands = [c for c in commands if _name(c) == only]
        app.registered_groups = [g for g in groups if g.name == only]
        if not app.registered_commands and not app.registered_groups:  # never an empty app
            app.registered_commands, app.registered_groups = commands, groups
    read = getattr(typer.main, "get_params_from_function", None)  # typer 0.27's
    if read is not None:
        typer.main.get_params_from_function = _once(read)  # type: ignore[attr-defined,assignment]
    try:
        return _tidy(typer.main.get_command(app))
    finally:
        app.registered_commands, app.registered_groups = commands, groups
        if read is not None:
            typer.main.get_params_from_function = read  # type: ignore[attr-defined]


def _once(read: Callable[[Callable[..., Any]], Any]) -> Callable[[Callable[..., Any]], Any]:
    """`read` (typer's reading of a function's parameters: its signature, its type hints and
    a copy of each option's settings), answering each function once. typer reads a command's
    parameters to build its options and again to build its callback, which takes only their
    names; for `add`'s thirty options each reading is 2 ms of every `add` (issue 13). Both
    only read the answer (tests/cli/test_startup.py builds every command both ways)."""
    answers: dict[Callable[..., Any], Any] = {}

    def once(func: Callable[..., Any]) -> Any:
        if func not in answers:
            answers[func] = read(func)
        return answers[func]

    return once


def _tidy(command: typer.main._click.Command) -> typer.main._click.Command:
    """jobctl's conventions on what typer built: arguments shown as NAME, [NAME], NAMES...
    (typer writes {name}); each command's line in `jobctl --help` its whole first sentence,
    wrapped rather than cut with '...'."""
    for cmd in [command, *getattr(command, "commands", {}).values()]:
        for sub in getattr(cmd, "commands", {}).values():  # `service start` and the like
            _tidy(sub)
        for param in cmd.params:
            if param.param_type_name == "argument":
                param.make_metavar = _metavar(param)  # type: ignore[method-assign]
        if cmd is not command and cmd.help and not cmd.short_help:
            cmd.short_help = _first_sentence(cmd.help)
    return command


def _metavar(param: typer.main._click.Parameter):  # type: ignore[no-untyped-def]
    """make_metavar for an argument: its metavar, else its name in capitals; [..] when it is
    optional (in usage lines), ... when it takes several."""

    def make_metavar(ctx: object = None, *, usage: bool = False) -> str:
        var = param.metavar or (param.name or "").upper()
        if param.nargs != 1 and not var.endswith("..."):
            var += "..."
        if usage and not param.required and not var.startswith("["):
            var = f"[{var}]"
        return var

    return make_metavar


def _first_sentence(text: str) -> str:
    """The first sentence of a docstring, on one line."""
    first = " ".join(text.split("\n\n")[0].split())
    end = first.find(". ")
    return first if end < 0 else first[: end + 1]


def _name(info: typer.models.CommandInfo) -> str | None:
    """A registered command's name as typer derives it (`list_` is registered as "list")."""
    if info.name:
        return info.name
    return typer.main.get_command_name(info.callback.__name__) if info.callback else None


def _usage_message(exc: Exception) -> str:
    """A click/typer usage error in jobctl's style, like every other error: one line that
    starts in lower case and ends without a period, arguments named as usage shows them
    ("missing argument NAME", "no such option: --bogus; did you mean --tag?")."""
    import re

    if isinstance(exc, click_exceptions.MissingParameter) and exc.param is not None:
        param = exc.param
        if param.param_type_name == "argument":
            return f"missing argument {param.make_metavar(None)}"  # type: ignore[arg-type]
    if isinstance(exc, click_exceptions.NoSuchOption) and exc.possibilities:
        guesses = " or ".join(sorted(exc.possibilities))
        return f"no such option: {exc.option_name}; did you mean {guesses}?"
    message = exc.format_message()  # type: ignore[attr-defined]
    message = message.replace(". Did you mean", "; did you mean").replace("\n", " ").strip()
    message = message.removesuffix(".")
    extra = re.fullmatch(r"Got unexpected extra argument(?:\(s\)|s)? \((.*)\)", message)
    if extra:
        message = f"unexpected extra argument(s): {extra.group(1)}"
    if message[:1].isupper() and message[1:2].islower():
        message = message[0].lower() + message[1:]
    return message


def _global_debug(args: list[str]) -> bool:
    """Whether --debug is among the global flags (before the verb; never a job's argument)."""
    return "--debug" in args[: _verb_index(args)]


def _error(message: str) -> None:
    """The one place errors are printed: always one line on stderr, whatever the message
    quotes (a line break or an escape sequence in a bad value is shown escaped, as repr does)."""
    from jobctl.render import printable

    sys.stderr.write(f"jobctl: {printable(message.strip())}\n")
