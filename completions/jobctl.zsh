#compdef jobctl

_jobctl_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _JOBCTL_COMPLETE=complete_zsh jobctl)
}

compdef _jobctl_completion jobctl
