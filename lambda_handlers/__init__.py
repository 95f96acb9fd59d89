"""Lambda functions that pipelines invoke as steps (packaged into a Lambda zip, so stdlib, boto3 and pydantic only)."""
