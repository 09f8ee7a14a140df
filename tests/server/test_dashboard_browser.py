"""The dashboard in a real headless browser, fed by a real session streamed over ZeroMQ; and the
server's guards (token, WebSocket origin, path traversal) probed from outside.

Oracles: the records the test sends (participant, trial, fixation count, positions), the server's
own ``GET /api/images/{id}`` for every score cell the page shows, the stimulus file on disk for
the image route, and the persisted data for what a restarted server shows after a reconnect.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from urllib.parse import urlsplit

import httpx
import pytest

from experiment.sender import Sender
from lookwhere.protocol import FixationRecord, GazeSample, Heartbeat, MicLevel, SessionStart, TrialEnd, TrialStart
from stimuli.geometry import DisplayGeometry
from stimuli.sets import StimulusSet
from tests.server._serve import serve_process
from tests.server.conftest import UNTRAINED_MAPS

IMAGE = "1001"
PARTICIPANT = "P07"
STIMULUS_MS = 20_000.0  # long enough that the countdown is still running at the end of the test
#: (x, y) in image pixels, duration in ms: three fixations of the first trial
FIXATIONS = ((400.0, 300.0, 320.0), (210.0, 140.0, 180.0), (620.0, 420.0, 450.0))
BASELINES = {"center_bias", "dataset_prior", "blank", "uniform"}  # one participant: no leave-one-out human map
WAIT_MS = 10_000


def _deliver(sender: Sender, record_type, **fields):
    """Send a record and service the sender until the server acknowledged it."""
    record = sender.send(record_type(**fields))
    deadline = time.monotonic() + 10.0
    while sender.acked_seq < record.seq:
        assert time.monotonic() < deadline, f"the server did not acknowledge {record.kind} seq {record.seq}"
        sender.service()
        time.sleep(0.005)
    return record


def _deliver_fixation(
    sender: Sender,
    geometry: DisplayGeometry,
    *,
    trial: int,
    image: str,
    x: float,
    y: float,
    start_ms: float,
    duration_ms: float,
    shown_ms: float,
) -> None:
    """Deliver one fixation at image pixel (x, y), the same times on every clock."""
    x_display, y_display = (float(v[0]) for v in geometry.image_to_display([x], [y]))
    _deliver(
        sender,
        FixationRecord,
        participant=PARTICIPANT,
        trial=trial,
        image=image,
        eye="R",
        start_ms=start_ms,
        end_ms=start_ms + duration_ms,
        duration_ms=duration_ms,
        x_display_px=x_display,
        y_display_px=y_display,
        x_image_px=x,
        y_image_px=y,
        stimulus_duration_ms=shown_ms,
        pupil=float("nan"),
        start_tracker_ms=start_ms,
        end_tracker_ms=start_ms + duration_ms,
        start_session_ms=start_ms,
        end_session_ms=start_ms + duration_ms,
    )


def _fixation(sender: Sender, geometry: DisplayGeometry, number: int) -> None:
    """Fixation ``number`` of FIXATIONS, preceded by a gaze sample on it (the live cursor)."""
    x, y, duration_ms = FIXATIONS[number]
    x_display, y_display = (float(v[0]) for v in geometry.image_to_display([x], [y]))
    start_ms = 200.0 + 600.0 * number
    _deliver(
        sender,
        GazeSample,
        trial=0,
        t_tracker_ms=start_ms,
        t_session_ms=start_ms,
        eye="R",
        x_display_px=x_display,
        y_display_px=y_display,
        pupil=1500.0,
    )
    _deliver_fixation(
        sender,
        geometry,
        trial=0,
        image=IMAGE,
        x=x,
        y=y,
        start_ms=start_ms,
        duration_ms=duration_ms,
        shown_ms=STIMULUS_MS,
    )


def _score_cells(page) -> dict[tuple[str, str], tuple[str, str]]:
    """(map, metric) → (displayed text, data-value) of every cell of the score table."""
    cells = page.eval_on_selector_all(
        '[data-testid="score-table"] td[data-map]',
        "cells => cells.map(c => [c.dataset.map, c.dataset.metric, c.textContent, c.dataset.value])",
    )
    return {(name, metric): (text, value) for name, metric, text, value in cells}


def _assert_cells_equal_api(cells: dict, scores: dict) -> None:
    """Every displayed score is the API's value, exactly in ``data-value`` and to 3 decimals in text."""
    expected = {(name, metric): value for name, values in scores.items() for metric, value in values.items()}
    assert set(cells) == set(expected)
    for key, value in expected.items():
        text, raw = cells[key]
        if value is None:  # NaN on the server (e.g. a metric undefined for a flat map)
            assert (text, raw) == ("—", ""), key
        else:
            assert float(raw) == value, key
            assert abs(float(text) - value) <= 0.0005 + 1e-12, (key, text, value)


