"""Many runs: sweep bookkeeping, the SLURM launcher, the Optuna search, the lessons' figures."""
