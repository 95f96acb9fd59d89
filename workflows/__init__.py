"""Everything that turns a PipelineSpec into something that runs: renderers, the local
runner, deploy and operations. AWS calls happen only in ``workflows/aws/``."""
