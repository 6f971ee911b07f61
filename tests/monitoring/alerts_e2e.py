"""The lag alert, end to end: a real Prometheus scrapes a running
`shopstream serve` with infra/monitoring/alerts.yml loaded; a projection is
paused, a product is written, and the ShopstreamProjectionLagging alert must
go pending for that projection, as Prometheus's own API reports it. Then
every query of the Grafana dashboard runs on that Prometheus: each must be
valid PromQL, and the projection panels must show data.

    python3 tests/monitoring/alerts_e2e.py target/debug/shopstream

Needs `prometheus` on PATH (Debian's package). Takes about 20 s.
"""

import json
import os
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from serving import call, free_port, serve, until  # noqa: E402

MONITORING = os.path.join(os.path.dirname(__file__), "..", "..", "infra", "monitoring")
RULES = os.path.join(MONITORING, "alerts.yml")
DASHBOARD = os.path.join(MONITORING, "grafana", "dashboards", "shopstream.json")
ADMIN = {"email": "admin@example.com", "password": "monitoring-admin-1"}
DEADLINE = 120








def main(binary):
    work = tempfile.mkdtemp(prefix="shopstream-alerts-")
    api_port, prom_port = free_port(), free_port()
    api = f"http://127.0.0.1:{api_port}"
    prom = f"http://127.0.0.1:{prom_port}"
    config = os.path.join(work, "prometheus.yml")
    with open(config, "w") as f:
        f.write(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {os.path.abspath(RULES)}\n"
            "scrape_configs:\n  - job_name: shopstream\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{api_port}']\n"
        )
    log = open(os.path.join(work, "processes.log"), "w")
    processes = [
        serve(binary, api_port, os.path.join(work, "data"), ADMIN, log),
        subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={work}/tsdb",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=log, stderr=log,
        ),
    ]
    try:
        token = until("an admin token",
                      lambda: call(f"{api}/v1/auth/token", ADMIN)["access_token"], DEADLINE)

        def lagging():
            alerts = call(f"{prom}/api/v1/alerts")["data"]["alerts"]
            return [a for a in alerts if a["labels"].get("alertname") == "ShopstreamProjectionLagging"]

        # Prometheus scrapes the service and has loaded the rules.
        until("a scrape of shopstream", lambda: any(
            t["health"] == "up" for t in call(f"{prom}/api/v1/targets")["data"]["activeTargets"]),
            DEADLINE)
        rules = call(f"{prom}/api/v1/rules")["data"]["groups"]
        assert any(r["name"] == "ShopstreamProjectionLagging" for g in rules for r in g["rules"]), rules
        assert lagging() == [], "nothing lags before the pause"

        call(f"{api}/v1/admin/projections/catalogue/pause", {}, token)
        call(f"{api}/v1/products", {
            "sku": "ALERT-1", "name": "Lamp", "description": "", "category": "lighting",
            "price": {"amount": 1000, "currency": "EUR"}, "tags": [],
        }, token)
        alert = until("the lag alert for catalogue", lambda: [
            a for a in lagging() if a["labels"].get("projection") == "catalogue"], DEADLINE)[0]
        assert alert["state"] in ("pending", "firing"), alert
        others = [a["labels"]["projection"] for a in lagging() if a["labels"].get("projection") != "catalogue"]
        assert others == [], f"only the paused projection lags: {others}"
        print(f"ok: ShopstreamProjectionLagging {alert['state']} for catalogue (value {alert['value']})")

        with open(DASHBOARD) as f:
            panels = json.load(f)["panels"]
        for panel in panels:
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", "1m")
                query = urllib.parse.urlencode({"query": expr})
                answer = call(f"{prom}/api/v1/query?{query}")
                assert answer["status"] == "success", (panel["title"], answer)
                if panel["title"].startswith("Projection"):
                    assert answer["data"]["result"], f"{panel['title']}: no data for {expr}"
        print(f"ok: the {len(panels)} dashboard panels' queries run")
    except BaseException:
        log.flush()
        with open(log.name) as f:
            sys.stderr.write(f.read()[-4000:])
        raise
    finally:
        for p in processes:
            p.kill()
            p.wait()


if __name__ == "__main__":
    main(sys.argv[1])
