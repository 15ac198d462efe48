"""The dashboard JSON files: made by twin.grafana, valid for Grafana's file provider, consistent with
the provisioning and compose.yaml; the standard dashboards never read simulator truth, the
instructor's says on every panel that it does. (Whether the queries run is
tests/integration/test_dashboards.py.)"""

from __future__ import annotations

import ast
import inspect
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from twin.grafana import dashboards, model, panels
from twin.grafana.__main__ import main
from twin.grafana.dashboards.instructor import TRUTH_LABEL
from twin.grafana.interpolation import references
from twin.grafana.model import Dashboard, Panel, Query

ROOT = Path(__file__).resolve().parents[2]
JSON_DIR = ROOT / "dashboards" / "json"
INSTRUCTOR_DIR = ROOT / "dashboards" / "instructor"
PROVISIONING = ROOT / "dashboards" / "provisioning"
FILES = sorted(JSON_DIR.glob("*.json"))
INSTRUCTOR_FILES = sorted(INSTRUCTOR_DIR.glob("*.json"))
STANDARD: dict[str, dict[str, Any]] = {path.name: json.loads(path.read_text(encoding="utf-8")) for path in FILES}
INSTRUCTOR: dict[str, dict[str, Any]] = {
    path.name: json.loads(path.read_text(encoding="utf-8")) for path in INSTRUCTOR_FILES
}
LOADED: dict[str, dict[str, Any]] = {**STANDARD, **INSTRUCTOR}
"""Every dashboard, standard and instructor's (the rules of valid dashboards hold for all)."""
TRUTH_REFERENCE = re.compile(r"sim_truth|\btrue_[a-z_]+", re.IGNORECASE)
"""What a query reading simulator truth names: the measurement, or a ``true_*`` field."""
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
    committed = {f"json/{path.name}": path for path in FILES} | {f"instructor/{p.name}": p for p in INSTRUCTOR_FILES}
    assert sorted(rendered) == sorted(committed), "run `make dashboards`"
    for name, path in committed.items():
        assert path.read_text(encoding="utf-8") == rendered[name], f"{name} is stale: run `make dashboards`"


