"""Ways to read a finished (or running) trace: the trajectory, the timeline the inspector
walks, the one-screen summary, and the step-by-step diff of two runs. Read-only: may import
``trace`` and ``manifest``, never the loop or anything that acts."""
