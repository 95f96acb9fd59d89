"""What every step factory needs: the config, where it came from, and reference parsing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from config.errors import ConfigError
from config.models import PipelineConfig, is_reference
from steps.assets import make_asset, resolve_script
from steps.spec import CodeAsset, Instance, OutputRef, ParamRef, Value


@dataclass
class BuildContext:
    config: PipelineConfig
    base_dir: Path
    source: str | None
    built: dict  # stage name -> Stage already built (factories look upstream, never downstream)

    @property
    def pipeline(self) -> str:
        return self.config.pipeline.name

    @property
    def prefix(self) -> str:
        return self.config.aws.prefix

    def ref(self, value: object) -> Value:
        """"$Param" -> ParamRef, "stage.output" -> OutputRef, anything else stays literal."""
        if is_reference(value):
            text = str(value)
            if text.startswith("$"):
                return ParamRef(text[1:])
            stage, _, output = text.partition(".")
            return OutputRef(stage, output)
        return value  # type: ignore[return-value]

    def instance(self, cfg) -> Instance:
        count = self.ref(cfg.instance_count)
        return Instance(type=cfg.instance_type, count=count, volume_gb=cfg.volume_size_gb,
                        max_runtime_seconds=cfg.max_runtime_seconds)

    def asset(self, ref: str, field: str, archive: bool = False, extra: tuple[str, ...] = ()) -> CodeAsset:
        entry = resolve_script(ref, self.base_dir, field, self.source)
        more = tuple(resolve_script(r, self.base_dir, field, self.source) for r in extra)
        return make_asset(entry, self.config.aws.bucket, self.prefix, archive=archive, extra=more)

    def error(self, message: str, field: str, fix: str | None = None) -> ConfigError:
        return ConfigError(message, source=self.source, field=field, fix=fix)

    def producer(self, ref: Value, kinds: set[str], field: str):
        """The upstream stage a reference points at, checked to be of an expected kind."""
        if not isinstance(ref, OutputRef):
            raise self.error(f"expected a reference to a {'/'.join(sorted(kinds))} stage", field)
        stage = self.built.get(ref.stage)
        if stage is None:
            raise self.error(f"{ref.stage!r} must come before this stage", field,
                             "reorder the stages so producers come first")
        if stage.kind not in kinds:
            raise self.error(f"{ref.stage!r} is a {stage.kind} stage; expected {'/'.join(sorted(kinds))}", field)
        return stage

    def training_of(self, ref: Value, field: str):
        """Follow a model reference back to the training stage that produced the artifact."""
        stage = self.producer(ref, {"training", "model"}, field)
        if stage.kind == "model":
            return self.built[stage.inputs["model_data"].stage]
        return stage

    def latest(self, kind: str):
        for stage in reversed(list(self.built.values())):
            if stage.kind == kind:
                return stage
        return None
