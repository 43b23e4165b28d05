"""The OpenAI request bodies the server accepts (strict: ``"5"`` is not an integer, as with OpenAI).

Examples
--------
>>> ChatRequest.model_validate_json('{"model": "m", "messages": [{"role": "user", "content": "hi"}]}').messages[0].text()
'hi'
"""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr

MAX_STOP = 4
MAX_EMBED_INPUTS = 2048
_NUMBER = Union[StrictInt, StrictFloat]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class TextPart(_Strict):
    type: Literal["text"]
    text: StrictStr


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: Union[StrictStr, list[TextPart]]
    name: Optional[StrictStr] = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "\n".join(p.text for p in self.content)


class StreamOptions(_Strict):
    include_usage: StrictBool = False


class ChatRequest(_Strict):
    model: StrictStr
    messages: list[Message]
    max_tokens: Optional[StrictInt] = None
    max_completion_tokens: Optional[StrictInt] = None
    temperature: Optional[_NUMBER] = None
    top_p: Optional[_NUMBER] = None
    stop: Union[StrictStr, list[StrictStr], None] = None
    seed: Optional[StrictInt] = None
    n: Optional[StrictInt] = None
    stream: Optional[StrictBool] = False
    stream_options: Optional[StreamOptions] = None
    presence_penalty: Optional[_NUMBER] = None
    frequency_penalty: Optional[_NUMBER] = None
    logprobs: Optional[StrictBool] = None
    user: Optional[StrictStr] = None


class EmbeddingRequest(_Strict):
    model: StrictStr
    input: Union[StrictStr, list[StrictStr], list[StrictInt], list[list[StrictInt]]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Optional[StrictInt] = None
    user: Optional[StrictStr] = None


FIELD_NAMES = {name for cls in (TextPart, Message, StreamOptions, ChatRequest, EmbeddingRequest)
                for name in cls.model_fields}
