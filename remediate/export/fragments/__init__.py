"""The Step Functions fragments of the built-in actions, one module per action module.

Each action's ``asl()`` method (see :class:`remediate.actions.contract.Action`)
calls its function here, so action modules stay small and free of ASL.
"""
