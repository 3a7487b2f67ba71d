"""What a run would do, told by rehearsing it: the dry run's forecast.

A dry run reads every target's facts. :mod:`remediate.forecast.model` turns them
into a model of the fleet; :mod:`remediate.forecast.rehearsal` rebuilds that fleet
in a throwaway sandbox on a simulated clock and runs the real executor on it (the
same playbook, parameters, canary batches, concurrency and API buckets), in a
child process so the sandbox never meets the AWS the dry run talks to;
:mod:`remediate.forecast.child` starts it and reads back the
:class:`~remediate.forecast.model.Forecast`: every mutating call by operation (merged
calls and rescue instances as the run makes them) and the simulated makespan.
"""
