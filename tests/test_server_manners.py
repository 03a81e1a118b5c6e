"""The live server under a careless or hostile client and under load: every malformed body or field and every
request over a bound is a 4xx with one line (never a 500), a slow inference never stalls another model's
clicks, and SIGTERM stops the server within seconds while a request runs.

The server (``tests/live_server.py``) serves tiny models on a studies folder with the oblique LPS phantom; SAT
runs behind :class:`tests.stand_ins.SlowPredictor` (:data:`SLOW_S` seconds before each answer), the bounds
are set low: ``--max_clicks 8 --max_prompts 4 --max_train_steps 10 --train_steps 2 --max_trainings 1 --workers 2``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.needs import require

require(packages=("monailabel",))

import requests  # noqa: E402 - after the skip: a dependency of monailabel

from tests.live_server import REPO, infer, phantom_studies, result, running_server, tiny_model_dirs  # noqa: E402

SLOW_S = 12.0  #: seconds SAT's stand-in waits before each answer
CLICK = [24, 20, 10]  #: the phantom's bright ellipsoid centre (voxel indices)
BOUNDS = ["--max_clicks", "8", "--max_prompts", "4", "--max_train_steps", "10", "--train_steps", "2", "--max_trainings", "1", "--workers", "2"]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_sat_model):
    root = tmp_path_factory.mktemp("manners")
    studies, mask = phantom_studies(root)
    slow = root / "slow.json"
    slow.write_text(json.dumps({"predictor": {"_target_": "tests.stand_ins.SlowPredictor", "seconds": SLOW_S,
                                              "inner": f"%{REPO / 'sat_nano/configs/inference.json'}#predictor"}}))
    with running_server(root, studies, tiny_model_dirs(root, tiny_sat_model, [slow]), BOUNDS) as live:
        yield {"live": live, "url": live.url, "mask": mask}


def _alive(server) -> bool:
    return requests.get(f"{server['url']}/info/", timeout=10).status_code == 200 and server["live"].process.poll() is None


def _form(server, method: str, path: str, query: dict | None = None, fields: dict | None = None,
          files: dict | None = None, body=None) -> requests.Response:
    parts = {**{k: (None, v) for k, v in (fields or {}).items()}, **(files or {})}
    return requests.request(method, f"{server['url']}{path}", params=query, files=parts or None, json=body, timeout=120)


LABEL = ("label.nii.gz", b"not a label")
MALFORMED = [
    # (method, path, query, form fields, files, json body, status, words of the one-line answer)
    ("POST", "/infer/sam_med3d", {"image": "phantom"}, {"params": "{not json"}, None, None, 422, "params is not valid JSON"),
    ("POST", "/infer/sam_med3d", {"image": "phantom"}, {"params": "[1, 2]"}, None, None, 422, "must be a JSON object"),
    ("POST", "/infer/sam_med3d", {"image": "phantom"}, {"params": "\"text\""}, None, None, 422, "must be a JSON object"),
    ("POST", "/infer/sam_med3d", {"image": "phantom"}, {"params": json.dumps({"x": "a" * (2 << 20)})}, None, None, 400, "exceeded maximum size"),
    ("POST", "/infer/sam_med3d", {}, {"params": "{}"}, None, None, 422, "no image"),
    ("POST", "/infer/sam_med3d", {"image": "no_such_image"}, {"params": json.dumps({"foreground": [CLICK]})}, None, None, 422, "no readable image"),
    ("POST", "/infer/sam_med3d", {"image": "phantom"}, {"params": json.dumps({"foreground": [CLICK] * 9})}, None, None, 422, "--max_clicks"),
    ("POST", "/infer/sam_med3d", {"image": "phantom"}, {"params": json.dumps({"foreground": [CLICK] * 20000})}, None, None, 422, "--max_clicks"),
    ("POST", "/infer/sam_unet", {"image": "phantom"}, {"params": json.dumps({"points": [CLICK] * 9, "point_labels": [1] * 9})}, None, None, 422, "--max_clicks"),
    ("POST", "/infer/sat_nano", {"image": "phantom"}, {"params": json.dumps({"prompts": ["liver"] * 5})}, None, None, 422, "--max_prompts"),
    ("POST", "/infer/sat_nano", {"image": "phantom"}, {"params": json.dumps({"prompts": {"a": 1}})}, None, None, 422, "must be a list"),
    ("POST", "/infer/sam_med3d", {"image": "phantom"}, {"params": json.dumps({"foreground": "all"})}, None, None, 422, "must be a list"),
    ("PUT", "/datastore/label", {"image": "phantom", "tag": "final"}, {"params": "{oops"}, {"label": LABEL}, None, 422, "params is not valid JSON"),
    ("PUT", "/datastore/label", {"image": "phantom", "tag": "final"}, {"params": "[]"}, {"label": LABEL}, None, 422, "must be a JSON object"),
    ("PUT", "/datastore/label", {"image": "no_such_image", "tag": "final"}, {"params": "{}"}, {"label": LABEL}, None, 404, "no_such_image"),
    ("PUT", "/datastore/image/info", {"image": "phantom"}, {"info": "nope"}, None, None, 422, "info is not valid JSON"),
    ("PUT", "/datastore/label/info", {"label": "phantom", "tag": "final"}, {"info": "1"}, None, None, 422, "info must be a JSON object"),
    ("PUT", "/datastore/image", {}, {"params": "{x"}, {"file": ("a.nii.gz", b"xx")}, None, 422, "params is not valid JSON"),
    ("POST", "/train/sat_nano", {"run_sync": "true"}, None, None, {"max_steps": 11}, 422, "--max_train_steps"),
    ("POST", "/train/sat_nano", {"run_sync": "true"}, None, None, {"max_steps": 10 ** 9}, 422, "--max_train_steps"),
    ("POST", "/train/sat_nano", {"run_sync": "true"}, None, None, {"max_steps": "$1"}, 422, "max_steps"),
    ("POST", "/train/sat_nano", {"run_sync": "true"}, None, None, [1, 2], 422, ""),
    ("POST", "/train/no_such_model", {"run_sync": "true"}, None, None, {}, 404, "sat_nano"),
]


@pytest.mark.parametrize(("method", "path", "query", "fields", "files", "body", "status", "words"), MALFORMED,
                         ids=[f"{m[0]} {m[1]} {m[7] or m[6]}" for m in MALFORMED])
def test_a_malformed_or_oversized_request_is_a_4xx_in_one_line_and_the_server_goes_on(server, method, path, query, fields, files,
                                                                                     body, status, words):
    answer = _form(server, method, path, query, fields, files, body)
    assert answer.status_code == status, answer.text[:500]
    detail = answer.json()["detail"]
    text = detail if isinstance(detail, str) else json.dumps(detail)
    assert words in text and "\n" not in text and "Traceback" not in text, text[:500]
    assert _alive(server)


def test_a_click_on_another_model_is_answered_while_a_slow_inference_runs(server):
    """SAT's stand-in holds its model for SLOW_S seconds; SAM-Med3D clicks and /info answer meanwhile."""
    first = infer(server["url"], "sam_med3d", "phantom", {"foreground": [CLICK], "client_id": "stall"})
    assert first.status_code == 200, first.text[:300]  # the session's image encoding is done before the slow request
    slow: dict = {}

    def run_slow() -> None:
        started = time.perf_counter()
        slow["answer"] = infer(server["url"], "sat_nano", "phantom", {"prompts": ["liver"]}, timeout=300)
        slow["seconds"] = time.perf_counter() - started

    thread = threading.Thread(target=run_slow)
    thread.start()
    time.sleep(1.0)
    latencies = []
    for i in range(5):  # the same object's clicks, one more each time: decoded from the cached embedding
        started = time.perf_counter()
        answer = infer(server["url"], "sam_med3d", "phantom", {"foreground": [CLICK], "background": [[10 + i, 8, 4]], "client_id": "stall"})
        latencies.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text[:300]
        started = time.perf_counter()
        assert _alive(server) and time.perf_counter() - started < 1.0
    assert thread.is_alive(), "the slow request must still run while the clicks were answered"
    thread.join()
    assert slow["answer"].status_code == 200 and slow["seconds"] >= SLOW_S
    assert max(latencies) < 2.0, f"click latencies while a slow inference ran: {latencies}"
    print(f"click latency under a slow request: median {statistics.median(latencies):.3f} s, max {max(latencies):.3f} s")


