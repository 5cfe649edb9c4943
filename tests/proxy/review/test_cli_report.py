"""`shadowdiff report`, `check` and `status` through the real command line: a seeded store, a real admin server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from diffs.storage import Store
from proxy.cli import app
from tests.proxy.report_seed import report_app, seed
from tests.servers import run_server

runner = CliRunner()


@pytest.fixture
def database(tmp_path: Path) -> str:
    """A seeded store file (see report_seed: products ready, orders and ai not)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'shadowdiff.db'}"

    async def build() -> None:
        store = await Store.open(url)
        try:
            await seed(store)
        finally:
            await store.close()

    asyncio.run(build())
    return url


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, list(args), env={"SHADOWDIFF_DATABASE_URL": None, **(env or {})})


def one_line_error(result: Result) -> str:
    assert "Traceback" not in result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# ---------------------------------------------------------------- report


def rows_of(out: str) -> dict[str, list[str]]:
    """Table rows by their first cell (cells are separated by spaces; verdicts may hold one)."""
    rows = {}
    for line in out.splitlines():
        cells = line.split()
        if cells and cells[0] in ("ai", "default", "orders", "products"):
            rows[cells[0]] = cells
    return rows


def verdict_of(cells: list[str]) -> str:
    """The last column: READY, NOT READY or no traffic (the trend before it may end in an arrow)."""
    line = " ".join(cells)
    return next(v for v in ("NOT READY", "no traffic", "READY") if line.endswith(v))


def test_report_table_lists_services_verdicts_and_failing_criteria(database: str) -> None:
    result = run("report", "--database-url", database)
    assert result.exit_code == 0, result.output
    out = result.stdout
    rows = rows_of(out)
    # service, primary, samples, diff, noise, errors, p99 V1/V2, trend, verdict
    assert rows["orders"][:7] == ["orders", "v1", "140", "7.14%", "14.29%", "1.43%", "60.0/45.0"]
    assert verdict_of(rows["orders"]) == "NOT READY" and verdict_of(rows["products"]) == "READY"
    assert rows["default"][7:] == ["–", "no", "traffic"]
    assert "✗ orders: diff rate 7.14% > 1.00%" in out and "✗ orders: shadow error rate 1.43% > 1.00%" in out
    assert "✗ ai: only 5 samples, need 100" in out and "default:" not in out
    assert "finding GET /api/orders/{id}  root.total  changed ×10" in out


@pytest.mark.parametrize("width", [80, 120])
def test_report_and_every_endpoint_fit_the_terminal_whole(database: str, width: int) -> None:
    """Issue 13: at 100 columns `report --service orders` cut four endpoints to `POST /api/orders/...`."""
    long = "PATCH /api/orders/{order_id}/items/{item_id}/shipping-address"
    add_endpoint(database, long)
    result = run("report", "--database-url", database, env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= width
    assert "…" not in result.stdout and "..." not in result.stdout
    for name in ("ai", "default", "orders", "products", "NOT READY", "no traffic", "READY"):
        assert name in result.stdout
    for endpoint in ("GET /api/orders/{id}", "POST /api/orders", "GET /api/products/{id}", "POST /api/ai/generate"):
        assert any(endpoint in line for line in lines), endpoint  # whole, on one line
    # The long endpoint stays whole on one line at 120; at 80 it wraps and folds in its column, every character kept.
    first = next(i for i, line in enumerate(lines) if line.startswith("PATCH"))
    pieces = [lines[first].split()[0]]
    for line in lines[first + 1 :]:
        if len(line.split()) != 1:
            break
        pieces.append(line.strip())
    assert any(long in line for line in lines) or "".join(pieces) == long.replace(" ", "")
    if width == 120:
        assert any(long in line for line in lines)


def add_endpoint(database: str, endpoint: str) -> None:
    from diffs.comparer import Comparer
    from proxy.config import load_settings
    from tests import factories as f

    method, _, path = endpoint.partition(" ")
    settings = load_settings(overrides={"services": {"orders": {"endpoint_patterns": [path]}}}, environ={})
    x = f.exchange(method=method, path=path.replace("{order_id}", "7").replace("{item_id}", "3"))
    comparison = Comparer(settings.services).compare(x)
    assert comparison.endpoint == endpoint, comparison.endpoint

    async def write() -> None:
        store = await Store.open(database)
        try:
            await store.write_batch([comparison])
        finally:
            await store.close()

    asyncio.run(write())


def test_report_json_is_for_machines(database: str) -> None:
    result = run("report", "--database-url", database, "--format", "json")
    data = json.loads(result.stdout)
    orders = next(s for s in data["services"] if s["service"] == "orders")
    assert orders["counts"]["samples"] == 140 and data["ready"] is False
    assert orders["endpoints"][0]["fields"][0]["path"] == "root.total"


def test_report_for_one_service_and_a_window(database: str) -> None:
    data = json.loads(run("report", "--database-url", database, "-f", "json", "--service", "products").stdout)
    assert [s["service"] for s in data["services"]] == ["products"]
    recent = json.loads(run("report", "--database-url", database, "-f", "json", "--since", "5m").stdout)
    assert all(s["counts"]["total"] == 0 for s in recent["services"]) and recent["window"]["since"]


def test_report_markdown_and_html_files(database: str, tmp_path: Path) -> None:
    markdown = tmp_path / "report.md"
    result = run("report", "--database-url", database, "--format", "markdown", "--out", str(markdown))
    assert result.exit_code == 0 and result.stdout == "" and f"wrote markdown report to {markdown}" in result.stderr
    assert (
        markdown.read_text().startswith("## shadowdiff report")
        and "- ❌ diff rate 7.14% > 1.00%" in markdown.read_text()
    )
    html = tmp_path / "report.html"
    assert run("report", "--database-url", database, "-f", "html", "--out", str(html)).exit_code == 0
    page = html.read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page and 'href="/' not in page


def test_report_table_to_a_file_is_wide_plain_text(database: str, tmp_path: Path) -> None:
    out = tmp_path / "report.txt"
    assert run("report", "--database-url", database, "--out", str(out)).exit_code == 0
    text = out.read_text()
    assert "GET /api/products/{id}" in text and "\x1b[" not in text  # whole names, no colour codes


def test_a_missing_store_is_one_clear_line_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.db"
    result = run("report", "--database-url", f"sqlite:///{missing}")
    assert result.exit_code == 2
    assert one_line_error(result) == f"shadowdiff: no shadowdiff store at {missing}: run `shadowdiff proxy` first"
    assert not missing.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "someday"], "not a duration (15m, 1h, 7d) or an ISO 8601 time: 'someday'"),
        (["--service", "payments"], "unknown service 'payments'"),
        (["--database-url", "mysql://x/y"], "Only sqlite and postgresql databases are supported"),
    ],
)
def test_bad_input_is_one_line(database: str, args: list[str], message: str) -> None:
    result = run("report", "--database-url", database, *args)
    assert result.exit_code == 2 and message in one_line_error(result)


