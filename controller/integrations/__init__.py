"""Hooks that let acquisition software on another computer drive the box through its client.
Each imports its acquisition library, which the box itself never installs."""