def test_concurrent_clicks_on_one_session_are_taken_one_at_a_time(server):
    """Ten requests of one client at once, each a different click history of one object: each answer equals
    the answer of the same history asked alone (no request saw another's half-applied clicks)."""
    histories = [{"foreground": [CLICK], "background": [[8 + i, 6, 3]], "client_id": "race"} for i in range(10)]
    with ThreadPoolExecutor(max_workers=10) as pool:
        together = list(pool.map(lambda p: infer(server["url"], "sam_med3d", "phantom", p), histories))
    for params, answer in zip(histories, together):
        alone = infer(server["url"], "sam_med3d", "phantom", {**params, "client_id": "alone"})
        assert (result(answer)[1].get_fdata() == result(alone)[1].get_fdata()).all()


def test_a_second_training_beyond_max_trainings_is_refused_while_the_first_runs(server):
    with open(server["mask"], "rb") as f:
        saved = _form(server, "PUT", "/datastore/label", {"image": "phantom", "tag": "final"},
                      {"params": json.dumps({"label_info": [{"name": "liver", "idx": 1}]})}, {"label": ("phantom.nii.gz", f)})
    assert saved.status_code == 200, saved.text[:300]
    first: dict = {}
    thread = threading.Thread(target=lambda: first.update(answer=_form(server, "POST", "/train/sat_nano", {"run_sync": "true"},
                                                                         body={"max_steps": 2, "device": "cpu"})))
    thread.start()
    time.sleep(2.0)
    second = _form(server, "POST", "/train/sat_nano", {"run_sync": "true"}, body={"max_steps": 1, "device": "cpu"})
    thread.join()
    assert second.status_code == 429 and "--max_trainings" in second.json()["detail"], second.text[:300]
    assert first["answer"].status_code == 200, first["answer"].text[:500]


