"""The local runtime: run every stage of a PipelineSpec on this machine, no AWS, no Docker.

Each stage runs in its own process under the same container contract as SageMaker
(``/opt/ml/...`` mapped into the run directory, ``SM_*`` variables), forked from a warm
server that has already imported pandas, scikit-learn and xgboost.
"""
