"""Acting on runs from outside: the control folder and the run registry behind `status` and
`ctl`, undoing recorded effects (the mechanics the loop uses live) and the `rollback`
command's driver. ``undo`` sits below the loop; ``rollback`` above replay."""
