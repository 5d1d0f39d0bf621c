"""What the Python running Atelier can do: which libraries, devices and kernels it has."""
