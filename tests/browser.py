"""OHIF v3 in a real browser for the tests: Debian's chromium driven by Playwright (no browser download), on
the OHIF build inside the monailabel wheel, served by the server under test at ``<server>/ohif/``.

:func:`launched_chromium` starts ``chromium`` (the system one: ``executable_path=shutil.which("chromium")``)
headless; :class:`OhifViewer` is one page of it, offline (every request that does not go to 127.0.0.1 is
aborted: ``index.html`` asks for web fonts from the internet), with the console and the server's answers kept
for the assertion messages, and the steps an annotator takes in OHIF's MONAI Label mode: open a study from the
study list, connect the MONAI Label panel, run a model from the Class Prompts tab (class picker) or the Point
Prompts tab (one click in the axial viewport), and read back what the viewer holds: its segmentation state
(``window.services.segmentationService``, the label-map volume the plugin writes the answers into).

What the bundled MONAI Label plugin (``ohif/3933.bundle.*.js``, extension ``monai-label``) does, as read from it:
the server URL comes from the panel's text field (cookie ``MONAILABEL_SERVER_URL``, default port 8000); one
segmentation ``'1'`` is made at connect time with a segment for every label of every model (sorted by name,
numbered from 1); an answer is requested as ``result_extension: .nrrd, result_dtype: uint8``
(``MonaiLabelClient.infer``) and its raw voxels are written into that label map (``MonaiLabelPanel.updateView``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, Response, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

__all__ = ["CHROMIUM_ARGS", "OhifViewer", "launched_chromium"]

#: Headless, no sandbox (containers), no GPU, nothing fetched in the background.
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking"]

#: Milliseconds a step may take on two slow shared cores (OHIF's first load, a model answer).
STEP_TIMEOUT_MS = 120_000

_LABELMAP_COUNTS = """() => {
  const service = window.services.segmentationService;
  const volume = service.getLabelmapVolume('1');
  if (!volume) return null;
  const data = volume.voxelManager.getCompleteScalarDataArray();
  const counts = {};
  for (let i = 0; i < data.length; i++) if (data[i]) counts[data[i]] = (counts[data[i]] || 0) + 1;
  return counts;
}"""

_SEGMENT_INDICES = """() => {
  const segmentation = window.services.segmentationService.getSegmentations()[0];
  const indices = {};
  if (segmentation) for (const s of Object.values(segmentation.segments)) indices[s.label] = s.segmentIndex;
  return indices;
}"""

_SEGMENT_BOX = """(value) => {
  const volume = window.services.segmentationService.getLabelmapVolume('1');
  const [nx, ny] = volume.dimensions;
  const data = volume.voxelManager.getCompleteScalarDataArray();
  const lo = [Infinity, Infinity, Infinity], hi = [-1, -1, -1];
  for (let n = 0; n < data.length; n++) {
    if (data[n] !== value) continue;
    const ijk = [n % nx, Math.floor(n / nx) % ny, Math.floor(n / (nx * ny))];
    for (let a = 0; a < 3; a++) { lo[a] = Math.min(lo[a], ijk[a]); hi[a] = Math.max(hi[a], ijk[a]); }
  }
  return {lo, hi};
}"""

_VOXEL_VALUE = """([i, j, k]) => {
  const volume = window.services.segmentationService.getLabelmapVolume('1');
  const [nx, ny] = volume.dimensions;
  return volume.voxelManager.getCompleteScalarDataArray()[i + j * nx + k * nx * ny];
}"""

_DISPLAYED_GRID = """() => {
  const {activeViewportId} = window.services.viewportGridService.getState();
  const viewport = window.services.cornerstoneViewportService.getCornerstoneViewport(activeViewportId);
  const volume = window.cornerstone.cache.getVolume(viewport.getVolumeId());
  return {viewport: activeViewportId, dimensions: Array.from(volume.dimensions), origin: Array.from(volume.origin),
          spacing: Array.from(volume.spacing), direction: Array.from(volume.direction)};
}"""

_HAS_PROBE_POINT = """() => window.cornerstoneTools.annotation.state.getAllAnnotations()
  .some(a => a.metadata.toolName === 'ProbeMONAILabel')"""

_CANVAS_POINT = """([i, j]) => {
  const {activeViewportId} = window.services.viewportGridService.getState();
  const viewport = window.services.cornerstoneViewportService.getCornerstoneViewport(activeViewportId);
  const volume = window.cornerstone.cache.getVolume(viewport.getVolumeId());
  const k = Math.round(volume.imageData.worldToIndex(viewport.getCamera().focalPoint)[2]);
  const canvas = viewport.worldToCanvas(volume.imageData.indexToWorld([i, j, k]));
  const box = viewport.element.getBoundingClientRect();
  return {k, x: box.left + canvas[0], y: box.top + canvas[1]};
}"""

# the panel's own client (MonaiLabelPanel.client(), a MonaiLabelClient) found through React's fiber of the panel
_SAVE_THROUGH_PLUGIN_CLIENT = """async (labelNames) => {
  const element = document.querySelector('.monaiLabelPanel');
  let fiber = element[Object.keys(element).find(k => k.startsWith('__reactFiber$'))];
  while (fiber && !(fiber.stateNode && typeof fiber.stateNode.client === 'function')) fiber = fiber.return;
  if (!fiber) throw new Error('MonaiLabelPanel not found');
  const panel = fiber.stateNode;
  const {displaySet} = panel.getActiveViewportInfo();
  const voxels = window.services.segmentationService.getLabelmapVolume('1').voxelManager.getCompleteScalarDataArray();
  const answer = await panel.client().save_label(displaySet.SeriesInstanceUID, new Blob([voxels]), {label_names: labelNames});
  return {status: answer.status ?? (answer.response && answer.response.status), data: answer.data ?? null,
          series: displaySet.SeriesInstanceUID, bytes: voxels.length};
}"""


@contextmanager
def launched_chromium() -> Iterator[Browser]:
    """Debian's chromium (``shutil.which("chromium")``) under Playwright, closed at the end."""
    executable = shutil.which("chromium")
    if not executable:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class OhifViewer:
    """One offline page of OHIF, with what it logged (``console``) and the server's answers (``answers``:
    method, path and status of every non-static request to 127.0.0.1)."""

    page: Page
    server: str
    shots: Path
    console: list[str] = field(default_factory=list)
    answers: list[tuple[str, str, int]] = field(default_factory=list)

    @classmethod
    def open(cls, browser: Browser, server: str, shots: Path) -> OhifViewer:
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(STEP_TIMEOUT_MS)
        viewer = cls(page, server.rstrip("/"), shots)
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("http://127.0.0.1", "data:", "blob:"))
                   else route.abort())
        page.on("console", lambda m: viewer.console.append(f"{m.type}: {m.text[:300]}") if m.type == "error" else None)
        page.on("pageerror", lambda e: viewer.console.append(f"pageerror: {e}"))
        page.on("response", viewer._keep)
        return viewer

    def _keep(self, response: Response) -> None:
        path = response.url.removeprefix(self.server)
        if path != response.url and not path.startswith(("/ohif/", "/proxy/dicom/wado/studies")):
            self.answers.append((response.request.method, path.split("?")[0], response.status))

    def log(self) -> str:
        """The console errors and server answers so far (for assertion messages)."""
        return "\n".join([*self.console[-30:], *(f"{m} {p} -> {s}" for m, p, s in self.answers[-30:])])

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def open_study(self, patient_id: str, mode: str = "MONAI Label") -> None:
        """The study list, the row of ``patient_id``, then ``mode``'s button; waits until the volume is shown."""
        self.page.goto(f"{self.server}/ohif/", wait_until="domcontentloaded")
        self.page.locator("span.truncate", has_text=patient_id).first.click()
        banner = self.page.get_by_role("button", name="Confirm and Hide")
        if banner.is_visible():
            banner.click()
        self.screenshot("01_study_list")
        self.page.get_by_role("button", name=mode).click()
        self.page.wait_for_selector("#monailabelServerURL")
        self.page.wait_for_function("""() => {
          const state = window.services && window.services.viewportGridService.getState();
          const viewport = state && window.services.cornerstoneViewportService.getCornerstoneViewport(state.activeViewportId);
          const volume = viewport && viewport.getVolumeId && window.cornerstone.cache.getVolume(viewport.getVolumeId());
          return volume && volume.loadStatus && volume.loadStatus.loaded;
        }""")

    def connect(self) -> None:
        """The panel's server field set to this server, then its connect button; waits for the segmentation
        the plugin makes (one segment per label of every model)."""
        self.page.fill("#monailabelServerURL", f"{self.server}/")
        self.page.locator(".settingsTable button.actionButton").click()
        self.page.get_by_text("Class Prompts").wait_for()
        self.page.wait_for_function("() => !!window.services.segmentationService.getLabelmapVolume('1')")

    def _tab(self, title: str):
        self.page.locator("label.tab-label", has_text=title).click()
        return self.page.locator(".tab", has=self.page.locator("label.tab-label", has_text=title))

    def run_class_prompts(self, model: str, classes: list[str]) -> tuple[dict[str, Any], bytes]:
        """Class Prompts tab: ``model`` chosen, ``classes`` ticked, Run; returns the request's params and the answer."""
        tab = self._tab("Class Prompts")
        tab.locator("select.selectBox").select_option(model)
        for name in classes:
            row = tab.locator("table.optionsTable tr").filter(has=self.page.locator(f"td:text-is('{name}')"))
            row.locator("input[type=checkbox]").check()
        return self._run(tab, model)

    def run_point_prompt(self, model: str, label: str, voxel: tuple[int, int]) -> tuple[dict[str, Any], bytes]:
        """Point Prompts tab: ``model`` chosen, ``label`` picked, one click on in-plane voxel ``voxel`` (i, j) of
        the axial viewport's shown slice, Run; returns the request's params and the answer."""
        tab = self._tab("Point Prompts")
        tab.locator("select.selectBox").select_option(model)
        tab.locator("table.optionsTable tr").filter(has=self.page.locator(f"td:text-is('{label}')")).click()
        point = self.page.evaluate(_CANVAS_POINT, list(voxel))
        for _ in range(3):  # a click landing while the panel still re-renders is sometimes lost: click again
            self.page.mouse.click(point["x"], point["y"])
            try:
                self.page.wait_for_function(_HAS_PROBE_POINT, timeout=5000)
                break
            except PlaywrightTimeoutError:
                continue
        return self._run(tab, model)

    def _run(self, tab, model: str) -> tuple[dict[str, Any], bytes]:
        with self.page.expect_response(lambda r: f"/infer/{model}?" in r.url, timeout=STEP_TIMEOUT_MS) as answer:
            tab.locator("button.actionButton", has_text="Run").click()
        response = answer.value
        body = response.body()
        assert response.status == 200, f"{response.url}: {response.status} {body[:500]!r}\n{self.log()}"
        form = response.request.post_data or ""
        params = json.loads(form.split('name="params"', 1)[1].split("\r\n\r\n", 1)[1].split("\r\n--", 1)[0])
        return params, body

    def one_up(self) -> None:
        """The active viewport alone in the grid (OHIF's ``toggleOneUp``, as a double click does)."""
        self.page.evaluate("() => window.commandsManager.runCommand('toggleOneUp')")
        self.page.wait_for_function("() => window.services.viewportGridService.getState().viewports.size === 1")
        self.page.wait_for_timeout(1000)  # the viewport's first render

    def segment_indices(self) -> dict[str, int]:
        """Segment label -> its value in the label map (segmentation ``'1'``)."""
        return self.page.evaluate(_SEGMENT_INDICES)

    def labelmap_counts(self) -> dict[int, int]:
        """Label-map value -> voxels holding it."""
        return {int(k): v for k, v in (self.page.evaluate(_LABELMAP_COUNTS) or {}).items()}

    def wait_for_voxels(self, value: int) -> None:
        """Until the label map holds ``value`` somewhere (the plugin writes answers asynchronously)."""
        self.page.wait_for_function(f"() => {{ const c = ({_LABELMAP_COUNTS})(); return c && c[{int(value)}] > 0; }}")

    def segment_box(self, value: int) -> tuple[list[int], list[int]]:
        """The inclusive voxel bounding box (i, j, k) of ``value`` in the label map."""
        box = self.page.evaluate(_SEGMENT_BOX, value)
        return box["lo"], box["hi"]

    def voxel_value(self, ijk: list[int]) -> int:
        return int(self.page.evaluate(_VOXEL_VALUE, list(ijk)))

    def displayed_grid(self) -> dict[str, Any]:
        """The shown volume's grid (cornerstone: dimensions, LPS origin, spacing, direction)."""
        return self.page.evaluate(_DISPLAYED_GRID)

    def save_through_plugin_client(self, label_names: dict[str, int]) -> dict[str, Any]:
        """``PUT /datastore/label`` sent by the plugin's own ``MonaiLabelClient.save_label`` with the label
        map's voxels (``label.bin``) and ``{"label_names": ...}``: the bundled panel has no button calling it."""
        return self.page.evaluate(_SAVE_THROUGH_PLUGIN_CLIENT, label_names)
