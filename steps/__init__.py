"""Step factories: config -> backend-neutral PipelineSpec (a typed DAG of stages).

One module per stage kind; ``steps/code/`` holds the scripts that run inside the containers.
"""
