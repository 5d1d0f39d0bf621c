KIND = "stylize"  # the model-file kind (core/modelfile.py) of stylisation networks: here, free of torch
