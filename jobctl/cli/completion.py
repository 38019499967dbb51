"""`jobctl completion SHELL`: print the completion script (the files in completions/ are these)."""

from typing import Annotated

import typer

from jobctl.cli import completers
from jobctl.errors import UsageError

SHELLS = ("bash", "zsh", "fish")


#: fish: one call to jobctl per Tab (typer's script makes two: is-args, then get-args); files
#: are offered when jobctl has no candidates (--cwd DIR, import FILE)
FISH = """\
function __jobctl_complete
    set -l candidates (env _JOBCTL_COMPLETE=complete_fish _TYPER_COMPLETE_FISH_ACTION=get-args \\
        _TYPER_COMPLETE_ARGS=(commandline -cp) jobctl | string match -v -- '')
    if test (count $candidates) -gt 0
        printf '%s\\n' $candidates
    else
        __fish_complete_path (commandline -ct)
    end
end
complete --command jobctl --no-files --arguments '(__jobctl_complete)'
"""


def completion_script(shell: str) -> str:
    from typer._completion_shared import get_completion_script

    if shell not in SHELLS:
        raise UsageError(f"unknown shell {shell!r}: choose one of {', '.join(SHELLS)}")
    if shell == "fish":
        return FISH
    return get_completion_script(prog_name="jobctl", complete_var="_JOBCTL_COMPLETE", shell=shell)


def completion(
    shell: Annotated[
        str, typer.Argument(help="bash, zsh or fish.", autocompletion=completers.shells)
    ],
) -> None:
    """Print a shell completion script (source it, or save it where your shell looks)."""
    typer.echo(completion_script(shell).rstrip("\n"))


def register(app: typer.Typer) -> None:
    app.command()(completion)
