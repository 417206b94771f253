"""The agent `govrun init` writes: a commented manifest, its scripted model and a workspace.
The files are package data, copied as they are (the manifest's `name:` aside)."""
