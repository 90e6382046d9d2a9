// verifyEvent and verifyStandardWebhook against the event vector, both schemes, and rotation.
// The vector: $VIZOCHOK_EVENT_VECTOR, else event_vector.json beside this file.
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { InvalidEvent, VerificationError, verifyEvent, verifyStandardWebhook } from "vizochok-receiver";

const vectorPath =
  process.env.VIZOCHOK_EVENT_VECTOR || fileURLToPath(new URL("event_vector.json", import.meta.url));
const vector = JSON.parse(fs.readFileSync(vectorPath, "utf8"));
const body = Buffer.from(vector.body_utf8, "utf8");
const refused = (kind, code) => (error) => error instanceof kind && error.code === code;

const vizochok = { headers: vector.headers, body, secrets: vector.secret, now: vector.now };
const standard = { headers: vector.standard_webhooks_headers, body, secrets: vector.secret, now: vector.now };
const tampered = Buffer.from(body);
tampered[tampered.length - 3] ^= 1;

test("vizochok: the event verifies and its envelope is read", () => {
  const { event, attempt } = verifyEvent(vizochok);
  assert.equal(event.id, vector.headers["X-VIZOCHOK-Delivery"]);
  assert.equal(event.event, vector.headers["X-VIZOCHOK-Event"]);
  assert.equal(attempt, Number(vector.headers["X-VIZOCHOK-Attempt"]));
  assert.equal(typeof event.data, "object");
});

test("vizochok: one changed body byte is refused", () => {
  assert.throws(() => verifyEvent({ ...vizochok, body: tampered }), refused(VerificationError, "signature_mismatch"));
});

test("vizochok: 301 s later is refused", () => {
  assert.throws(() => verifyEvent({ ...vizochok, now: vector.now + 301 }), refused(VerificationError, "timestamp_expired"));
});

test("vizochok: a delivery id other than the body's id is refused", () => {
  const headers = { ...vector.headers, "X-VIZOCHOK-Delivery": "evt_other" };
  assert.throws(() => verifyEvent({ ...vizochok, headers }), refused(InvalidEvent, "invalid_event"));
});

test("standard-webhooks: the event verifies", () => {
  const { event } = verifyStandardWebhook(standard);
  assert.equal(event.id, vector.standard_webhooks_headers["webhook-id"]);
});

test("standard-webhooks: one changed body byte or another id is refused", () => {
  assert.throws(() => verifyStandardWebhook({ ...standard, body: tampered }), refused(VerificationError, "signature_mismatch"));
  const headers = { ...vector.standard_webhooks_headers, "webhook-id": "evt_other" };
  assert.throws(() => verifyStandardWebhook({ ...standard, headers }), refused(VerificationError, "signature_mismatch"));
});

// A rolled secret (docs/webhooks.md §7): during the overlap VIZOCHOK sends "v1,<old> v1,<new>".
const next = "whsec_" + Buffer.alloc(32, 7).toString("base64");
function signedWith(secret) {
  const headers = vector.standard_webhooks_headers;
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const signed = Buffer.concat([Buffer.from(`${headers["webhook-id"]}.${headers["webhook-timestamp"]}.`), body]);
  return "v1," + crypto.createHmac("sha256", key).update(signed).digest("base64");
}

test("standard-webhooks: during a roll, a receiver with only the old or only the new secret verifies", () => {
  const headers = { ...vector.standard_webhooks_headers, "webhook-signature": `${signedWith(vector.secret)} ${signedWith(next)}` };
  verifyStandardWebhook({ ...standard, headers, secrets: [vector.secret] });
  verifyStandardWebhook({ ...standard, headers, secrets: [next] });
});

test("standard-webhooks: a list of secrets (current first) names the one that matched", () => {
  assert.equal(verifyStandardWebhook({ ...standard, secrets: [next, vector.secret] }).secretIndex, 1);
});

test("standard-webhooks: after the roll, the old secret alone is refused", () => {
  const headers = { ...vector.standard_webhooks_headers, "webhook-signature": signedWith(next) };
  assert.throws(
    () => verifyStandardWebhook({ ...standard, headers, secrets: [vector.secret] }),
    refused(VerificationError, "signature_mismatch"),
  );
  verifyStandardWebhook({ ...standard, headers, secrets: [vector.secret, next] });
});
