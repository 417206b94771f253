"""govrun's terminal half: typer commands, rich rendering, prompts and the TUI."""
