// vizochok-receiver: verify and answer VIZOCHOK webhooks in Node.js (no dependencies).
//
// Synchronous calls (docs/webhooks.md §2): X-VIZOCHOK-Signature = "sha256=" + lowercase hex of
// HMAC-SHA256(key = UTF-8 secret, message = "<timestamp>." + raw body bytes), and
// X-VIZOCHOK-Timestamp (Unix seconds) within 300 s of the receiver's clock.
//
// Event requests (docs/webhooks.md §8) are POSTs whose body is
//   {"id": "evt_…", "event": "<type>", "timestamp": "<RFC 3339 UTC>", "data": {…}}
// signed with the endpoint's scheme:
//   vizochok           the signature above, plus X-VIZOCHOK-Event, X-VIZOCHOK-Delivery
//                      (= the body's id) and X-VIZOCHOK-Attempt
//   standard-webhooks  webhook-id, webhook-timestamp, webhook-signature "v1,<base64>" of
//                      HMAC-SHA256(key = base64-decoded part of "whsec_…",
//                      message = "<id>.<timestamp>." + raw body)
//
// Pass the RAW body bytes (a Buffer), never JSON.stringify(JSON.parse(...)): re-serialised
// JSON rarely has the same bytes, so it would never verify.
import crypto from "node:crypto";

export const DEFAULT_TOLERANCE_SECONDS = 300;
const SIGNATURE_HEADER = "x-vizochok-signature";
const TIMESTAMP_HEADER = "x-vizochok-timestamp";
const DELIVERY_HEADER = "x-vizochok-delivery";
const ATTEMPT_HEADER = "x-vizochok-attempt";
const TIMESTAMP_FORM = /^(0|[1-9][0-9]{0,14})$/;
const DELIVERY_FORM = /^[A-Za-z0-9._:-]{1,200}$/;

/** A refusal (answer 401); `code` is one of the Python kit's 401 codes. Never holds a secret. */
export class VerificationError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "VerificationError";
    this.code = code;
  }
}

/** A verified request that is not an event envelope, or whose delivery id is not the body's id
 * (answer 400 and do not act on it). */
export class InvalidEvent extends Error {
  constructor(message) {
    super(message);
    this.name = "InvalidEvent";
    this.code = "invalid_event";
  }
}

// Header lookup by lower-cased name; Node lower-cases incoming names already, a plain object
// written by hand may not. Node joins a repeated header with ", ", which then fails the format
// checks, so a doubled signature is refused.
function headerValue(headers, name) {
  if (headers && typeof headers.get === "function" && !(headers instanceof Map)) {
    const value = headers.get(name); // a WHATWG Headers object (fetch, Fastify's raw, Hono …)
    return value === null ? undefined : value;
  }
  for (const [key, value] of Object.entries(headers || {})) {
    if (key.toLowerCase() === name) {
      return Array.isArray(value) ? value.join(", ") : String(value);
    }
  }
  return undefined;
}

function rawBytes(body) {
  if (Buffer.isBuffer(body)) return body;
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  throw new TypeError("body must be the raw request bytes (a Buffer or Uint8Array)");
}

function secretList(secrets) {
  const list = typeof secrets === "string" ? [secrets] : Array.from(secrets || []);
  if (list.length === 0 || list.some((s) => typeof s !== "string" || s === "")) {
    throw new TypeError("secrets must be a non-empty string or a list of them (current first)");
  }
  return list;
}

function checkClock(timestamp, toleranceSeconds, now) {
  const tolerance = toleranceSeconds === undefined ? DEFAULT_TOLERANCE_SECONDS : toleranceSeconds;
  const skew = (now === undefined ? Date.now() / 1000 : now) - Number(timestamp);
  if (skew > tolerance) {
    throw new VerificationError("timestamp_expired", `timestamp is ${Math.round(skew)} s old`);
  }
  if (-skew > tolerance) {
    throw new VerificationError("timestamp_in_future", `timestamp is ${Math.round(-skew)} s ahead`);
  }
}

function attemptOf(headers) {
  const attempt = headerValue(headers, ATTEMPT_HEADER);
  return attempt !== undefined && /^[1-9][0-9]{0,5}$/.test(attempt) ? Number(attempt) : undefined;
}

