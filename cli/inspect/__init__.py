"""``govrun inspect``: a Textual TUI that reads a trace like a debugger session.

Nothing here is imported until the command runs, so ``govrun --help`` stays fast.
"""
