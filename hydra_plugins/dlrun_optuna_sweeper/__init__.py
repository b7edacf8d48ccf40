"""dlrun's Optuna sweeper for Hydra: `hydra/sweeper=dlrun_optuna` (the hparams_search presets choose it)."""