def _wait_cells_equal(page, scores: dict) -> None:
    """Wait until the score table shows ``scores`` (the API's), then check every cell."""
    page.wait_for_function(
        "(expected) => Object.entries(expected).every(([key, value]) => document.querySelector("
        "`[data-testid=score-table] td[data-map=${key.split('|')[0]}][data-metric=${key.split('|')[1]}]`)"
        "?.dataset.value === (value === null ? '' : String(value)))",
        arg={f"{name}|{metric}": value for name, values in scores.items() for metric, value in values.items()},
    )
    _assert_cells_equal_api(_score_cells(page), scores)


@pytest.mark.timeout(120)
def test_live_session_on_the_dashboard(browser, osie_stimuli, untrained_store, tmp_path, artifacts):
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    geometry = DisplayGeometry.fit(*StimulusSet(osie_stimuli).size(IMAGE))
    data_dir = tmp_path / "data"
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    testid = page.get_by_test_id
    script_errors, console_errors = [], []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    with serve_process(osie_stimuli, data_dir, "--maps", str(untrained_store)) as server:
        api = httpx.Client(base_url=server["url"], timeout=10.0)
        page.goto(server["url"])
        expect(testid("connection")).to_have_attribute("data-state", "live")
        expect(testid("untrained-banner")).to_be_visible()
        expect(testid("untrained-banner")).to_contain_text("UNTRAINED weights — not the paper's maps")

        sender = Sender(server["zmq_endpoint"], tmp_path / "rig.msgpack", heartbeat_interval_s=0.2)
        _deliver(
            sender,
            SessionStart,
            participant=PARTICIPANT,
            tracker="simulated",
            n_trials=3,
            screen_width_px=1920,
            screen_height_px=1080,
            wall_time_s=time.time(),
        )
        _deliver(
            sender,
            TrialStart,
            trial=0,
            image=IMAGE,
            onset_tracker_ms=0.0,
            onset_session_ms=0.0,
            stimulus_duration_ms=STIMULUS_MS,
            **geometry.to_dict(),
        )
        expect(testid("participant")).to_have_text(PARTICIPANT)
        expect(testid("tracker")).to_have_text("simulated")
        expect(testid("trial")).to_have_text("1 / 3")  # trial 0 of the data
        expect(testid("image-id")).to_have_text(IMAGE)
        expect(testid("stimulus")).to_have_attribute("src", f"/api/images/{IMAGE}/stimulus")
        first_left_s = float(testid("time-left").get_attribute("data-seconds"))
        assert 0 < first_left_s <= STIMULUS_MS / 1000

        heatmap_sources = []
        previous_cells = None
        for number in range(len(FIXATIONS)):
            _fixation(sender, geometry, number)
            expect(testid("n-fixations")).to_have_text(str(number + 1))
            expect(testid("n-fixations-pooled")).to_have_text(str(number + 1))  # scored through it
            cells = _score_cells(page)
            summary = api.get(f"/api/images/{IMAGE}").json()
            assert summary["n_fixations"] == number + 1
            assert set(summary["scores"]) == BASELINES | set(UNTRAINED_MAPS)
            _assert_cells_equal_api(cells, summary["scores"])
            if previous_cells is not None:  # a new fixation moves the scores of every map that varies
                for key in [(name, metric) for name in ("center_bias", *UNTRAINED_MAPS) for metric in ("nss", "cc")]:
                    assert cells[key] != previous_cells[key], key
            previous_cells = cells
            source = testid("heatmap-pooled").get_attribute("src")
            assert source.startswith(f"/api/images/{IMAGE}/heatmap.png?")
            heatmap_sources.append(source)
        assert len(set(heatmap_sources)) == len(FIXATIONS), heatmap_sources  # redrawn each time
        participant_source = testid("heatmap-participant").get_attribute("src")
        assert f"participant={PARTICIPANT}" in participant_source
        # The participant's heatmap (default layer) really loaded: a PNG at the image's size.
        page.wait_for_function("() => document.querySelector('[data-testid=heatmap-participant]').naturalWidth === 800")
        expect(testid("heatmap-participant")).to_be_visible()

        # The overlay draws each fixation at its image position scaled to the stage.
        painted = page.evaluate(
            """(fixations) => {
            const canvas = document.querySelector('[data-testid=overlay]');
            const stage = document.querySelector('[data-testid=stage]');
            const ratio = canvas.width / stage.clientWidth, scale = stage.clientWidth / 800;
            const context = canvas.getContext('2d');
            return fixations.map(([x, y]) => context.getImageData(
                Math.round(x * scale * ratio), Math.round(y * scale * ratio), 1, 1).data[3]);
        }""",
            [list(f[:2]) for f in FIXATIONS],
        )
        assert all(alpha > 0 for alpha in painted), painted

        _deliver(sender, MicLevel, trial=0, t_session_ms=1500.0, rms_dbfs=-32.5, peak_dbfs=-11.0, xruns=0)
        expect(testid("mic")).to_contain_text("rms -32.5 dBFS")
        expect(testid("health-latency")).to_contain_text("heartbeats")
        expect(testid("health-stream")).to_contain_text("alive")
        expect(testid("model-map")).to_have_count(len(UNTRAINED_MAPS))
        time_left_s = float(testid("time-left").get_attribute("data-seconds"))
        assert 0 < time_left_s < first_left_s  # counting down
        screenshot = artifacts / "dashboard-mid-session.png"
        page.screenshot(path=screenshot, full_page=True)
        print(f"screenshot: {screenshot}")

        # Scores against the participant's own heatmap, then back to the pooled one.
        testid("target-participant").check()
        expect(testid("target-participant-name")).to_have_text(PARTICIPANT)
        _wait_cells_equal(page, summary["participant_scores"])  # the second step of the scoring
        page.locator('input[name="target"][value="pooled"]').check()
        _assert_cells_equal_api(_score_cells(page), summary["scores"])

        # Sorting: kl_div is lower-is-better, so the first click puts the smallest value on top.
        kl = {name: summary["scores"][name]["kl_div"] for name in summary["scores"]}
        ranked = sorted((name for name in kl if kl[name] is not None), key=lambda name: kl[name])
        testid("score-table").locator('th[data-metric="kl_div"]').click()
        expect(testid("score-table").locator("tbody tr").first).to_have_attribute("data-map", ranked[0])
        testid("score-table").locator('th[data-metric="kl_div"]').click()
        expect(testid("score-table").locator("tbody tr").nth(len(ranked) - 1)).to_have_attribute("data-map", ranked[0])
        testid("bar-metric").select_option("cc")
        bars = testid("bar-chart").locator('[data-testid="bar"]')
        cc = {name: values["cc"] for name, values in summary["scores"].items() if values["cc"] is not None}
        expect(bars).to_have_count(len(cc))
        assert {
            bars.nth(i).get_attribute("data-map"): float(bars.nth(i).get_attribute("data-value"))
            for i in range(len(cc))
        } == cc

        # The history browser: the image, its pooled scores, and the way back.
        item = testid("history-list").locator(f'[data-image="{IMAGE}"]')
        expect(item).to_contain_text(f"{len(FIXATIONS)} fix · 1 part.")
        item.click()
        expect(testid("browse-banner")).to_be_visible()
        expect(testid("browse-image")).to_have_text(IMAGE)
        expect(testid("heatmap-pooled")).to_have_attribute("src", re.compile(rf"/api/images/{IMAGE}/heatmap\.png\?v=b"))
        expect(testid("heatmap-pooled")).to_be_visible()  # browsing shows the pooled map
        _assert_cells_equal_api(_score_cells(page), api.get(f"/api/images/{IMAGE}").json()["scores"])
        page.screenshot(path=artifacts / "dashboard-history.png", full_page=True)
        print(f"screenshot: {artifacts / 'dashboard-history.png'}")
        testid("back-to-live").click()
        expect(testid("browse-banner")).to_be_hidden()
        expect(testid("stage-title")).to_have_text("Current image")
        expect(testid("heatmap-participant")).to_be_visible()
        sender.close()
        api.close()
        assert console_errors == []  # no failed request, no script error while the server is up

        # The server goes away: the page says so and keeps trying.
        server["process"].send_signal(2)  # SIGINT: the graceful stop
        server["process"].wait(timeout=15)
        expect(testid("connection")).to_have_attribute("data-state", "reconnecting")
    # Back on the same port with the same data: the page reconnects by itself and shows the
    # pooled history the server reloaded.
    port = str(urlsplit(server["url"]).port)
    with serve_process(osie_stimuli, data_dir, "--maps", str(untrained_store), "--http-port", port):
        expect(testid("connection")).to_have_attribute("data-state", "live", timeout=20_000)
        expect(testid("history-list").locator(f'[data-image="{IMAGE}"]')).to_contain_text(f"{len(FIXATIONS)} fix")
        expect(testid("tracker")).to_have_text("simulated")  # rebuilt from the journal
    page.close()
    assert script_errors == []


