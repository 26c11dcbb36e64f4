"""Shared pytest set-up: tests run from the source tree, never touch real hardware."""
