"""vizochok-dispatch: the VIZOCHOK platform's signed, bounded calls to tenants' webhooks.

The public API is what ``__all__`` names; everything in ``_``-modules may change.
"""

from ._cache import CachedConfigStore
from ._config import UNSET, ConfigRules, WebhookConfig, generate_secret, mask_secret
from ._delivery import USER_AGENT, Clock, RetryPolicy
from ._dispatcher import Dispatcher
from ._exceptions import (
    DispatchError,
    FieldError,
    InvalidCall,
    InvalidConfig,
    SchemaNotReady,
    StoreError,
)
from ._results import (
    Attempt,
    CartItem,
    CartLoad,
    CartResult,
    Delivery,
    ProductOffer,
    ProductsResult,
)
from ._settings import DispatchSettings
from ._signing import (
    ATTEMPT_HEADER,
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    compute_signature,
    signature_headers,
)
from ._sql_store import SqlConfigStore
from ._store import ConfigStore, InMemoryConfigStore
from ._transport import AiohttpTransport
from ._version import __version__

__all__ = [
    "ATTEMPT_HEADER",
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "UNSET",
    "USER_AGENT",
    "AiohttpTransport",
    "Attempt",
    "CachedConfigStore",
    "CartItem",
    "CartLoad",
    "CartResult",
    "Clock",
    "ConfigRules",
    "ConfigStore",
    "Delivery",
    "DispatchError",
    "DispatchSettings",
    "Dispatcher",
    "FieldError",
    "InMemoryConfigStore",
    "InvalidCall",
    "InvalidConfig",
    "ProductOffer",
    "ProductsResult",
    "RetryPolicy",
    "SchemaNotReady",
    "SqlConfigStore",
    "StoreError",
    "WebhookConfig",
    "__version__",
    "compute_signature",
    "generate_secret",
    "mask_secret",
    "signature_headers",
]