# Records, on every change of the page, what the header, the stage and the score table show.
_RECORD_VIEWS = """() => {
    window.views = [];
    const text = (testid) => document.querySelector(`[data-testid="${testid}"]`).textContent;
    const stimulus = document.querySelector('[data-testid="stimulus"]');
    const observer = new MutationObserver(() => window.views.push({
        header: text("image-id"),
        stage: stimulus.hidden ? null : stimulus.dataset.image,
        stageSrc: stimulus.hidden ? null : stimulus.getAttribute("src"),
        empty: document.querySelector('[data-testid="scores-empty"]') !== null,
        pooled: text("n-fixations-pooled"),
        caption: text("scores-caption"),
    }));
    observer.observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
}"""


def _trial(sender: Sender, geometry: DisplayGeometry, trial: int, image: str, fixations) -> None:
    _deliver(
        sender,
        TrialStart,
        trial=trial,
        image=image,
        onset_tracker_ms=10_000.0 * trial,
        onset_session_ms=10_000.0 * trial,
        stimulus_duration_ms=2000.0,
        **geometry.to_dict(),
    )
    for number, (x, y, duration_ms) in enumerate(fixations):
        start_ms = 10_000.0 * trial + 300.0 + 400.0 * number
        x_display, y_display = (float(v[0]) for v in geometry.image_to_display([x], [y]))
        _deliver_fixation(
            sender,
            geometry,
            trial=trial,
            image=image,
            x=x,
            y=y,
            start_ms=start_ms,
            duration_ms=duration_ms,
            shown_ms=2000.0,
        )


