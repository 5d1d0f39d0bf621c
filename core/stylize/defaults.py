"""The stylisation defaults, in one place: the trainer's keyword defaults (model.py), the command
line's (cli.py), the live session's (live.py) and the add-on's properties all read them.

Free of torch, so ``--help`` and Blender's own Python can read it without loading the network.
"""

TRAIN_MINUTES = 5.0    # a 256² shot's look is learnt in a few minutes on 2 CPU cores (docs/stylize.md)
LEARNING_RATE = 4e-3   # Adam's peak rate, warmed up and cosine-decayed: the fast network learns stably at it
TILE = 512             # pixels a side of an inference tile: a 4K frame needs only one tile's activations
