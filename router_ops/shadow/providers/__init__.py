"""Calling model providers: the adapter the shadow and judge tasks code against.

    from router_ops.shadow.providers import ChatResult, ProviderError, chat_complete, achat_complete

    results = run_concurrently([achat_complete(endpoint, m) for m in batch])  # one thread, many calls

No Django imports: `endpoint` is a ModelEndpoint or any object with its attributes
(name, base_url, model, api_key_env, input/output_price_per_mtok, timeout_s,
max_concurrency; optionally pk/id).
"""

from __future__ import annotations

from router_ops.shadow.providers.openai_chat import achat_complete, chat_complete, run_concurrently
from router_ops.shadow.providers.outcome import ChatResult, ProviderError

__all__ = ["ChatResult", "ProviderError", "achat_complete", "chat_complete", "run_concurrently"]
