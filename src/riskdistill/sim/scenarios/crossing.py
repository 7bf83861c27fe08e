"""placeholder until the scenario module lands."""
