"""The ``mlpipe`` command line: argument parsing and output only. Nothing imports this package;
each command calls into render/, infra/, ops/, local/ or views/ for the work."""