def test_an_unwritable_out_file_is_one_line(database: str, tmp_path: Path) -> None:
    target = tmp_path / "missing-dir" / "report.txt"
    result = run("report", "--database-url", database, "--out", str(target))
    assert result.exit_code == 2
    assert one_line_error(result) == f"shadowdiff: {target}: No such file or directory"


def test_an_unknown_format_is_one_line_on_stderr(database: str) -> None:
    """Issue 13: `report --format yaml` printed a 5-line box where the README promises one line on stderr."""
    result = run("report", "--database-url", database, "--format", "yaml")
    assert result.exit_code == 2 and result.stdout == ""
    assert one_line_error(result) == (
        "shadowdiff report: Invalid value for '--format' / '-f': 'yaml' is not one of 'table', 'json', 'markdown', "
        "'html'. (see shadowdiff report --help)"
    )


def test_choices_ignore_case(database: str) -> None:
    result = run("report", "--database-url", database, "--format", "JSON")
    assert result.exit_code == 0 and json.loads(result.stdout)["services"]


def test_the_database_url_comes_from_the_environment_too(database: str) -> None:
    result = run("report", "-f", "json", env={"SHADOWDIFF_DATABASE_URL": database})
    assert json.loads(result.stdout)["services"]


# ---------------------------------------------------------------- check


def test_check_fails_listing_every_failing_criterion(database: str) -> None:
    result = run("check", "--database-url", database)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "not ready: ai: only 5 samples, need 100",
        "not ready: orders: diff rate 7.14% > 1.00%; shadow error rate 1.43% > 1.00%",
    ]


def test_check_passes_with_a_one_line_summary(database: str) -> None:
    result = run("check", "--database-url", database, "--service", "products")
    assert result.exit_code == 0
    assert result.stdout == "ready: products (150 samples, diff 0.00%, errors 0.00%, p99 0.80×)\n"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--service", "orders", "--max-diff-rate", "10%", "--max-error-rate", "0.02"], 0),
        (["--service", "orders", "--max-diff-rate", "0.07"], 1),
        (["--service", "products", "--min-samples", "151"], 1),
        (["--service", "products", "--max-p99-ratio", "0.79"], 1),
        (["--service", "ai", "--min-samples", "5"], 0),
    ],
)
def test_check_criteria_are_flags(database: str, args: list[str], code: int) -> None:
    assert run("check", "--database-url", database, *args).exit_code == code


def test_check_reads_the_config_files_readiness_section_and_flags_win(tmp_path: Path, database: str) -> None:
    config = tmp_path / "shadowdiff.toml"
    config.write_text("[readiness]\nmin_samples = 5\n", encoding="utf-8")
    assert run("check", "--database-url", database, "--service", "ai").exit_code == 1  # 5 samples < 100
    assert run("check", "--database-url", database, "--service", "ai", "--config", str(config)).exit_code == 0
    flagged = run("check", "--database-url", database, "--service", "ai", "--config", str(config), "--min-samples", "6")
    assert flagged.exit_code == 1


