"""Scale-out on a Ray cluster: stylisation of long sequences and μNCA texture batches across machines.

* :mod:`.cluster`: connecting to a cluster (``--ray auto|local|ADDRESS``) and, for tests and benchmarks,
  a loopback-only local cluster started with ``ray start --head`` and stopped by its process ids.
* :mod:`.stylize`: ``atelier stylize run --ray`` / ``--resume`` (streamed guides, chunks as Ray tasks,
  per-frame manifest with content hashes) and ``atelier stylize train --ray --num-gpus``.
* :mod:`.nca_batch`: ``atelier nca train-batch``.

Ray is optional (``pip install atelier[ray]``); nothing here imports it before a command needs it.
"""
