"""``sgdepth-ros`` subcommands of the offline half (registered in sgdepth_ros.cli.COMMANDS)."""
