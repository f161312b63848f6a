"""Side-by-side evaluation of SR methods (``scripts/benchmark.py``): the methods and the comparison grids."""
