"""The Keras callbacks dlopt adds to what Keras ships, one module per concern:

  metrics.py    learning rate, epoch time and throughput in the logs; metrics.csv
  progress.py   the progress bar or epoch lines; progress of a long test evaluation
  saving.py     checkpoints written whole, the room checked first
  resume.py     the `--resume` state: weights, optimizer, counters and random states
  averaging.py  the moving average of the weights swapped in for validation and checkpoints
  stopping.py   stop on a non-finite loss; stop on Ctrl-C or SIGTERM only between steps

Only saving.py and resume.py reach into Keras' private attributes.
"""
