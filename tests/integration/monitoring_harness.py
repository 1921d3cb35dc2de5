"""A real Prometheus server for tests: scrape given targets, then check the dashboard and alerts.

    with PrometheusHarness([("node0", "127.0.0.1:9101"), ...], tmp_path) as prom:
        prom.wait_targets_up()
        prom.wait_for_data("bcfl_chain_height")
        failures = prom.check_dashboard_and_rules()
        assert not failures, "\n".join(failures)

It runs the Debian `prometheus` binary on 127.0.0.1 (a free port, a temporary
TSDB), with the configuration `telemetry.promconfig` writes for devnets and the
shipped alert rules. `check_dashboard_and_rules` evaluates, through the HTTP
API, every PromQL expression of every panel of devnet/grafana/dashboards/bcfl.json
(Grafana variables substituted) and every alert rule Prometheus loaded; a panel
query that returns no series, or an expression that errors, is a failure.
Alert expressions only have to evaluate (an alert that does not fire returns
nothing, which is the normal state). `promtool_check_metrics` runs
`promtool check metrics` on a target's exposition text.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from telemetry.promconfig import ALERTS_PATH, DASHBOARD_PATH, write_prometheus_config

GRAFANA_VARIABLES = {
    "$__rate_interval": "10s",
    "$__interval": "2s",
    "$__range": "1m",
    "$node": ".*",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dashboard_queries(path: Path = DASHBOARD_PATH) -> list[tuple[str, str]]:
    """(panel title, expr) for every target of every panel, rows' nested panels included."""
    model = json.loads(path.read_text(encoding="utf-8"))
    found: list[tuple[str, str]] = []

    def visit(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    found.append((panel.get("title", "?"), target["expr"]))
            visit(panel.get("panels", []))

    visit(model.get("panels", []))
    return found


def substitute(expr: str, variables: dict[str, str] = GRAFANA_VARIABLES) -> str:
    """Replace Grafana variables (longest names first, so $__range is not eaten by $__r...)."""
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace(name, variables[name])
    return expr


def promtool_check_metrics(exposition: bytes) -> str:
    """Problems `promtool check metrics` reports for an exposition text ('' when clean)."""
    result = subprocess.run(
        ["promtool", "check", "metrics"],
        input=exposition,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return (result.stdout + result.stderr).decode().strip() if result.returncode else ""


class PrometheusHarness:
    """A Prometheus process scraping `targets` [(node name, "host:port")], for one test."""

    def __init__(
        self,
        targets: Sequence[tuple[str, str]],
        workdir: Path,
        *,
        rules_path: Path | None = ALERTS_PATH,
        scrape_interval_s: float = 1.0,
    ) -> None:
        if shutil.which("prometheus") is None:
            raise RuntimeError(
                "the prometheus binary is missing: apt-get install prometheus (.ci/run does)"
            )
        self.targets = list(targets)
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = write_prometheus_config(
            workdir / "prometheus.yml",
            self.targets,
            rules_path,
            scrape_interval_s=scrape_interval_s,
        )
        self.log_path = workdir / "prometheus.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrometheusHarness:
        log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        try:
            self._wait(self._ready, 30, "Prometheus did not become ready")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    # --- HTTP API ---------------------------------------------------------------

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; returns `data`, raises on an error status."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            raise ValueError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the result as a list of series (a scalar becomes one series)."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    # --- waiting ----------------------------------------------------------------

    def wait_targets_up(self, timeout_s: float = 30) -> None:
        """Wait until every configured target has been scraped successfully."""

        def all_up() -> bool:
            active = self.api("targets", state="active")["activeTargets"]
            return len(active) == len(self.targets) and all(t["health"] == "up" for t in active)

        self._wait(all_up, timeout_s, "not every scrape target came up")

    def wait_for_data(self, expr: str, timeout_s: float = 60, series: int = 1) -> None:
        """Wait until `expr` returns at least `series` series with finite values."""
        self._wait(
            lambda: len(_finite(self.query(expr))) >= series,
            timeout_s,
            f"no data for {expr}",
        )

    def wait_rules_evaluated(self, timeout_s: float = 30) -> list[dict[str, Any]]:
        """Wait until every loaded rule has been evaluated once; return the rules."""
        rules: list[dict[str, Any]] = []

        def evaluated() -> bool:
            nonlocal rules
            groups = self.api("rules")["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            return bool(rules) and all(r.get("health") in ("ok", "err") for r in rules)

        self._wait(evaluated, timeout_s, "alert rules were not evaluated")
        return rules

    # --- the check ----------------------------------------------------------------

    def check_dashboard_and_rules(
        self, dashboard: Path = DASHBOARD_PATH, *, allow_nan: bool = True
    ) -> list[str]:
        """Every failure: a panel query with no data (or only NaN if not allowed), an error."""
        failures: list[str] = []
        for title, expr in dashboard_queries(dashboard):
            try:
                result = self.query(substitute(expr))
            except ValueError as exc:
                failures.append(f"panel {title!r}: {expr}: {exc}")
                continue
            if not result:
                failures.append(f"panel {title!r}: no data for {expr}")
            elif not allow_nan and not _finite(result):
                failures.append(f"panel {title!r}: only NaN for {expr}")
        for rule in self.wait_rules_evaluated():
            if rule.get("health") != "ok":
                failures.append(f"rule {rule['name']}: {rule.get('lastError')}")
            try:
                self.query(rule["query"])
            except ValueError as exc:
                failures.append(f"rule {rule['name']}: {rule['query']}: {exc}")
        return failures

    def _ready(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise RuntimeError(f"prometheus exited: {self.log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    @staticmethod
    def _wait(condition: Any, timeout_s: float, message: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{message} within {timeout_s:.0f} s")
            time.sleep(0.2)


def _finite(result: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in result if "value" in s and math.isfinite(float(s["value"][1]))]
