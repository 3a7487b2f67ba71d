"""The executor: runs a playbook's steps across targets, paced, journaled, resumable."""
