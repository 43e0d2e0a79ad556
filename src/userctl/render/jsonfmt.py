"""`--format json`: the plan's serialisation itself, documented by schemas/plan.schema.json."""

from userctl.plan import dumps_data as render

__all__ = ["render"]