@pytest.mark.timeout(120)
def test_trial_start_shows_the_pooled_state_at_once(browser, osie_stimuli, untrained_store, tmp_path, artifacts):
    """Oracle: the records sent (counts, images) and the API's scores of the image before the trial;
    the page is watched on every DOM change, so "at once" means no intermediate state is empty."""
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    other = "1002"
    geometry = DisplayGeometry.fit(*StimulusSet(osie_stimuli).size(IMAGE))
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    testid = page.get_by_test_id
    with serve_process(osie_stimuli, tmp_path / "data", "--maps", str(untrained_store)) as server:
        api = httpx.Client(base_url=server["url"], timeout=10.0)
        page.goto(server["url"])
        expect(testid("connection")).to_have_attribute("data-state", "live")
        sender = Sender(server["zmq_endpoint"], tmp_path / "rig.msgpack", heartbeat_interval_s=None)
        _deliver(
            sender,
            SessionStart,
            participant=PARTICIPANT,
            tracker="simulated",
            n_trials=3,
            screen_width_px=1920,
            screen_height_px=1080,
            wall_time_s=time.time(),
        )
        _trial(sender, geometry, 0, IMAGE, FIXATIONS)
        expect(testid("n-fixations-pooled")).to_have_text(str(len(FIXATIONS)))
        _trial(sender, geometry, 1, other, FIXATIONS[:1])
        expect(testid("image-id")).to_have_text(other)
        expect(testid("n-fixations-pooled")).to_have_text("1")
        before = api.get(f"/api/images/{IMAGE}").json()["scores"]

        page.evaluate(_RECORD_VIEWS)
        _trial(sender, geometry, 2, IMAGE, [])  # back on the first image, no fixation yet
        expect(testid("image-id")).to_have_text(IMAGE)
        expect(testid("scores-caption")).to_contain_text("pooled before this trial")
        first_shown = _score_cells(page)  # the image's latest scores, shown with the trial
        assert set(first_shown) == {(name, metric) for name, values in before.items() for metric in values}
        # then scored again with every record so far (nothing new of this image: the same numbers)
        deadline = time.monotonic() + 10
        while not api.get("/api/images").json()["settled"]:
            assert time.monotonic() < deadline, "the server did not settle"
            time.sleep(0.05)
        _wait_cells_equal(page, api.get(f"/api/images/{IMAGE}").json()["scores"])
        views = page.evaluate("() => window.views")
        on_image = [view for view in views if view["header"] == IMAGE]
        assert on_image, views
        # from the first change showing the new header on, the table and the count are filled
        assert not any(view["empty"] for view in on_image), on_image
        assert {view["pooled"] for view in on_image} == {str(len(FIXATIONS))}, on_image
        # the stage never shows an image other than the header's
        shown = [view for view in views if view["stage"] is not None]
        assert all(view["stage"] == view["header"] for view in shown), shown
        assert all(view["stageSrc"] == f"/api/images/{view['header']}/stimulus" for view in shown), shown

        # a 1366 px window: nothing scrolls sideways, the table fits its panel
        widths = page.evaluate("""() => ({page: document.documentElement.scrollWidth, window: innerWidth,
            table: document.querySelector('[data-testid=score-table]').scrollWidth,
            panel: document.querySelector('.table-wrap').clientWidth})""")
        assert widths["page"] <= widths["window"] and widths["table"] <= widths["panel"], widths
        page.screenshot(path=artifacts / "dashboard-1366.png", full_page=True)

        # thumbnails: from the disk cache, small, cached by the browser for good
        expect(testid("model-map")).to_have_count(len(UNTRAINED_MAPS))
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=model-map] img')]"
            ".every(image => image.complete && image.naturalWidth > 0)"
        )
        source = testid("model-map").first.locator("img").get_attribute("src")
        assert source.startswith(f"/api/images/{IMAGE}/thumbnails/") and "?store=" in source
        first = api.get(source)
        assert first.status_code == 200 and first.headers["content-type"] == "image/png"
        assert len(first.content) <= 60_000
        assert "immutable" in first.headers["cache-control"]
        cached = list((tmp_path / "data" / "thumbnails").glob("*/*.png"))
        assert len(cached) == len(UNTRAINED_MAPS) * 2  # both images shown so far, rendered once each
        assert first.content in {path.read_bytes() for path in cached}
        assert api.get(source, headers={"If-None-Match": first.headers["etag"]}).status_code == 304

        # the trial ends late on a display without vsync; the task then waits at drift correction
        _deliver(
            sender,
            TrialEnd,
            trial=2,
            image=IMAGE,
            offset_tracker_ms=22_350.0,
            offset_session_ms=22_350.0,
            n_fixations=0,
            dropped_frames=0,
            aborted=False,
            display_duration_ms=2350.0,
            overrun=True,
            frame_timing="no_vsync",
        )
        _deliver(
            sender, Heartbeat, t_session_ms=22_400.0, wall_time_s=time.time(), pending=0, waiting="drift_correction"
        )
        expect(testid("time-left")).to_have_text("waiting: drift correction")
        expect(testid("health-dropped")).to_have_text("not measurable (no vsync)")
        expect(testid("health-overruns")).to_have_text("1 of 1 trials (last: trial 3, 2350 ms for 2000)")
        page.screenshot(path=artifacts / "dashboard-waiting.png", full_page=True)
        sender.close()
        api.close()
    page.close()


