// Verify a VIZOCHOK event webhook request in plain Node.js (no dependencies).
//
// Event requests (docs/webhooks.md §8) are POSTs whose body is
//   {"id": "evt_…", "event": "<type>", "timestamp": "<RFC 3339 UTC>", "data": {…}}
// signed with the endpoint's scheme:
//   vizochok           X-VIZOCHOK-Timestamp + X-VIZOCHOK-Signature, exactly as the
//                      synchronous calls (verify.js), plus X-VIZOCHOK-Event,
//                      X-VIZOCHOK-Delivery (= the body's id) and X-VIZOCHOK-Attempt
//   standard-webhooks  webhook-id, webhook-timestamp, webhook-signature "v1,<base64>" of
//                      HMAC-SHA256(key = base64-decoded part of "whsec_…",
//                      message = "<id>.<timestamp>." + raw body)
// The same event id arrives again on a retry or after a crash: handle each id once.
"use strict";

const crypto = require("node:crypto");
const { verifyRequest, VerificationError, DEFAULT_TOLERANCE_SECONDS } = require("./verify");

// A verified request that is not an event envelope, or whose delivery id is not the body's
// id: answer 400 and do not act on it.
class InvalidEvent extends Error {
  constructor(message) {
    super(message);
    this.name = "InvalidEvent";
    this.code = "invalid_event";
  }
}

function headerValue(headers, name) {
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === name) {
      return Array.isArray(value) ? value.join(", ") : String(value);
    }
  }
  return undefined;
}

// Amounts are JSON numbers with up to 4 decimal places: read them exactly if you compute
// with them (e.g. with a decimal library), not as floats.
function parseEnvelope(body, deliveryId) {
  let event;
  try {
    event = JSON.parse(body.toString("utf8"));
  } catch (error) {
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
    throw new InvalidEvent("X-VIZOCHOK-Delivery must be the event's id");
  }
  return event;
}

/**
 * Verify an event request signed with the vizochok scheme and read its envelope.
 * Throws VerificationError (answer 401) or InvalidEvent (answer 400).
 *
 * @param {object} options  as verifyRequest: headers, body (raw Buffer), secrets,
 *                          toleranceSeconds, now (Unix seconds)
 * @returns {{event: {id: string, event: string, timestamp: string, data: object},
 *            attempt: number|undefined, secretIndex: number}}
 */
function verifyEvent(options) {
  const verified = verifyRequest(options);
  const event = parseEnvelope(options.body, verified.deliveryId);
  const attempt = headerValue(options.headers, "x-vizochok-attempt");
  return {
    event,
    attempt: attempt !== undefined && /^[1-9][0-9]{0,5}$/.test(attempt) ? Number(attempt) : undefined,
    secretIndex: verified.secretIndex,
  };
}

/**
 * Verify an event request signed with the standard-webhooks scheme and read its envelope.
 * Throws VerificationError (answer 401) or InvalidEvent (answer 400).
 *
 * While a secret is rolled (docs/webhooks.md §7) the request carries two space-separated
 * signatures, "v1,<old> v1,<new>": pass the secrets you hold (current first); any one
 * secret matching any one signature verifies.
 *
 * @param {object} options
 * @param {object} options.headers
 * @param {Buffer} options.body  the raw body bytes
 * @param {string|string[]} options.secrets  "whsec_" + base64 key, or a list of them
 *        (`secret`, one string, is read when `secrets` is not given)
 * @param {number} [options.toleranceSeconds=300]
 * @param {number} [options.now]  Unix seconds; defaults to the wall clock
 * @returns {{event: object, secretIndex: number}}  secretIndex: which secret matched
 */
function verifyStandardWebhook({ headers, body, secrets, secret, toleranceSeconds, now }) {
  if (!Buffer.isBuffer(body)) throw new TypeError("body must be the raw request bytes (a Buffer)");
  const given = secrets === undefined ? secret : secrets;
  const candidates = typeof given === "string" ? [given] : Array.from(given || []);
  if (candidates.length === 0) throw new TypeError("secrets must be a whsec_ secret or a list of them");
  const keys = candidates.map((candidate, index) => {
    if (typeof candidate !== "string" || !candidate.startsWith("whsec_")) {
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
  if (!/^(0|[1-9][0-9]{0,14})$/.test(timestamp)) {
    throw new VerificationError("malformed_header", "webhook-timestamp must be whole seconds");
  }
  const tolerance = toleranceSeconds === undefined ? DEFAULT_TOLERANCE_SECONDS : toleranceSeconds;
  const skew = (now === undefined ? Date.now() / 1000 : now) - Number(timestamp);
  if (skew > tolerance) throw new VerificationError("timestamp_expired", `timestamp is ${Math.round(skew)} s old`);
  if (-skew > tolerance) throw new VerificationError("timestamp_in_future", `timestamp is ${Math.round(-skew)} s ahead`);
  const signed = Buffer.concat([Buffer.from(`${id}.${timestamp}.`, "utf8"), body]);
  // Several space-separated "v1,<base64>" values may come (during a secret rotation).
  const given64 = signatures
    .split(" ")
    .map((entry) => entry.split(",", 2))
    .filter(([version, value]) => version === "v1" && value !== undefined)
    .map(([, value]) => Buffer.from(value, "base64"));
  let secretIndex = -1;
  // Every secret is checked, so timing does not tell which one matched.
  keys.forEach((key, index) => {
    const expected = crypto.createHmac("sha256", key).update(signed).digest();
    const matched = given64.some(
      (value) => value.length === expected.length && crypto.timingSafeEqual(value, expected),
    );
    if (matched && secretIndex === -1) secretIndex = index;
  });
  if (secretIndex === -1) throw new VerificationError("signature_mismatch", "no webhook-signature matches the raw body");
  return { event: parseEnvelope(body, id), secretIndex };
}

module.exports = { verifyEvent, verifyStandardWebhook, InvalidEvent };
