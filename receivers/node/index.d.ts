// Types of vizochok-receiver (index.js).

/** Incoming headers: Node's `req.headers`, a plain object, or a WHATWG `Headers`. */
export type IncomingHeaders =
  | Record<string, string | string[] | undefined>
  | { get(name: string): string | null };

/** One secret, or a list of them (current first) while you roll a secret. */
export type Secrets = string | readonly string[];

export declare const DEFAULT_TOLERANCE_SECONDS: 300;

export type VerificationCode =
  | "missing_header"
  | "malformed_header"
  | "timestamp_expired"
  | "timestamp_in_future"
  | "signature_mismatch";

/** A refusal: answer 401. Never holds a secret. */
export declare class VerificationError extends Error {
  readonly code: VerificationCode;
  constructor(code: VerificationCode, message: string);
}

/** Verified, but not an event envelope (or its delivery id is not the body's id): answer 400. */
export declare class InvalidEvent extends Error {
  readonly code: "invalid_event";
  constructor(message: string);
}

/** Throw from a handler to answer 503: VIZOCHOK retries once, with the same delivery id. */
export declare class RetryLater extends Error {
  constructor(message?: string);
}

export interface VerifyOptions {
  headers: IncomingHeaders;
  /** The raw body bytes, exactly as received. */
  body: Uint8Array;
  secrets: Secrets;
  /** Default 300. */
  toleranceSeconds?: number;
  /** Unix seconds; defaults to the wall clock. */
  now?: number;
}

export interface Verified {
  /** The signed Unix timestamp. */
  timestamp: number;
  /** 0: the first (current) secret matched; higher: an older one is still in use. */
  secretIndex: number;
  /** X-VIZOCHOK-Delivery (not covered by the signature). */
  deliveryId: string | undefined;
  /** X-VIZOCHOK-Attempt, when it is a number. */
  attempt: number | undefined;
}

/** An event request's envelope (docs/webhooks.md §8). */
export interface EventEnvelope {
  id: string;
  event: string;
  /** RFC 3339 UTC. */
  timestamp: string;
  data: Record<string, unknown>;
}

export interface VerifiedEvent {
  event: EventEnvelope;
  attempt: number | undefined;
  secretIndex: number;
}

export declare function verifyRequest(options: VerifyOptions): Verified;
export declare function verifyEvent(options: VerifyOptions): VerifiedEvent;
export declare function verifyStandardWebhook(
  options: Omit<VerifyOptions, "secrets"> & { secrets?: Secrets; secret?: string },
): VerifiedEvent;

/** What a handler answers: send `status`, `headers` and `body` as they are. */
export interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export type Handle = (headers: IncomingHeaders, body: Uint8Array) => Promise<Answer>;

export interface WebhookRequest extends Verified {
  /** The parsed body; null for a GET (no body). */
  json: unknown;
  headers: IncomingHeaders;
}

export interface WebhookHandlerOptions {
  /** A list, or a function returning it (read on every request, so a server can switch). */
  secrets: Secrets | (() => Secrets);
  /** Returns the JSON value answered with 200. */
  onRequest: (request: WebhookRequest) => unknown | Promise<unknown>;
  toleranceSeconds?: number;
  /** Unix seconds; for tests. */
  now?: () => number;
  /** Handle each X-VIZOCHOK-Delivery once (default true). */
  idempotency?: boolean;
}

export declare function createWebhookHandler(options: WebhookHandlerOptions): Handle;

export interface EventHandlerOptions {
  secrets: Secrets | (() => Secrets);
  onEvent: (event: EventEnvelope, verified: VerifiedEvent) => void | Promise<void>;
  /** The endpoint's signature scheme (default "vizochok"). */
  scheme?: "vizochok" | "standard-webhooks";
  toleranceSeconds?: number;
  now?: () => number;
}

export declare function createEventHandler(options: EventHandlerOptions): Handle;
