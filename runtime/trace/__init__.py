"""The record: typed events, the canonical form and hash chain, the writer, reading a trace
back, verify, the approval audit and signing. Imports only the spine's ``ports`` and
``errors``, and ``manifest.inputs`` (the one way a file a user names is opened, traces and
key files included): everything that runs writes here, and nothing here runs anything."""
