"""The stages of the governed step: the toolbox that makes a call canonical, policy and the
decision, guards and budgets, approvers and standing rules, the approval preview,
verification checks, routing, compaction, and the checks a run makes before its first step.
May import ``manifest``, ``trace``, ``tools``, ``models`` and the spine's ``ports``; never
the loop, replay, views or ops."""
