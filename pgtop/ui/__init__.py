"""The Textual dashboard: renders snapshots, turns keys into controller commands."""
