"""Command-line interface: ``riskdistill <group> <verb>`` (see ``riskdistill --help``)."""
