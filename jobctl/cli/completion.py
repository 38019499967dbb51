"""`jobctl completion SHELL`: print the completion script (the files in completions/ are these)."""

from typing import Annotated

import typer

from jobctl.errors import UsageError

SHELLS = ("bash", "zsh", "fish")


def completion_script(shell: str) -> str:
    from typer._completion_shared import get_completion_script

    if shell not in SHELLS:
        raise UsageError(f"unknown shell {shell!r}: choose one of {', '.join(SHELLS)}")
    return get_completion_script(prog_name="jobctl", complete_var="_JOBCTL_COMPLETE", shell=shell)


def completion(shell: Annotated[str, typer.Argument(help="bash, zsh or fish.")]) -> None:
    """Print a shell completion script (source it, or save it where your shell looks)."""
    typer.echo(completion_script(shell).rstrip("\n"))


def register(app: typer.Typer) -> None:
    app.command()(completion)
