"""Powertools objects, created once and imported everywhere.

Service name and metrics namespace come from POWERTOOLS_SERVICE_NAME and
POWERTOOLS_METRICS_NAMESPACE, set once in template.yaml's Globals.

No X-Ray tracer: a five-minute batch job and a stream consumer gain little from traces, while the
X-Ray SDK's import was a quarter of every cold start (measured by `make bench`).
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()
