"""Helpers shared by every command: atomic files, hashing, console output, configs."""
