"""The Toy3D family's glue: what its network takes (``inputs.py``), its click session (``session.py``), its
MONAI Label task (``serving.py``), training samples and module (``training_data.py``, ``training.py``) and its
weights command (``convert.py``). Everything else comes from the core; CONTRIBUTING.md "Add a family" walks
through it."""
