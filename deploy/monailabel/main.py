"""The MONAI Label app of this repository: every bundle with its prompts (see ``bundles/serving/app.py``).

Start it with ``python -m tools.serve --studies <folder>`` (binds to 127.0.0.1), which runs
``python -m monailabel.main start_server --app deploy/monailabel ...``.
"""

from bundles.serving.app import BundlesApp


class MedsegApp(BundlesApp):
    """The app MONAI Label loads from this folder."""
