"""MLflow tracking/registry (:mod:`.mlflow_tracking`, pipeline venv), the promotion gate (:mod:`.gate`,
pure) and the bundle pyfunc (:mod:`.pyfunc`)."""
