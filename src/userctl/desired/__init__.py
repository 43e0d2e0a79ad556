"""The desired state: strict YAML loading, JSON Schema and semantic validation (DESIGN §2)."""
