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


def test_report_table_lists_services_verdicts_and_failing_criteria(database: str) -> None:
    result = run("report", "--database-url", database)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in ("orders", "products", "NOT READY", "READY", "no traffic", "V2 23% faster", "GET /api/orders/{id}"):
        assert expected in out
    assert "✗ orders: diff rate 7.14% > 1.00%" in out and "✗ orders: shadow error rate 1.43% > 1.00%" in out
    assert "✗ ai: only 5 samples, need 100" in out and "default:" not in out


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
    assert result.exit_code == 1
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
    assert result.exit_code == 1 and message in one_line_error(result)


def test_an_unknown_format_is_a_usage_error(database: str) -> None:
    result = run("report", "--database-url", database, "--format", "xml")
    assert result.exit_code == 2 and "xml" in result.output + result.stderr


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
    assert bad_rate.exit_code == 2 and "'lots' is not a rate" in bad_rate.output + bad_rate.stderr
    above_one = run("check", "--database-url", database, "--max-error-rate", "150%")
    assert above_one.exit_code == 2 and "--max-error-rate" in above_one.output + above_one.stderr
    assert "Traceback" not in above_one.output + above_one.stderr


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
    rows = {line.split("│")[1].strip(): line for line in table.stdout.splitlines() if line.count("│") > 3}
    assert rows["products"].split("│")[2].strip() == "v2" and rows["products"].split("│")[9].strip() == "READY"
    assert rows["orders"].split("│")[9].strip() == "NOT READY"
    assert "✗ orders: diff rate 7.14% > 1.00%" in table.stdout
    services = {s["service"]: s for s in json.loads(as_json.stdout)["services"]}
    assert services["products"]["primary"] == "v2" and services["orders"]["counts"]["samples"] == 140


def test_status_without_an_admin_plane_is_one_line() -> None:
    result = run("status", "--admin-url", "http://127.0.0.1:9")
    assert result.exit_code == 1
    assert one_line_error(result) == (
        "shadowdiff: cannot reach the admin API at http://127.0.0.1:9: is `shadowdiff proxy` running?"
    )
