"""The floor every other package stands on: argument checks, plain-data configs, files, devices.

Nothing here imports another reszoo package. ``checks`` is the one validation layer,
``plaindata`` the frozen typed configs, ``fileio`` atomic writes, checksums and locks,
``devices``/``accelerator``/``cpuinfo`` device policy and facts, ``choices`` the named options
the library accepts (plain data, so the CLI's parser needs no torch), ``text`` plain-text tables,
``lazy`` package faces that load on first use.
"""