/**
 * Verify one request signed with the vizochok scheme (synchronous calls, and events of an
 * endpoint on that scheme). Throws VerificationError; returns what the request proved.
 */
export function verifyRequest({ headers, body, secrets, toleranceSeconds, now }) {
  const raw = rawBytes(body);
  const candidates = secretList(secrets);
  const timestamp = headerValue(headers, TIMESTAMP_HEADER);
  const signature = headerValue(headers, SIGNATURE_HEADER);
  if (timestamp === undefined) {
    throw new VerificationError("missing_header", "missing header X-VIZOCHOK-Timestamp");
  }
  if (signature === undefined) {
    throw new VerificationError("missing_header", "missing header X-VIZOCHOK-Signature");
  }
  // Canonical digits only: the signer MACs String(t), so "+5", " 5" or "05" cannot match.
  if (!TIMESTAMP_FORM.test(timestamp)) {
    throw new VerificationError("malformed_header", "X-VIZOCHOK-Timestamp must be whole seconds");
  }
  if (!/^sha256=[0-9a-f]{64}$/.test(signature)) {
    throw new VerificationError(
      "malformed_header",
      "X-VIZOCHOK-Signature must be 'sha256=' and 64 lowercase hex digits",
    );
  }
  checkClock(timestamp, toleranceSeconds, now);

  const given = Buffer.from(signature.slice("sha256=".length), "hex");
  const message = Buffer.concat([Buffer.from(`${timestamp}.`, "ascii"), raw]);
  let secretIndex = -1;
  // Every secret is checked, so timing does not tell which one matched.
  candidates.forEach((secret, index) => {
    const expected = crypto.createHmac("sha256", Buffer.from(secret, "utf8")).update(message).digest();
    if (crypto.timingSafeEqual(expected, given) && secretIndex === -1) secretIndex = index;
  });
  if (secretIndex === -1) {
    throw new VerificationError(
      "signature_mismatch",
      `signature does not match the raw body (checked against ${candidates.length} secret(s))`,
    );
  }
  return {
    timestamp: Number(timestamp),
    secretIndex,
    deliveryId: headerValue(headers, DELIVERY_HEADER),
    attempt: attemptOf(headers),
  };
}

// Amounts are JSON numbers with up to 4 decimal places: read them exactly if you compute with
// them (e.g. with a decimal library), not as floats.
function parseEnvelope(body, deliveryId) {
  let event;
  try {
    event = JSON.parse(body.toString("utf8"));
  } catch {
    throw new InvalidEvent("body is not JSON");
  }
  if (event === null || typeof event !== "object" || Array.isArray(event)) {
    throw new InvalidEvent("body must be a JSON object");
  }
  for (const field of ["id", "event", "timestamp"]) {
    if (typeof event[field] !== "string") throw new InvalidEvent(`${field} must be a string`);
  }
  if (event.data === null || typeof event.data !== "object" || Array.isArray(event.data)) {
    throw new InvalidEvent("data must be a JSON object");
  }
  // The body's id is signed; the header is not, so it must agree.
  if (deliveryId !== undefined && deliveryId !== event.id) {
    throw new InvalidEvent("the delivery id header must be the event's id");
  }
  return event;
}

/** Verify an event request on the vizochok scheme and read its envelope. Throws
 * VerificationError (401) or InvalidEvent (400). */
export function verifyEvent(options) {
  const verified = verifyRequest(options);
  const event = parseEnvelope(rawBytes(options.body), verified.deliveryId);
  return { event, attempt: verified.attempt, secretIndex: verified.secretIndex };
}

/**
 * Verify an event request on the standard-webhooks scheme and read its envelope. Throws
 * VerificationError (401) or InvalidEvent (400). While a secret is rolled (docs/webhooks.md §7)
 * the request carries two space-separated signatures, "v1,<old> v1,<new>": any one secret you
 * hold matching any one signature verifies.
 */
