"""vizochok-dispatch: the VIZOCHOK platform's signed, bounded calls to tenants' webhooks.

The public API is what ``__all__`` names; everything in ``_``-modules may change.
"""

from ._exceptions import (
    DispatchError,
    FieldError,
    InvalidCall,
    InvalidConfig,
    NoPendingSecret,
    SchemaNotReady,
    SecretUnreadable,
    SettingsError,
    StoreError,
    TenantError,
    TenantExists,
    UnknownTenant,
)
from ._version import __version__
from .contract._signing import (
    ATTEMPT_HEADER,
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    compute_signature,
    signature_headers,
)
from .events._catalog import EVENT_TYPES, EventType
from .events._schedule import RetrySchedule
from .events._service import EventService
from .events._values import (
    DrainReport,
    EndpointDisabled,
    EndpointTestReport,
    EventAttempt,
    EventDelivery,
    EventEndpoint,
    PublishedEvent,
    PurgeReport,
    RecoveryReport,
)
from .http._transport import AiohttpTransport
from .observe import Metrics, Tracing
from .tenants._cache import CachedConfigStore
from .tenants._config import UNSET, ConfigRules, WebhookConfig, generate_secret, mask_secret
from .tenants._crypto import SecretBox
from .tenants._pages import Page
from .tenants._sql_store import ReencryptReport, SqlConfigStore
from .tenants._store import ConfigStore, InMemoryConfigStore
from .tenants._tenants import ApiKeyInfo, IssuedKey, Tenant, TenantDirectory
from .webhooks._calllog import CallLog
from .webhooks._calllog_store import LoggedCall
from .webhooks._conformance import (
    Check,
    CheckOptions,
    CheckTarget,
    ConformanceReport,
    EventTarget,
    check_tenant,
    run_conformance,
)
from .webhooks._delivery import USER_AGENT, Clock, RetryPolicy
from .webhooks._dispatcher import Dispatcher
from .webhooks._ratelimit import RateLimiter
from .webhooks._results import (
    Attempt,
    CartItem,
    CartLoad,
    CartResult,
    Delivery,
    ProductOffer,
    ProductsResult,
)
from .webhooks._settings import DispatchSettings
from .webhooks._testfire import FireAttempt, FireReport, run_test_fire

__all__ = [
    "ATTEMPT_HEADER",
    "DELIVERY_HEADER",
    "EVENT_TYPES",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "UNSET",
    "USER_AGENT",
    "AiohttpTransport",
    "ApiKeyInfo",
    "Attempt",
    "CachedConfigStore",
    "CallLog",
    "CartItem",
    "CartLoad",
    "CartResult",
    "Check",
    "CheckOptions",
    "CheckTarget",
    "Clock",
    "ConfigRules",
    "ConfigStore",
    "ConformanceReport",
    "Delivery",
    "DispatchError",
    "DispatchSettings",
    "Dispatcher",
    "DrainReport",
    "EndpointDisabled",
    "EndpointTestReport",
    "EventAttempt",
    "EventDelivery",
    "EventEndpoint",
    "EventService",
    "EventTarget",
    "EventType",
    "FieldError",
    "FireAttempt",
    "FireReport",
    "InMemoryConfigStore",
    "InvalidCall",
    "InvalidConfig",
    "IssuedKey",
    "LoggedCall",
    "Metrics",
    "NoPendingSecret",
    "Page",
    "ProductOffer",
    "ProductsResult",
    "PublishedEvent",
    "PurgeReport",
    "RateLimiter",
    "RecoveryReport",
    "ReencryptReport",
    "RetryPolicy",
    "RetrySchedule",
    "SchemaNotReady",
    "SecretBox",
    "SecretUnreadable",
    "SettingsError",
    "SqlConfigStore",
    "StoreError",
    "Tenant",
    "TenantDirectory",
    "TenantError",
    "TenantExists",
    "Tracing",
    "UnknownTenant",
    "WebhookConfig",
    "__version__",
    "check_tenant",
    "compute_signature",
    "generate_secret",
    "mask_secret",
    "run_conformance",
    "run_test_fire",
    "signature_headers",
]
