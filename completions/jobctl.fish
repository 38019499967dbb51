function __jobctl_complete
    set -l candidates (env _JOBCTL_COMPLETE=complete_fish _TYPER_COMPLETE_FISH_ACTION=get-args \
        _TYPER_COMPLETE_ARGS=(commandline -cp) jobctl | string match -v -- '')
    if test (count $candidates) -gt 0
        printf '%s\n' $candidates
    else
        __fish_complete_path (commandline -ct)
    end
end
complete --command jobctl --no-files --arguments '(__jobctl_complete)'
