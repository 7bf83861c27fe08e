"""The VLM risk teacher (see ``docs/teachers.md``).

- ``prompt.py``: versioned prompt templates (``prompts/*.jinja``), the reply model and its JSON Schema;
- ``parse.py``: reply validation and repair, :class:`ReplyError`, reply -> :class:`FrameLabel`;
- ``backends/``: ``local`` (transformers + xgrammar), ``openai`` (OpenAI-compatible servers), ``vllm``;
- ``teacher.py``: :class:`VLMTeacher` (grounding -> prompt -> backend -> labels, with re-asks).
"""

from riskdistill.teacher.vlm.backends import (
    DecodingConfig,
    ImageInput,
    LocalBackendConfig,
    OpenAIBackendConfig,
    VLLMBackendConfig,
    VLLMNotInstalledError,
    VLMBackend,
    VLMRequest,
    available_backends,
    build_backend,
)
from riskdistill.teacher.vlm.parse import (
    REPLY_ERROR_KINDS,
    ParseConfig,
    ParsedReply,
    ReplyError,
    build_label,
    parse_reply,
)
from riskdistill.teacher.vlm.prompt import (
    DEFAULT_TEMPLATE,
    PromptError,
    PromptTemplate,
    RiskReply,
    list_templates,
    load_template,
    reply_json_schema,
)
from riskdistill.teacher.vlm.teacher import (
    CameraConfigError,
    PreparedFrame,
    VLMTeacher,
    VLMTeacherConfig,
    default_grounder,
)

__all__ = [
    "DEFAULT_TEMPLATE",
    "REPLY_ERROR_KINDS",
    "CameraConfigError",
    "DecodingConfig",
    "ImageInput",
    "LocalBackendConfig",
    "OpenAIBackendConfig",
    "ParseConfig",
    "ParsedReply",
    "PreparedFrame",
    "PromptError",
    "PromptTemplate",
    "ReplyError",
    "RiskReply",
    "VLLMBackendConfig",
    "VLLMNotInstalledError",
    "VLMBackend",
    "VLMRequest",
    "VLMTeacher",
    "VLMTeacherConfig",
    "available_backends",
    "build_backend",
    "build_label",
    "default_grounder",
    "list_templates",
    "load_template",
    "parse_reply",
    "reply_json_schema",
]
