"""The benchmark's drivers, one script per client (see ``common.py``); a package so that the
runner imports ``drivers.common`` from here and nowhere else."""
