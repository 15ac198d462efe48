"""Grafana, as code: PumpTwin's dashboards (``dashboards``) and the way Grafana's InfluxQL data
source turns a panel's query text into the InfluxQL that InfluxDB receives (``interpolation``).

Pure: building a dashboard writes no file and talks to no Grafana; ``python -m twin.grafana``
(or ``make dashboards``) writes ``dashboards/json/`` from here.
"""
