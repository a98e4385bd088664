"""Script jobs: users' own training code (a `.py` or a folder) registered, versioned in the vault and
run by the workers in its own process group.

- `archive`: what an upload may hold, and unpacking it safely (no Django models).
- `selectors`, `services`: reads and writes of scripts and versions; the per-team launch grant.
- `launch`: launching a script job (permission, params, data) on the shared job machinery.
- `worker`, `workspace`, `outputs`: the worker side (the process group and its limits, the working
  folder and data file, the ONNX output registered with lineage); only the runner imports them.
"""
