"""Hyperparameter search with Optuna: the sweeper's side (space, study, ask-and-tell) and the job's side (pruning).

The Hydra plugin in hydra_plugins/dlrun_optuna_sweeper is a thin shell around `dlrun.sweeps.search.sweeper`, so that
Hydra's plugin scan at start-up imports no Optuna.
"""
