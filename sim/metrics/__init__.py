"""Recording what happens in a run and turning it into tables."""
