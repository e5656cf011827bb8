"""Presentations: scenario files, the player that runs them on a real cluster, and the
presenter's dashboard (`pgtop demo`)."""
