"""The dashboard JSON files: made by twin.grafana, valid for Grafana's file provider, consistent with
the provisioning and compose.yaml. (Whether their queries run is tests/integration/test_dashboards.py.)"""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from twin.grafana import dashboards, model, panels
from twin.grafana.__main__ import main
from twin.grafana.interpolation import references
from twin.grafana.model import Dashboard, Panel, Query

ROOT = Path(__file__).resolve().parents[2]
JSON_DIR = ROOT / "dashboards" / "json"
PROVISIONING = ROOT / "dashboards" / "provisioning"
FILES = sorted(JSON_DIR.glob("*.json"))
LOADED: dict[str, dict[str, Any]] = {path.name: json.loads(path.read_text(encoding="utf-8")) for path in FILES}
MACROS = {"timeFilter", "interval", "__interval", "__interval_ms", "__from", "__to"}
"""What Grafana's InfluxDB backend replaces itself (twin.grafana.interpolation.expand_macros)."""


def _queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, text) of every query: panel targets, annotations, variables."""
    found = [
        (f"panel {panel['title']!r} {target['refId']}", target["query"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]
    found += [(f"annotation {a['name']!r}", a["target"]["query"]) for a in dashboard["annotations"]["list"]]
    found += [(f"variable ${v['name']}", v["query"]) for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return found


# ------------------------------------------------------------------------------------ generated


def test_the_committed_json_is_exactly_what_the_generator_writes() -> None:
    rendered = dashboards.render_all()
    assert sorted(rendered) == [path.name for path in FILES], "run `make dashboards`"
    for path in FILES:
        assert path.read_text(encoding="utf-8") == rendered[path.name], f"{path.name} is stale: run `make dashboards`"


def test_the_generator_is_deterministic_and_the_json_reviewable() -> None:
    first, second = dashboards.render_all(), dashboards.render_all()
    assert first == second
    for text in first.values():
        assert text.endswith("}\n")
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_check_mode_finds_stale_missing_and_stray_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path), "--check"]) == 1  # all missing
    assert main([str(tmp_path)]) == 0
    assert main([str(tmp_path), "--check"]) == 0
    (tmp_path / "pumptwin-fleet.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "hand-made.json").write_text("{}\n", encoding="utf-8")
    capsys.readouterr()
    assert main([str(tmp_path), "--check"]) == 1
    err = capsys.readouterr().err
    assert "pumptwin-fleet.json is out of date" in err
    assert "hand-made.json" in err
    assert main(["--check"]) == 0  # the repository's own files


# ------------------------------------------------------------------------ valid for the provider


def test_four_dashboards_with_unique_uids_and_titles() -> None:
    assert len(LOADED) == 4
    uids = [d["uid"] for d in LOADED.values()]
    titles = [d["title"] for d in LOADED.values()]
    assert len(set(uids)) == len(uids)
    assert len(set(titles)) == len(titles)
    for name, dashboard in LOADED.items():
        assert name == f"{dashboard['uid']}.json"
        assert dashboard["title"].strip()
        assert dashboard["schemaVersion"] == model.SCHEMA_VERSION
        assert "id" not in dashboard or dashboard["id"] is None  # the provider assigns ids
        assert dashboard["panels"], name


def _provisioned_uids() -> set[str]:
    uids = set()
    for path in sorted((PROVISIONING / "datasources").iterdir()):
        for datasource in yaml.safe_load(path.read_text())["datasources"]:
            uids.add(datasource["uid"])
    return uids


def test_every_datasource_reference_is_the_provisioned_influxdb() -> None:
    assert _provisioned_uids() == {model.DATASOURCE_UID}
    for name, dashboard in LOADED.items():
        references_ = [panel["datasource"] for panel in dashboard["panels"]]
        references_ += [target["datasource"] for panel in dashboard["panels"] for target in panel["targets"]]
        references_ += [a["datasource"] for a in dashboard["annotations"]["list"]]
        references_ += [v["datasource"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
        assert references_, name
        assert all(ref == {"type": "influxdb", "uid": model.DATASOURCE_UID} for ref in references_), name


def test_every_panel_has_raw_influxql_targets_with_unique_ref_ids() -> None:
    for name, dashboard in LOADED.items():
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(set(ids)) == len(ids), name
        titles = [panel["title"] for panel in dashboard["panels"]]
        assert len(set(titles)) == len(titles), f"{name}: two panels with one title"
        for panel in dashboard["panels"]:
            where = f"{name}: {panel['title']!r}"
            assert panel["title"].strip(), where
            assert panel["description"].strip(), where
            assert panel["targets"], where
            assert all(target["rawQuery"] is True for target in panel["targets"]), where
            assert all(target["query"].lstrip().upper().startswith("SELECT ") for target in panel["targets"]), where
            assert all(target["resultFormat"] in ("time_series", "table") for target in panel["targets"]), where
            ref_ids = [target["refId"] for target in panel["targets"]]
            assert len(set(ref_ids)) == len(ref_ids), where
        for annotation in dashboard["annotations"]["list"]:
            assert annotation["target"]["rawQuery"] is True
            assert "$timeFilter" in annotation["target"]["query"], annotation["name"]


def test_panels_tile_the_24_column_grid_without_overlapping() -> None:
    for name, dashboard in LOADED.items():
        taken: set[tuple[int, int]] = set()
        for panel in dashboard["panels"]:
            grid = panel["gridPos"]
            assert 0 <= grid["x"] <= grid["x"] + grid["w"] <= model.GRID_COLUMNS, (name, panel["title"])
            cells = {(grid["x"] + dx, grid["y"] + dy) for dx in range(grid["w"]) for dy in range(grid["h"])}
            assert not cells & taken, (name, panel["title"])
            taken |= cells


def test_every_reference_is_a_variable_of_the_dashboard_or_a_backend_macro() -> None:
    for name, dashboard in LOADED.items():
        variables = {variable["name"] for variable in dashboard["templating"]["list"]}
        used: set[str] = set()
        for where, text in _queries(dashboard):
            names = set(references(text))
            assert names <= variables | MACROS, f"{name} {where}: unknown {sorted(names - variables - MACROS)}"
            used |= names
        for panel in dashboard["panels"]:
            used |= set(references(panel["title"])) | set(references(panel["description"]))
        assert variables <= used, f"{name}: variables nobody uses: {sorted(variables - used)}"


def test_every_query_is_bounded_in_time() -> None:
    """A panel reads the dashboard's range, or (a latest-state panel) the state window that ends
    with it; a variable's options come from the range too (InfluxDB 3 looks at one day only for an
    unbounded SHOW TAG VALUES) and are refreshed when it changes. Never now(): a backfilled or
    accelerated history lies in the future or the past of the wall clock."""
    for name, dashboard in LOADED.items():
        for where, text in _queries(dashboard):
            assert "$timeFilter" in text or panels.STATE_WINDOW in text, f"{name} {where}"
            assert "now()" not in text, f"{name} {where}: use $timeFilter, not now()"
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["refresh"] == 2, f"{name} ${variable['name']}: refresh on time range change"


def test_latest_state_panels_look_back_further_than_the_range() -> None:
    """A pump publishes its state on change only: a panel of latest states filtered by a one-day
    range would lose every pump that did not change that day."""
    for name, dashboard in LOADED.items():
        for where, text in _queries(dashboard):
            if 'FROM "state"' in text and "last(" in text and "GROUP BY time(" not in text:
                assert panels.STATE_WINDOW in text, f"{name} {where}: a latest-state query bounded by the range"


def test_variables_that_offer_all_are_multi_value() -> None:
    """Grafana writes All of a single-value variable as "a,b" outside a regex (a broken query)."""
    for dashboard in LOADED.values():
        for variable in dashboard["templating"]["list"]:
            if variable.get("includeAll"):
                assert variable["multi"], variable["name"]


def test_the_device_variable_is_chained_to_the_site() -> None:
    (device_variable,) = [v for v in LOADED["pumptwin-device.json"]["templating"]["list"] if v["name"] == "device"]
    assert device_variable["query"].startswith('SHOW TAG VALUES FROM "telemetry" WITH KEY = "device"')
    assert "$site" in device_variable["query"]


# -------------------------------------------------------------------------- provisioning & compose


def test_every_dashboard_file_is_where_the_provider_reads_in_the_container() -> None:
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "pumptwin.yaml").read_text())
    [entry] = provider["providers"]
    assert entry["type"] == "file"
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    mounts = dict(
        volume.split(":")[:2] for volume in compose["services"]["grafana"]["volumes"] if volume.startswith("./")
    )
    container_dir = PurePosixPath(mounts["./dashboards/json"])
    assert container_dir == PurePosixPath(entry["options"]["path"])
    host_dir = (ROOT / "dashboards" / "json").resolve()
    everywhere = [p for p in (ROOT / "dashboards").rglob("*.json") if "panels" in json.loads(p.read_text())]
    assert sorted(everywhere) == FILES  # no dashboard outside the mounted directory
    for path in FILES:
        assert path.resolve().parent == host_dir
        assert container_dir / path.name == PurePosixPath(entry["options"]["path"]) / path.name


# --------------------------------------------------------------------------------- building blocks


def test_model_refuses_what_grafana_would_choke_on() -> None:
    with pytest.raises(ValueError, match="width"):
        Panel("wide", "stat", [Query("SELECT 1")], "x", width=25)
    with pytest.raises(ValueError, match="no query"):
        Panel("empty", "stat", [], "x")
    with pytest.raises(ValueError, match="duplicate refIds"):
        Panel("twice", "stat", [Query("SELECT 1"), Query("SELECT 2")], "x")
    with pytest.raises(ValueError, match="uid"):
        Dashboard(uid="has a space", title="t", description="d", panels=[])
    with pytest.raises(ValueError, match="not one of"):
        model.custom_variable("v", "V", ("a", "b"), current="c")
    with pytest.raises(ValueError, match="comma"):
        model.custom_variable("v", "V", ("a,b",), current="a,b")


def test_layout_wraps_rows_at_24_columns() -> None:
    panels = [Panel(str(n), "stat", [Query("SELECT 1")], "x", width=10, height=3 + n) for n in range(3)]
    positions = [panel["gridPos"] for panel in model.layout(panels)]
    assert positions == [
        {"h": 3, "w": 10, "x": 0, "y": 0},
        {"h": 4, "w": 10, "x": 10, "y": 0},
        {"h": 5, "w": 10, "x": 0, "y": 4},
    ]


def test_building_dashboards_does_no_io_beyond_writing_the_files() -> None:
    """model, panels and the dashboard modules import only the standard library and each other;
    only write_all and stale_files (in dashboards) touch the file system."""
    from twin.grafana.dashboards import alarms, device, fleet, training

    for module in (model, panels, dashboards, fleet, device, alarms, training):
        tree = ast.parse(inspect.getsource(module))
        imported = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert imported <= {
            "__future__",
            "json",
            "collections.abc",
            "dataclasses",
            "pathlib",
            "typing",
            "twin.grafana.model",
            "twin.grafana.panels",
            "twin.grafana.dashboards.alarms",
            "twin.grafana.dashboards.device",
            "twin.grafana.dashboards.fleet",
            "twin.grafana.dashboards.training",
            "twin.pump.model",  # the ERI percentage: one figure, the pump model's
        }
    readers = {
        node.name
        for node in ast.walk(ast.parse(inspect.getsource(dashboards)))
        if isinstance(node, ast.FunctionDef)
        and {"write_text", "read_text", "glob", "exists"}
        & {
            call.func.attr
            for call in ast.walk(node)
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
        }
    }
    assert readers == {"write_all", "stale_files"}
