"""The playbook language: its schema as data, the YAML loader, the validator, the model."""
