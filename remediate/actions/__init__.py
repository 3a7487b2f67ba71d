"""The action registry: every step of a playbook is one of these actions."""
