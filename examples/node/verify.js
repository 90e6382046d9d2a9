// Verify a VIZOCHOK webhook request in plain Node.js (no dependencies).
//
// Rule (docs/webhooks.md §2): X-VIZOCHOK-Signature = "sha256=" + lowercase hex of
// HMAC-SHA256(key = UTF-8 secret, message = "<timestamp>." + raw body bytes), and the
// timestamp (X-VIZOCHOK-Timestamp, Unix seconds) must be within 300 s of our clock.
//
// Pass the RAW body bytes (a Buffer), never JSON.stringify(JSON.parse(...)): re-serialised
// JSON rarely has the same bytes, so it would never verify.
"use strict";

const crypto = require("node:crypto");

const SIGNATURE_HEADER = "x-vizochok-signature";
const TIMESTAMP_HEADER = "x-vizochok-timestamp";
const DELIVERY_HEADER = "x-vizochok-delivery";
const DEFAULT_TOLERANCE_SECONDS = 300;

// The same stable codes the Python kit puts in its 401 bodies.
class VerificationError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "VerificationError";
    this.code = code;
  }
}

// Header lookup by lower-cased name; Node lower-cases incoming names already, a plain
// object written by hand may not.  Node joins a repeated header with ", ", which then
// fails the format checks below, so a doubled signature is refused.
function headerValue(headers, name) {
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === name) {
      return Array.isArray(value) ? value.join(", ") : String(value);
    }
  }
  return undefined;
}

/**
 * Verify one request; throws VerificationError, returns what the request proved.
 *
 * @param {object} options
 * @param {object} options.headers  request headers (e.g. req.headers)
 * @param {Buffer} options.body  the raw body bytes, exactly as received
 * @param {string|string[]} options.secrets  current secret first; a list lets you roll it
 * @param {number} [options.toleranceSeconds=300]
 * @param {number} [options.now]  Unix seconds; defaults to the wall clock
 * @returns {{timestamp: number, secretIndex: number, deliveryId: string|undefined}}
 */
function verifyRequest({ headers, body, secrets, toleranceSeconds, now }) {
  if (!Buffer.isBuffer(body)) {
    throw new TypeError("body must be the raw request bytes (a Buffer)");
  }
  const candidates = typeof secrets === "string" ? [secrets] : Array.from(secrets || []);
  if (candidates.length === 0 || candidates.some((s) => typeof s !== "string" || s === "")) {
    throw new TypeError("secrets must be a non-empty string or a list of them");
  }
  const tolerance = toleranceSeconds === undefined ? DEFAULT_TOLERANCE_SECONDS : toleranceSeconds;
  const current = now === undefined ? Date.now() / 1000 : now;

  const timestamp = headerValue(headers, TIMESTAMP_HEADER);
  const signature = headerValue(headers, SIGNATURE_HEADER);
  if (timestamp === undefined) {
    throw new VerificationError("missing_header", "missing header X-VIZOCHOK-Timestamp");
  }
  if (signature === undefined) {
    throw new VerificationError("missing_header", "missing header X-VIZOCHOK-Signature");
  }
  // Canonical digits only: the signer MACs String(t), so "+5", " 5" or "05" cannot match.
  if (!/^(0|[1-9][0-9]{0,14})$/.test(timestamp)) {
    throw new VerificationError("malformed_header", "X-VIZOCHOK-Timestamp must be whole seconds");
  }
  if (!/^sha256=[0-9a-f]{64}$/.test(signature)) {
    throw new VerificationError(
      "malformed_header",
      "X-VIZOCHOK-Signature must be 'sha256=' and 64 lowercase hex digits",
    );
  }

  const ts = Number(timestamp);
  const skew = current - ts;
  if (skew > tolerance) {
    throw new VerificationError("timestamp_expired", `timestamp is ${Math.round(skew)} s old`);
  }
  if (-skew > tolerance) {
    throw new VerificationError("timestamp_in_future", `timestamp is ${Math.round(-skew)} s ahead`);
  }

  const given = Buffer.from(signature.slice("sha256=".length), "utf8");
  const message = Buffer.concat([Buffer.from(`${timestamp}.`, "ascii"), body]);
  let secretIndex = -1;
  // Every secret is checked, so timing does not tell which one matched.
  candidates.forEach((secret, index) => {
    const expected = crypto.createHmac("sha256", Buffer.from(secret, "utf8")).update(message);
    const hex = Buffer.from(expected.digest("hex"), "utf8");
    if (crypto.timingSafeEqual(hex, given) && secretIndex === -1) {
      secretIndex = index;
    }
  });
  if (secretIndex === -1) {
    throw new VerificationError(
      "signature_mismatch",
      `signature does not match the raw body (checked against ${candidates.length} secret(s))`,
    );
  }
  return { timestamp: ts, secretIndex, deliveryId: headerValue(headers, DELIVERY_HEADER) };
}

module.exports = { verifyRequest, VerificationError, DEFAULT_TOLERANCE_SECONDS };
