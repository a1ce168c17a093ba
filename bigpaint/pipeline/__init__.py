"""Pipelines: one YAML describes a whole run; ``bigpaint run CONFIG`` executes it stage by stage.

:class:`PipelineConfig` is the typed config, :data:`STAGE_KINDS` the stages it may name
(each a thin call of one library function), :func:`run_pipeline` the runner that skips
finished stages and resumes a killed one, and :func:`default_config` the embedded configs
shipped inside the package (the quickstart's).
"""

from bigpaint.pipeline.config import PipelineConfig, StageConfig
from bigpaint.pipeline.defaults import default_config, default_config_text
from bigpaint.pipeline.runner import load_pipeline, plan_pipeline, run_pipeline, stage_status
from bigpaint.pipeline.stages import STAGE_KINDS, StageKind

__all__ = [
    "STAGE_KINDS",
    "PipelineConfig",
    "StageConfig",
    "StageKind",
    "default_config",
    "default_config_text",
    "load_pipeline",
    "plan_pipeline",
    "run_pipeline",
    "stage_status",
]
