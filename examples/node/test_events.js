// Check events.js against the event vector, for both signature schemes.
//
//   node examples/node/test_events.js [path/to/event_vector.json]
//
// Without an argument: $VIZOCHOK_EVENT_VECTOR, else event_vector.json beside this file.
// Prints one line per check and "N passed, N failed"; exits 1 on any failure.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const crypto = require("node:crypto");
const { VerificationError } = require("./verify");
const { verifyEvent, verifyStandardWebhook, InvalidEvent } = require("./events");

const vectorPath =
  process.argv[2] || process.env.VIZOCHOK_EVENT_VECTOR || path.join(__dirname, "event_vector.json");
const vector = JSON.parse(fs.readFileSync(vectorPath, "utf8"));
const body = Buffer.from(vector.body_utf8, "utf8");

let passed = 0;
let failed = 0;
function check(name, run) {
  try {
    run();
    passed += 1;
    console.log(`ok - ${name}`);
  } catch (error) {
    failed += 1;
    console.log(`not ok - ${name}: ${error.message}`);
  }
}
function expectRefused(kind, code, run) {
  try {
    run();
  } catch (error) {
    if (!(error instanceof kind)) throw error;
    if (error.code !== code) throw new Error(`refused as ${error.code}, wanted ${code}`);
    return;
  }
  throw new Error("accepted, but must be refused");
}

const vizochok = { headers: vector.headers, body, secrets: vector.secret, now: vector.now };
const standard = { headers: vector.standard_webhooks_headers, body, secrets: vector.secret, now: vector.now };
const tampered = Buffer.from(body);
tampered[tampered.length - 3] ^= 1;

check("vizochok: the event verifies and its envelope is read", () => {
  const { event, attempt } = verifyEvent(vizochok);
  if (event.id !== vector.headers["X-VIZOCHOK-Delivery"]) throw new Error(`id ${event.id}`);
  if (event.event !== vector.headers["X-VIZOCHOK-Event"]) throw new Error(`event ${event.event}`);
  if (attempt !== Number(vector.headers["X-VIZOCHOK-Attempt"])) throw new Error(`attempt ${attempt}`);
  if (typeof event.data !== "object") throw new Error("no data");
});
check("vizochok: one changed body byte is refused", () =>
  expectRefused(VerificationError, "signature_mismatch", () => verifyEvent({ ...vizochok, body: tampered })),
);
check("vizochok: 301 s later is refused", () =>
  expectRefused(VerificationError, "timestamp_expired", () => verifyEvent({ ...vizochok, now: vector.now + 301 })),
);
check("vizochok: a delivery id other than the body's id is refused", () =>
  expectRefused(InvalidEvent, "invalid_event", () =>
    verifyEvent({ ...vizochok, headers: { ...vector.headers, "X-VIZOCHOK-Delivery": "evt_other" } }),
  ),
);
check("standard-webhooks: the event verifies", () => {
  const { event } = verifyStandardWebhook(standard);
  if (event.id !== vector.standard_webhooks_headers["webhook-id"]) throw new Error(`id ${event.id}`);
});
check("standard-webhooks: a second signature in the header (rotation) is accepted", () => {
  const sig = vector.standard_webhooks_headers["webhook-signature"];
  const headers = { ...vector.standard_webhooks_headers, "webhook-signature": `v1,AAAA ${sig}` };
  verifyStandardWebhook({ ...standard, headers });
});
check("standard-webhooks: one changed body byte is refused", () =>
  expectRefused(VerificationError, "signature_mismatch", () => verifyStandardWebhook({ ...standard, body: tampered })),
);
check("standard-webhooks: another id is refused", () =>
  expectRefused(VerificationError, "signature_mismatch", () =>
    verifyStandardWebhook({ ...standard, headers: { ...vector.standard_webhooks_headers, "webhook-id": "evt_other" } }),
  ),
);

// A rolled secret (docs/webhooks.md §7): during the overlap VIZOCHOK sends "v1,<old> v1,<new>".
const next = "whsec_" + Buffer.alloc(32, 7).toString("base64");
function signedWith(secret) {
  const headers = vector.standard_webhooks_headers;
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const signed = Buffer.concat([Buffer.from(`${headers["webhook-id"]}.${headers["webhook-timestamp"]}.`), body]);
  return "v1," + crypto.createHmac("sha256", key).update(signed).digest("base64");
}
const both = {
  ...vector.standard_webhooks_headers,
  "webhook-signature": `${signedWith(vector.secret)} ${signedWith(next)}`,
};
check("standard-webhooks: during a roll, a receiver with only the old or only the new secret verifies", () => {
  verifyStandardWebhook({ ...standard, headers: both, secrets: [vector.secret] });
  verifyStandardWebhook({ ...standard, headers: both, secrets: [next] });
});
check("standard-webhooks: a list of secrets (current first) names the one that matched", () => {
  const { secretIndex } = verifyStandardWebhook({ ...standard, secrets: [next, vector.secret] });
  if (secretIndex !== 1) throw new Error(`secretIndex ${secretIndex}`);
});
check("standard-webhooks: after the roll, the old secret alone is refused", () => {
  const headers = { ...vector.standard_webhooks_headers, "webhook-signature": signedWith(next) };
  expectRefused(VerificationError, "signature_mismatch", () =>
    verifyStandardWebhook({ ...standard, headers, secrets: [vector.secret] }),
  );
  verifyStandardWebhook({ ...standard, headers, secrets: [vector.secret, next] });
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
