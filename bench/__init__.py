"""The benchmark: tfjanitor's sweep against a naive scanner on the embedded emulator (``python -m bench``).

One job per module:

- ``seeding``: the states, digests and locks seeded into the emulator (Terraform's formats from
  tests/support/builders.py), and the crowded bucket;
- ``runner``: each scanner run as a child process under ``measure.py``, and the medians of those runs;
- ``scenarios``: the run per N (seed, lower-bound probe, both scanners, with added latency), the crowded bucket,
  the handlers' cold start;
- ``targets``: correctness and the performance targets;
- ``report``: results.json's contents and results.md;
- ``cli``: the command line (``__main__`` and the ``bench.py`` shim run it).

``naive.py`` (the scanner compared against) and ``measure.py`` (the wrapper measuring each child) are run as
scripts by path; ``as_deployed.py`` is the sweeper as deployed (``python -m bench.as_deployed``).
"""
