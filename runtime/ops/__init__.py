"""Acting on runs from outside: the control folder and the run registry behind `status` and
`ctl`, the approvals channel, undoing recorded effects (the mechanics the loop uses live),
the `rollback` command's driver, and ``temporal/``: runs as workflows whose segments run on
any worker. ``undo``, ``control``, ``registry`` and ``approvals`` sit below the loop;
``rollback`` above replay; ``temporal`` above everything, since it runs all of it."""
