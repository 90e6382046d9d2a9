// createWebhookHandler and createEventHandler: verify first, answer in the contract's shape,
// handle each delivery id once, keep nothing for a failed attempt.
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import { test } from "node:test";
import { createEventHandler, createWebhookHandler, RetryLater } from "vizochok-receiver";

const secret = "whsec_node_handler_secret_0001";
const ts = 1763856000;
const now = () => ts;
function request(json, { deliveryId = "delivery-0001", key = secret } = {}) {
  const body = Buffer.from(json === null ? "" : JSON.stringify(json), "utf8");
  const mac = crypto.createHmac("sha256", key).update(Buffer.concat([Buffer.from(`${ts}.`), body]));
  const headers = { "x-vizochok-signature": `sha256=${mac.digest("hex")}`, "x-vizochok-timestamp": `${ts}` };
  if (deliveryId !== undefined) headers["x-vizochok-delivery"] = deliveryId;
  return [headers, body];
}
const parsed = (answer) => ({ status: answer.status, body: JSON.parse(answer.body) });

test("a verified call gets the handler's value as a 200 JSON answer", async () => {
  const handle = createWebhookHandler({ secrets: secret, now, onRequest: ({ json }) => ({ products: json.skus }) });
  const answer = await handle(...request({ skus: ["a"], store_id: "s" }));
  assert.deepEqual(parsed(answer), { status: 200, body: { products: ["a"] } });
  assert.equal(answer.headers["content-type"], "application/json");
});

test("a forged call is a 401 with the code, and the handler never runs", async () => {
  let calls = 0;
  const handle = createWebhookHandler({ secrets: secret, now, onRequest: () => (calls += 1) });
  const answer = await handle(...request({ skus: ["a"] }, { key: "whsec_someone_else_000" }));
  assert.deepEqual(parsed(answer).body.error, "signature_mismatch");
  assert.equal(answer.status, 401);
  assert.equal(calls, 0);
});

test("a cart GET (empty body) reaches the handler with json null", async () => {
  const handle = createWebhookHandler({ secrets: secret, now, onRequest: ({ json }) => ({ items: [], json }) });
  assert.deepEqual(parsed(await handle(...request(null))), { status: 200, body: { items: [], json: null } });
});

test("a retried delivery id is answered alike and applied once", async () => {
  let applied = 0;
  const handle = createWebhookHandler({ secrets: secret, now, onRequest: () => ({ ok: true, n: (applied += 1) }) });
  const op = { action: "clear", store_id: "s", session_id: "u" };
  const first = await handle(...request(op));
  const again = await handle(...request(op));
  assert.equal(applied, 1);
  assert.equal(again.body, first.body);
  assert.equal(again.headers["idempotent-replay"], "true");
  const other = await handle(...request({ ...op, session_id: "v" }));
  assert.deepEqual(parsed(other), { status: 409, body: { error: "delivery_id_reused", message: parsed(other).body.message } });
});

test("a failed attempt keeps nothing: RetryLater is a 503, a throw a 500, and the retry runs", async () => {
  const outcomes = [new RetryLater("restarting"), new Error("db password=hunter2"), null];
  let calls = 0;
  const handle = createWebhookHandler({
    secrets: secret,
    now,
    onRequest: () => {
      const outcome = outcomes[calls++];
      if (outcome) throw outcome;
      return { ok: true };
    },
  });
  const op = { action: "clear", store_id: "s", session_id: "u" };
  assert.equal((await handle(...request(op))).status, 503);
  const failed = await handle(...request(op));
  assert.equal(failed.status, 500);
  assert.ok(!failed.body.includes("hunter2"));
  assert.deepEqual(parsed(await handle(...request(op))), { status: 200, body: { ok: true } });
  assert.equal(calls, 3);
});

test("secrets may be a function, read on every request (a server can switch)", async () => {
  let current = [secret];
  const handle = createWebhookHandler({ secrets: () => current, now, onRequest: () => ({ ok: true }) });
  const newer = "whsec_node_handler_secret_0002";
  assert.equal((await handle(...request({}, { key: newer, deliveryId: "d-1" }))).status, 401);
  current = [newer, secret];
  assert.equal((await handle(...request({}, { key: newer, deliveryId: "d-2" }))).status, 200);
});

test("a body that is not JSON is a 422 invalid_request", async () => {
  const handle = createWebhookHandler({ secrets: secret, now, onRequest: () => ({}) });
  const body = Buffer.from("{not json");
  const mac = crypto.createHmac("sha256", secret).update(Buffer.concat([Buffer.from(`${ts}.`), body]));
  const headers = { "x-vizochok-signature": `sha256=${mac.digest("hex")}`, "x-vizochok-timestamp": `${ts}` };
  assert.equal(parsed(await handle(headers, body)).body.error, "invalid_request");
});

test("events: each id handled once, a forged one refused, both schemes", async () => {
  const vector = JSON.parse(fs.readFileSync(new URL("event_vector.json", import.meta.url), "utf8"));
  const body = Buffer.from(vector.body_utf8, "utf8");
  for (const [scheme, headers] of [["vizochok", vector.headers], ["standard-webhooks", vector.standard_webhooks_headers]]) {
    const seen = [];
    const handle = createEventHandler({ secrets: [vector.secret], scheme, now: () => vector.now, onEvent: (e) => seen.push(e.id) });
    assert.equal((await handle(headers, body)).status, 200);
    assert.equal((await handle(headers, body)).status, 200);
    assert.deepEqual(seen, [JSON.parse(vector.body_utf8).id]);
    const tampered = Buffer.from(body);
    tampered[10] ^= 1;
    assert.equal((await handle(headers, tampered)).status, 401);
  }
});

test("options are checked at start-up", () => {
  assert.throws(() => createWebhookHandler({ secrets: [], onRequest: () => ({}) }), TypeError);
  assert.throws(() => createEventHandler({ secrets: secret, scheme: "other", onEvent: () => {} }), TypeError);
});
