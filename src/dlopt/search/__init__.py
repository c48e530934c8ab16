"""Hyperparameter search on Optuna: `dlopt tune`. Every trial is an ordinary run folder.

spec.py     the `search:` section and its checks (no Optuna)
storage.py  where the study lives: SQLite in the study folder, a database server, a journal file
trial.py    one trial: sample values, train them as a run, report each epoch, maybe be pruned
study.py    the worker loop: open or join the study, run trials, keep best.yaml and the plots
"""