# -- the guards, probed without a browser --------------------------------------------------------

TOKEN = "secret-token"


@pytest.fixture(scope="module")
def guarded(osie_stimuli, tmp_path_factory):
    """A server on loopback with an explicit token (enforced there too) and no map store."""
    with serve_process(osie_stimuli, tmp_path_factory.mktemp("guarded"), "--token", TOKEN) as server:
        parts = urlsplit(server["url"])
        yield {**server, "host": parts.hostname, "port": parts.port, "base": f"{parts.scheme}://{parts.netloc}"}


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/api/health",
        "/api/session",
        "/api/images",
        f"/api/images/{IMAGE}",
        f"/api/images/{IMAGE}/stimulus",
        f"/api/images/{IMAGE}/heatmap.png",
    ],
)
def test_every_route_needs_the_token(guarded, path):
    with httpx.Client(base_url=guarded["base"], timeout=10.0) as client:
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code in (200, 204)
        assert client.get(path, params={"token": TOKEN}).status_code in (200, 204)


@pytest.mark.timeout(60)
def test_the_page_sets_a_cookie_that_opens_the_api(guarded):
    with httpx.Client(base_url=guarded["base"], timeout=10.0) as client:
        page = client.get("/", params={"token": TOKEN})
        assert page.status_code == 200 and 'data-testid="score-table"' in page.text
        assert "httponly" in page.headers["set-cookie"].lower()
        assert client.get("/api/health").status_code == 200  # the cookie, no token in the URL


