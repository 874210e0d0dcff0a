"""The SageMaker steps: start or find a job, wait for it, stream its logs, deploy; over any
boto3-shaped SageMaker client (docs/ARCHITECTURE.md)."""