def _junk_request(server, method: str, path: str) -> requests.Response:
    """``method path`` with every path parameter an unknown id, junk query values and a malformed body."""
    url = server["url"] + re.sub(r"\{[^}]+\}", "no_such_id", path.replace("{path:path}", "no/such/path"))
    query = {"image": "no_such_image", "label": "no_such_label", "tag": "final", "model": "no_such_model", "strategy": "no_such"}
    if method in ("GET", "DELETE"):
        return requests.request(method, url, params=query, timeout=60)
    return requests.request(method, url, params=query, data=b"{not json", headers={"content-type": "application/json"}, timeout=60)


def test_every_route_of_the_app_answers_junk_with_a_4xx_never_a_500(server):
    """Every route MONAI Label serves here (read from the app's own OpenAPI), given unknown ids and a body that
    is not JSON: never a 5xx, and the server goes on."""
    spec = requests.get(f"{server['url']}/openapi.json", timeout=30).json()
    routes = [(method.upper(), path) for path, methods in spec["paths"].items() for method in methods]
    assert len(routes) > 30 and ("POST", "/infer/{model}") in routes
    answers = {f"{method} {path}": _junk_request(server, method, path) for method, path in routes
               if not path.startswith(("/proxy/", "/ohif/")) and path not in ("/reload", "/logs/")}
    errors = {route: (a.status_code, a.text[:120]) for route, a in answers.items() if a.status_code >= 500}
    assert not errors, errors
    assert _alive(server)


def test_sigterm_stops_the_server_within_seconds_while_a_request_runs(server):
    """Last test of the module: the server is gone afterwards."""
    thread = threading.Thread(target=lambda: _form(server, "POST", "/infer/sat_nano", {"image": "phantom"},
                                                   {"params": json.dumps({"prompts": ["liver"]})}), daemon=True)
    thread.start()
    time.sleep(2.0)
    process = server["live"].process
    started = time.perf_counter()
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=15)
    assert time.perf_counter() - started < 8.0
