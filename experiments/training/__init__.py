"""Training workflow: the RL algorithms, the loop's callback, periodic validation, run folders and checkpoints."""