def test_check_without_traffic_is_not_ready(database: str) -> None:
    result = run("check", "--database-url", database, "--since", "5m")
    assert result.exit_code == 1 and result.stdout == "not ready: no exchanges recorded since 5m\n"


def test_check_exits_2_when_it_cannot_tell(tmp_path: Path, database: str) -> None:
    missing = run("check", "--database-url", f"sqlite:///{tmp_path / 'none.db'}")
    assert missing.exit_code == 2 and "run `shadowdiff proxy` first" in one_line_error(missing)
    bad_rate = run("check", "--database-url", database, "--max-diff-rate", "lots")
    assert bad_rate.exit_code == 2 and "'lots' is not a rate" in one_line_error(bad_rate)


@pytest.mark.parametrize("rate", ["5", "1", "150%", "-0.1", "nan"])
def test_a_rate_is_never_taken_silently(database: str, rate: str) -> None:
    """Issue 13: `check --max-diff-rate 5` meant 500% and dropped the criterion."""
    result = run("check", "--database-url", database, "--service", "orders", "--max-diff-rate", rate)
    assert result.exit_code == 2 and result.stdout == ""
    assert "Invalid value for '--max-diff-rate'" in one_line_error(result)


def test_percentages_and_fractions_mean_the_same(database: str) -> None:
    as_percent = run("check", "--database-url", database, "--service", "orders", "--max-diff-rate", "5%")
    as_fraction = run("check", "--database-url", database, "--service", "orders", "--max-diff-rate", "0.05")
    assert as_percent.exit_code == as_fraction.exit_code == 1
    assert (
        as_percent.stdout
        == as_fraction.stdout
        == ("not ready: orders: diff rate 7.14% > 5.00%; shadow error rate 1.43% > 1.00%\n")
    )


def test_check_and_the_web_overview_agree(database: str) -> None:
    # Both call diffs.report.assess on the same report: the JSON verdicts are what check judges.
    data = json.loads(run("report", "--database-url", database, "-f", "json").stdout)
    ready = {s["service"] for s in data["services"] if s["readiness"]["ready"]}
    for name in ("orders", "products", "ai"):
        assert (run("check", "--database-url", database, "--service", name).exit_code == 0) is (name in ready)


# ---------------------------------------------------------------- status


async def test_status_asks_a_running_admin_plane(tmp_path: Path) -> None:
    async with report_app(f"sqlite+aiosqlite:///{tmp_path / 'live.db'}") as ctx, run_server(ctx.app) as url:
        await ctx.state.promote("products", "v2", reason="test", actor="tester")
        table = await asyncio.to_thread(run, "status", "--admin-url", url)
        as_json = await asyncio.to_thread(run, "status", "--admin-url", url, "--format", "json")
    assert table.exit_code == 0, table.output
    rows = rows_of(table.stdout)
    # Promoted: products' numbers start again (V2 primary, V1 its shadow); the V1-primary story is kept apart.
    assert rows["products"][1] == "v2" and verdict_of(rows["products"]) == "no traffic"
    assert rows["orders"][:6] == ["orders", "v1", "140", "7.14%", "14.29%", "1.43%"]
    assert verdict_of(rows["orders"]) == "NOT READY"
    assert "✗ orders: diff rate 7.14% > 1.00%" in table.stdout
    services = {s["service"]: s for s in json.loads(as_json.stdout)["services"]}
    products = services["products"]
    assert products["primary"] == "v2" and products["since"] == products["last_promotion"] is not None
    assert [(d["primary"], d["counts"]["samples"]) for d in products["directions"]] == []
    assert services["orders"]["counts"]["samples"] == 140 and services["orders"]["directions"][0]["primary"] == "v1"


@pytest.mark.parametrize("width", [80, 120])
async def test_status_fits_the_terminal(tmp_path: Path, width: int) -> None:
    """Issue 13: at 80 columns `shadowdiff status` showed `defau...` and `produ...`."""
    async with report_app(f"sqlite+aiosqlite:///{tmp_path / 'live.db'}") as ctx, run_server(ctx.app) as url:
        result = await asyncio.to_thread(run, "status", "--admin-url", url, env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= width and "…" not in result.stdout
    rows = rows_of(result.stdout)
    assert sorted(rows) == ["ai", "default", "orders", "products"]
    assert [verdict_of(rows[name]) for name in sorted(rows)] == ["NOT READY", "no traffic", "NOT READY", "READY"]


def test_status_without_an_admin_plane_is_one_line() -> None:
    result = run("status", "--admin-url", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert one_line_error(result) == (
        "shadowdiff: cannot reach the admin API at http://127.0.0.1:9: is `shadowdiff proxy` running?"
    )