export function verifyStandardWebhook({ headers, body, secrets, secret, toleranceSeconds, now }) {
  const raw = rawBytes(body);
  const candidates = secretList(secrets === undefined ? secret : secrets);
  const keys = candidates.map((candidate, index) => {
    if (!candidate.startsWith("whsec_")) {
      throw new TypeError(`secret #${index} must be whsec_ followed by base64`);
    }
    return Buffer.from(candidate.slice("whsec_".length), "base64");
  });
  const id = headerValue(headers, "webhook-id");
  const timestamp = headerValue(headers, "webhook-timestamp");
  const signatures = headerValue(headers, "webhook-signature");
  if (id === undefined || timestamp === undefined || signatures === undefined) {
    throw new VerificationError("missing_header", "missing a webhook-id, -timestamp or -signature header");
  }
  if (!TIMESTAMP_FORM.test(timestamp)) {
    throw new VerificationError("malformed_header", "webhook-timestamp must be whole seconds");
  }
  checkClock(timestamp, toleranceSeconds, now);
  const signed = Buffer.concat([Buffer.from(`${id}.${timestamp}.`, "utf8"), raw]);
  const given = signatures
    .split(" ")
    .map((entry) => entry.split(",", 2))
    .filter(([version, value]) => version === "v1" && value !== undefined)
    .map(([, value]) => Buffer.from(value, "base64"));
  let secretIndex = -1;
  // Every secret is checked, so timing does not tell which one matched.
  keys.forEach((key, index) => {
    const expected = crypto.createHmac("sha256", key).update(signed).digest();
    const matched = given.some(
      (value) => value.length === expected.length && crypto.timingSafeEqual(value, expected),
    );
    if (matched && secretIndex === -1) secretIndex = index;
  });
  if (secretIndex === -1) {
    throw new VerificationError("signature_mismatch", "no webhook-signature matches the raw body");
  }
  return { event: parseEnvelope(raw, id), attempt: attemptOf(headers), secretIndex };
}

// -- the handler helper ----------------------------------------------------------------------

function answer(status, value, extraHeaders = {}) {
  return {
    status,
    headers: { "content-type": "application/json", ...extraHeaders },
    body: JSON.stringify(value),
  };
}

function refusal(status, code, message) {
  return answer(status, { error: code, message });
}

/** Raise from a handler to answer 503: VIZOCHOK retries once, with the same delivery id. */
export class RetryLater extends Error {
  constructor(message = "retry later") {
    super(message);
    this.name = "RetryLater";
  }
}

// The first complete answer per delivery id, bounded in count and age (longer than the
// 300-second signature window), so a retried call is answered alike and applied once.
class AnswerMemory {
  constructor({ maxEntries = 10_000, ttlSeconds = 600, clock }) {
    this.maxEntries = maxEntries;
    this.ttlMs = ttlSeconds * 1000;
    this.clock = clock;
    this.entries = new Map(); // key -> {digest, answer|null (in flight), at}
  }

  prune() {
    const oldest = this.clock() - this.ttlMs;
    for (const [key, entry] of this.entries) {
      if (entry.at >= oldest && this.entries.size <= this.maxEntries) break;
      if (entry.answer !== null || entry.at < oldest) this.entries.delete(key);
    }
  }

  claim(key, digest) {
    this.prune();
    const held = this.entries.get(key);
    if (held === undefined) {
      this.entries.set(key, { digest, answer: null, at: this.clock() });
      return { kind: "claimed" };
    }
    if (held.digest !== digest) return { kind: "reused" };
    return held.answer === null ? { kind: "in_progress" } : { kind: "done", answer: held.answer };
  }

  complete(key, answered) {
    const held = this.entries.get(key);
    if (held !== undefined) held.answer = answered;
  }

  release(key) {
    this.entries.delete(key);
  }
}

async function runOnce(memory, key, raw, run) {
  if (key === undefined) return run();
  const digest = crypto.createHash("sha256").update(raw).digest("hex");
  const claim = memory.claim(key, digest);
  if (claim.kind === "done") {
    return { ...claim.answer, headers: { ...claim.answer.headers, "idempotent-replay": "true" } };
  }
  if (claim.kind === "reused") {
    return refusal(409, "delivery_id_reused", "this delivery id came before with another body");
  }
  if (claim.kind === "in_progress") {
    return refusal(409, "delivery_in_progress", "this delivery id is still being handled");
  }
  let answered;
  try {
    answered = await run();
  } catch (error) {
    memory.release(key);
    throw error;
  }
  // A failed attempt keeps nothing, so VIZOCHOK's retry runs normally.
  if (answered.status >= 500) memory.release(key);
  else memory.complete(key, answered);
  return answered;
}