def test_the_generator_is_deterministic_and_the_json_reviewable() -> None:
    first, second = dashboards.render_all(), dashboards.render_all()
    assert first == second
    for text in first.values():
        assert text.endswith("}\n")
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_check_mode_finds_stale_missing_and_stray_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path), "--check"]) == 1  # all missing
    assert main([str(tmp_path)]) == 0
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json")) == sorted(
        dashboards.render_all()
    )
    assert main([str(tmp_path), "--check"]) == 0
    (tmp_path / "json" / "pumptwin-fleet.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "instructor" / "hand-made.json").write_text("{}\n", encoding="utf-8")
    capsys.readouterr()
    assert main([str(tmp_path), "--check"]) == 1
    err = capsys.readouterr().err
    assert "json/pumptwin-fleet.json is out of date" in err
    assert "instructor/hand-made.json" in err
    assert main(["--check"]) == 0  # the repository's own files


# ------------------------------------------------------------------------ valid for the provider


def test_four_standard_dashboards_one_instructors_with_unique_uids_and_titles() -> None:
    assert len(STANDARD) == 4
    assert sorted(INSTRUCTOR) == ["pumptwin-instructor.json"]
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


# ------------------------------------------------------------------------ simulator truth (issue 12)


def test_no_standard_dashboard_reads_simulator_truth() -> None:
    """Truth stays behind the glass: no panel, annotation or variable of a dashboard any viewer
    sees queries the ``sim_truth`` measurement or a ``true_*`` field, nor filters on them."""
    checked = 0
    for name, dashboard in STANDARD.items():
        for where, text in _queries(dashboard):
            checked += 1
            assert not TRUTH_REFERENCE.search(text), f"{name} {where} reads simulator truth: {text}"
    assert checked > 50
    for build in dashboards.DASHBOARDS:  # the generator's own list, not only the files
        for panel in build().panels:
            assert not any(TRUTH_REFERENCE.search(query.text) for query in panel.queries), panel.title


def test_the_pattern_catches_what_a_truth_query_names() -> None:
    assert TRUTH_REFERENCE.search('SELECT mean("true_reservoir_ml") FROM "telemetry"')
    assert TRUTH_REFERENCE.search('SELECT last("motor") FROM "sim_truth"')
    assert not TRUTH_REFERENCE.search('SELECT last("infusing") FROM "state" WHERE "simulated" = \'true\'')


def test_the_instructor_dashboard_says_on_every_panel_that_it_shows_simulator_truth() -> None:
    (dashboard,) = INSTRUCTOR.values()
    assert TRUTH_LABEL == "simulator truth: not visible to a real clinic"
    assert TRUTH_LABEL in dashboard["title"]
    assert all(TRUTH_LABEL in panel["title"] for panel in dashboard["panels"])
    assert "instructors" in dashboard["description"].lower()
    assert dashboard["tags"] == [model.INSTRUCTOR_TAG]  # not the standard dashboards' tag: none links here
    assert all(d["tags"] == [model.FOLDER_TAG] for d in STANDARD.values())
    reading = [text for _, text in _queries(dashboard) if TRUTH_REFERENCE.search(text)]
    assert reading, "the instructor's dashboard shows the truth"
    assert all(any(TRUTH_REFERENCE.search(t["query"]) for t in panel["targets"]) for panel in dashboard["panels"])


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


def _provider(file_name: str) -> dict[str, Any]:
    [entry] = yaml.safe_load((PROVISIONING / "dashboards" / file_name).read_text())["providers"]
    assert entry["type"] == "file"
    return dict(entry)


def test_every_dashboard_file_is_where_its_provider_reads_in_the_container() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    mounts = dict(
        volume.split(":")[:2] for volume in compose["services"]["grafana"]["volumes"] if volume.startswith("./")
    )
    for host, provider, files in (
        ("./dashboards/json", "pumptwin.yaml", FILES),
        ("./dashboards/instructor", "pumptwin-instructor.yaml", INSTRUCTOR_FILES),
    ):
        entry = _provider(provider)
        container_dir = PurePosixPath(mounts[host])
        assert container_dir == PurePosixPath(entry["options"]["path"])
        host_dir = (ROOT / host).resolve()
        for path in files:
            assert path.resolve().parent == host_dir
    everywhere = [p for p in (ROOT / "dashboards").rglob("*.json") if "panels" in json.loads(p.read_text())]
    assert sorted(everywhere) == sorted([*FILES, *INSTRUCTOR_FILES])  # no dashboard outside the mounted dirs
    paths = [PurePosixPath(mounts[host]) for host in ("./dashboards/json", "./dashboards/instructor")]
    assert not paths[0].is_relative_to(paths[1])  # no provider sees the other's files
    assert not paths[1].is_relative_to(paths[0])


def test_the_instructor_folder_is_its_own_and_its_provisioning_says_to_restrict_it() -> None:
    standard, instructor = _provider("pumptwin.yaml"), _provider("pumptwin-instructor.yaml")
    assert standard["folder"] != instructor["folder"]
    assert "instructor" in instructor["folder"].lower()
    assert "simulator truth" in instructor["folder"]
    text = (PROVISIONING / "dashboards" / "pumptwin-instructor.yaml").read_text()
    assert "RESTRICT THIS FOLDER TO INSTRUCTORS" in text
    readme = (INSTRUCTOR_DIR / "README.md").read_text()
    assert "Restrict the folder to instructors" in readme
    assert instructor["folderUid"] in readme


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
    from twin.grafana.dashboards import alarms, device, fleet, instructor, training

    for module in (model, panels, dashboards, fleet, device, alarms, training, instructor):
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
            "twin.grafana.dashboards.instructor",
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
