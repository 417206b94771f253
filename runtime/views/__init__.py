"""Ways to read a finished (or running) trace: the trajectory, the timeline the inspector
walks, the one-screen summary, the step-by-step diff of two runs, and ``telemetry/``, the
same events as OpenTelemetry spans (after the fact, or live beside a run). Read-only: may
import ``trace`` and ``manifest``, never the loop or anything that acts; ``telemetry`` sits
lower than the rest (below ``run``, which feeds it live)."""
