"""The only code that talks to AWS: one module per service, each function one call (or one
idempotent upsert). Everything else (deploy, ops, approvals) composes these."""
