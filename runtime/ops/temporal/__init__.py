"""Governed runs on Temporal (DESIGN section 6): the workflow owns a run's lifecycle and its
waiting — approvals and pauses as signals with durable timers — and the governed loop runs
in activities, segment by segment, each resuming from the trace. ``temporalio`` is an
optional extra (``govrun[temporal]``)."""