@pytest.mark.timeout(60)
def test_websocket_checks_origin_and_token(guarded):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    own_origin = guarded["base"]
    url = f"ws://{guarded['host']}:{guarded['port']}/ws"
    with connect(f"{url}?token={TOKEN}", origin=own_origin, open_timeout=10) as socket:
        message = json.loads(socket.recv(timeout=10))
        assert message["type"] == "snapshot"
        assert list(message["sections"]) == [
            "session",
            "trial",
            "gaze",
            "fixations",
            "mic",
            "voice",
            "health",
            "scores",
            "history",
            "quality",
            "notes",
        ]
    with connect(url, additional_headers={"Authorization": f"Bearer {TOKEN}"}, open_timeout=10) as socket:
        assert socket.recv(timeout=10)  # a tool without Origin needs the token only
    refusals = {
        "foreign origin, right token": dict(uri=f"{url}?token={TOKEN}", origin="http://evil.example"),
        "look-alike origin": dict(uri=f"{url}?token={TOKEN}", origin=f"{own_origin}.evil.example"),
        "own origin, no token": dict(uri=url, origin=own_origin),
        "no origin, wrong token": dict(uri=f"{url}?token=wrong"),
    }
    for case, options in refusals.items():
        with pytest.raises(InvalidStatus) as refused, connect(**options, open_timeout=10) as socket:
            socket.recv(timeout=5)
        assert refused.value.response.status_code == 403, case


def _raw_get(server: dict, path: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (http.client neither normalises nor re-encodes it)."""
    connection = http.client.HTTPConnection(server["host"], server["port"], timeout=10)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "path",
    [
        "/api/images/..%2F..%2Fetc%2Fpasswd/stimulus",
        "/api/images/..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd/heatmap.png",
        "/api/images/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/api/images/%2E%2E/stimulus",
        "/api/images/1001.jpg/stimulus",
        "/api/images/1001/maps/..%2F..%2F..%2Fetc%2Fpasswd.png",
        "/api/images/../../../../etc/passwd",
        "/static/../../../../etc/passwd",
        "/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/static/%2e%2e/app.py",
    ],
)
def test_no_path_traversal(guarded, osie_stimuli, path):
    status, body = _raw_get(guarded, path)
    assert status == 404, (path, status, body[:200])
    assert b"root:" not in body
    assert _raw_get(guarded, f"/api/images/{IMAGE}/stimulus") == (200, (osie_stimuli / f"{IMAGE}.jpg").read_bytes())
