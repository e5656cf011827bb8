"""Screens and modal dialogs pushed over the dashboard."""
