"""Serve the bundles to 3D Slicer and OHIF with MONAI Label (install the ``serve`` extra first).

    python -m tools.serve --studies scans/                              # every bundle with weights in its models/
    python -m tools.serve --studies http://127.0.0.1:8042/dicom-web     # a DICOMweb archive (Orthanc, dcm4chee)
    python -m tools.serve --studies scans/ --models sat_nano,sam_med3d --device cuda:0
    python -m tools.serve --studies scans/ --models sam_med3d --model_dirs "{'sam_med3d': 'runs/sam_med3d/model'}"

It runs ``python -m monailabel.main start_server --app deploy/monailabel --uvicorn_app
bundles.serving.http_app:app`` with the options below as ``--conf`` values (see ``bundles/serving/app.py``;
``http_app`` computes requests beside the event loop and bounds what one request may ask). The server binds to 127.0.0.1, so only this machine
reaches it; give ``--host 0.0.0.0`` only behind MONAI Label's authentication (see README "Serving").
Nothing is downloaded: the app serves the repository's bundles with the weights you put in place.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import fire

from bundles.bundle_configs import bundle_names
from bundles.errors import CheckpointError, ConfigurationError, install_excepthook
from bundles.serving.limits import RequestLimits

APP = Path(__file__).resolve().parents[1] / "deploy" / "monailabel"


def serve(studies: str, models: str | tuple[str, ...] | None = None, host: str = "127.0.0.1", port: int = 8000,
          device: str = "auto", model_dirs: dict[str, str] | None = None, max_sessions: int = 4,
          session_idle_seconds: float = 600, runs_dir: str | None = None, tracking_uri: str | None = None,
          train_steps: int = 200, workers: int = 2, max_clicks: int = 64, max_prompts: int = 32, max_train_steps: int = 5000,
          max_trainings: int = 1, dryrun: bool = False) -> None:
    """Start a MONAI Label server for the bundles.

    Studies from a DICOMweb archive, e.g. a local Orthanc: --studies http://127.0.0.1:8042/dicom-web

    Args:
        studies: what annotators open. A folder of images (NIfTI, NRRD, or DICOM series), where labels are saved
            beneath it (``labels/final``) as MONAI Label's local datastore does. Or the DICOMweb URL of an archive
            such as Orthanc (the example above), where an image id is a SeriesInstanceUID and saved
            labels go back to the archive as DICOM-SEG. The archive's user name and password come from the
            environment variables MONAI_LABEL_DICOMWEB_USERNAME and MONAI_LABEL_DICOMWEB_PASSWORD, never from
            this command line; the series listed are those matching MONAI_LABEL_DICOMWEB_SEARCH_FILTER (CT by
            default). Give it as --studies.
        models: bundles to serve, comma-separated (``sat_nano,sam_med3d``); default: every bundle of
            sat_nano, sat_pro, sam_med3d, samed_lora, sam_unet whose weights are in its ``models/``.
        host: address to bind; 127.0.0.1 (this machine only) unless you put authentication in front.
        port: port to listen on.
        device: auto (CUDA when present, else CPU), cpu or cuda:N.
        model_dirs: bundle -> weights folder, for models not in the bundle's ``models/`` (a trained model's
            ``model/`` folder, which carries its settings in ``training.json``).
        max_sessions: click sessions kept by SAM-Med3D (one per client and image; each holds the image on the
            model grid and its window embeddings); SAM-UNet and the others keep none.
        session_idle_seconds: a click session unused this long is dropped.
        runs_dir: where /train runs write checkpoints, models and MLflow (default deploy/monailabel/runs).
        tracking_uri: an MLflow tracking server for /train runs (http://host:port); default SQLite per run.
        train_steps: training steps of a /train request that gives no max_steps.
        workers: requests computed at once, beside the server's event loop (more wait their turn; the server
            keeps answering meanwhile). Each model still runs one request at a time.
        max_clicks: clicks one inference request may carry (more: 422 naming this option).
        max_prompts: text prompts one SAT request may carry (more: 422).
        max_train_steps: training steps one /train request may ask for (more: 422).
        max_trainings: trainings run at once through /train?run_sync=true (more: 429).
        dryrun: print the MONAI Label command instead of starting it.
    """
    install_excepthook()
    if importlib.util.find_spec("monailabel") is None:
        raise ConfigurationError('the MONAI Label server needs monailabel, which is not installed: pip install -e ".[serve]" (from the repository root)')
    if isinstance(models, (list, tuple)):
        models = ",".join(models)
    unknown = set((model_dirs or {})) - set(bundle_names())
    if unknown:
        raise ConfigurationError(f"--model_dirs: unknown bundle(s) {', '.join(sorted(unknown))}; choose from {', '.join(bundle_names())}")
    remote = str(studies).startswith(("http://", "https://"))
    if not remote and not Path(studies).is_dir():
        raise ConfigurationError(f"{studies}: --studies must be a folder of images or a DICOMweb URL (http(s)://host/dicom-web)")
    if remote and "@" in str(studies).split("/")[2]:
        raise ConfigurationError("--studies: put no user name or password in the URL; set MONAI_LABEL_DICOMWEB_USERNAME and"
                                 " MONAI_LABEL_DICOMWEB_PASSWORD in the environment")
    RequestLimits.from_conf({"workers": workers, "max_clicks": max_clicks, "max_prompts": max_prompts,
                             "max_train_steps": max_train_steps, "max_trainings": max_trainings})  # the server's own check, now
    if isinstance(train_steps, int) and train_steps > max_train_steps:
        raise ConfigurationError(f"--train_steps {train_steps} is more than --max_train_steps {max_train_steps}: every /train"
                                 " request without max_steps would be refused")
    from bundles.engines.loaded_bundle import LoadedBundle
    from bundles.serving.app import model_dir_of, served_models

    conf = {"models": models, "device": device, "max_sessions": max_sessions, "session_idle_seconds": session_idle_seconds,
            "runs_dir": runs_dir, "tracking_uri": tracking_uri, "train_steps": train_steps, "workers": workers,
            "max_clicks": max_clicks, "max_prompts": max_prompts, "max_train_steps": max_train_steps, "max_trainings": max_trainings}
    conf.update({f"{b}_model_dir": str(Path(d).resolve()) for b, d in (model_dirs or {}).items()})
    chosen = served_models({k: str(v) for k, v in conf.items() if v is not None})
    if not chosen:
        raise ConfigurationError("no bundle has weights in its models/ folder; name the bundles with --models and their weights with --model_dirs")
    for bundle in chosen:  # every weights file checked now, not at the first request
        try:
            LoadedBundle(bundle, model_dir_of(bundle, conf), device).check_weights()
        except CheckpointError as e:
            raise CheckpointError(f"{e} (here: --model_dirs \"{{'{bundle}': '<folder with model.pt>'}}\")") from e
    command = [sys.executable, "-m", "monailabel.main", "start_server", "--app", str(APP),
               "--studies", str(studies) if remote else str(Path(studies).resolve()), "--host", host, "--port", str(port),
               "--uvicorn_app", "bundles.serving.http_app:app"]
    for key, value in conf.items():
        if value is not None:
            command += ["--conf", key, str(value)]
    print(" ".join(command), flush=True)
    if not dryrun:
        os.execv(sys.executable, command)


if __name__ == "__main__":
    fire.Fire(serve)
