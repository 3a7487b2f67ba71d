"""The fleet benchmark's pieces (see benchmarks/README.md): scenarios, the lower bound,
metering, one measured run, the report. ``benchmarks/fleet_bench.py`` is the command."""