async function callHandler(run) {
  try {
    return await run();
  } catch (error) {
    if (error instanceof RetryLater) return refusal(503, "retry_later", error.message);
    return refusal(500, "internal_error", "the handler failed"); // never the error's text
  }
}

function verificationAnswer(error) {
  if (error instanceof VerificationError) return refusal(401, error.code, error.message);
  if (error instanceof InvalidEvent) return refusal(400, error.code, error.message);
  return null;
}

/**
 * A framework-agnostic handler for one synchronous webhook (products, cart or cart GET):
 * `await handle(headers, rawBody)` answers `{status, headers, body}` for you to send.
 * The request is verified before `onRequest` runs; a POST's body is parsed after that.
 * A request carrying X-VIZOCHOK-Delivery is handled once per id: a retry of a completed one
 * gets the first answer again (with `idempotent-replay: true`); a failure (5xx, a throw)
 * keeps nothing, so the retry runs. `onRequest` returns the JSON value to answer with 200;
 * throwing RetryLater answers 503, anything else 500.
 */
export function createWebhookHandler({
  secrets,
  onRequest,
  toleranceSeconds,
  now,
  idempotency = true,
}) {
  if (typeof onRequest !== "function") throw new TypeError("onRequest must be a function");
  const secretsNow = typeof secrets === "function" ? secrets : () => secrets;
  secretList(secretsNow()); // a wrong setting fails at start-up, not on the first request
  const clock = () => (now === undefined ? Date.now() : now() * 1000);
  const memory = new AnswerMemory({ clock });
  return async function handle(headers, body) {
    const raw = rawBytes(body);
    let verified;
    try {
      verified = verifyRequest({
        headers,
        body: raw,
        secrets: secretsNow(),
        toleranceSeconds,
        now: now === undefined ? undefined : now(),
      });
    } catch (error) {
      const refused = verificationAnswer(error);
      if (refused === null) throw error;
      return refused;
    }
    let json = null;
    if (raw.length > 0) {
      try {
        json = JSON.parse(raw.toString("utf8"));
      } catch {
        return refusal(422, "invalid_request", "the body is not JSON");
      }
    }
    const { deliveryId } = verified;
    if (idempotency && deliveryId !== undefined && !DELIVERY_FORM.test(deliveryId)) {
      return refusal(400, "missing_delivery_id", "X-VIZOCHOK-Delivery is malformed");
    }
    const key = idempotency ? deliveryId : undefined;
    return runOnce(memory, key, raw, () =>
      callHandler(async () => answer(200, await onRequest({ json, headers, ...verified }))),
    );
  };
}

/**
 * A framework-agnostic handler for event requests: `await handle(headers, rawBody)` answers
 * `{status, headers, body}`. `scheme` is the endpoint's: "vizochok" (default) or
 * "standard-webhooks". Each event id is handled once (a retry or a redelivery of a handled id
 * answers 200 without calling `onEvent` again); a throw from `onEvent` answers 500 and forgets
 * the id, so the retry runs.
 */
export function createEventHandler({ secrets, onEvent, scheme = "vizochok", toleranceSeconds, now }) {
  if (typeof onEvent !== "function") throw new TypeError("onEvent must be a function");
  if (scheme !== "vizochok" && scheme !== "standard-webhooks") {
    throw new TypeError('scheme must be "vizochok" or "standard-webhooks"');
  }
  const secretsNow = typeof secrets === "function" ? secrets : () => secrets;
  secretList(secretsNow());
  const verify = scheme === "vizochok" ? verifyEvent : verifyStandardWebhook;
  const clock = () => (now === undefined ? Date.now() : now() * 1000);
  const memory = new AnswerMemory({ clock });
  return async function handle(headers, body) {
    const raw = rawBytes(body);
    let verified;
    try {
      verified = verify({
        headers,
        body: raw,
        secrets: secretsNow(),
        toleranceSeconds,
        now: now === undefined ? undefined : now(),
      });
    } catch (error) {
      const refused = verificationAnswer(error);
      if (refused === null) throw error;
      return refused;
    }
    return runOnce(memory, verified.event.id, raw, () =>
      callHandler(async () => {
        await onEvent(verified.event, verified);
        return answer(200, { received: true });
      }),
    );
  };
}
