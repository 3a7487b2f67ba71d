"""What keeps two runs off one target, besides the journal's lock.

* :mod:`remediate.claims.registry`: the runs alive on this host and the targets
  each holds, whatever journal they write (one folder per user, see
  :func:`~remediate.claims.registry.state_dir`).
* :mod:`remediate.claims.tag`: the claim a run writes on each target in AWS (the
  tag ``remediate:claim``), which runs on other hosts read before they start.
* :mod:`remediate.claims.tag_io`: how that tag is read, written and removed for
  each kind of target, as requests the executor paces and journals.

The executor drives them (:mod:`remediate.executor.claiming`); README's "Two
operators, one fleet" says what each layer guarantees.
"""
