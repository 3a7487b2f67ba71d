"""`remediate triage`: what is wrong with each instance and WorkSpace, before anything changes.

:mod:`.serial` reads the serial log, :mod:`.screen` the boot screen, :mod:`.classes`
combines them with the status checks into a class per target, :mod:`.routes` says
which repair each broken instance could take and what blocks it, :mod:`.reading`
makes the paced calls, :mod:`.render` prints, :mod:`.tagging` tags the classes.
"""
