"""mlpipe's only code that talks to AWS (besides the Lambda functions in ``lambda_handlers/``,
which call it from inside AWS): one module per service, each function one call (or one
idempotent upsert). Everything else (deploy, ops, approvals) composes these."""
