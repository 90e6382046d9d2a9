// verifyRequest against every case of the published signature vectors, plus the clock rules.
// The vectors: $VIZOCHOK_SIGNATURE_VECTORS, else the repository's docs/signature-vectors.json.
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { VerificationError, verifyRequest } from "vizochok-receiver";

const vectorsPath =
  process.env.VIZOCHOK_SIGNATURE_VECTORS ||
  fileURLToPath(new URL("../../../docs/signature-vectors.json", import.meta.url));
const { vectors } = JSON.parse(fs.readFileSync(vectorsPath, "utf8"));

const refused = (code) => (error) => error instanceof VerificationError && (!code || error.code === code);

test("the vectors file holds cases", () => assert.ok(vectors.length > 0));

for (const vector of vectors) {
  test(`vector: ${vector.name} (valid=${vector.valid})`, () => {
    const request = {
      headers: {
        "X-VIZOCHOK-Signature": vector.x_vizochok_signature,
        "X-VIZOCHOK-Timestamp": vector.x_vizochok_timestamp,
      },
      body: Buffer.from(vector.body_utf8, "utf8"),
      secrets: vector.secret,
      now: vector.timestamp,
    };
    if (vector.valid) assert.equal(verifyRequest(request).timestamp, vector.timestamp);
    else assert.throws(() => verifyRequest(request), refused());
  });
}

const secret = "whsec_node_example_secret_0001";
const body = Buffer.from('{"skus":["milk-001"],"store_id":"store-1"}', "utf8");
const ts = 1763856000;
function signed(key, at) {
  const mac = crypto.createHmac("sha256", key).update(Buffer.concat([Buffer.from(`${at}.`), body]));
  return { "x-vizochok-signature": `sha256=${mac.digest("hex")}`, "x-vizochok-timestamp": `${at}` };
}

test("300 s old is accepted, 301 s old or ahead is refused", () => {
  verifyRequest({ headers: signed(secret, ts), body, secrets: secret, now: ts + 300 });
  assert.throws(
    () => verifyRequest({ headers: signed(secret, ts), body, secrets: secret, now: ts + 301 }),
    refused("timestamp_expired"),
  );
  assert.throws(
    () => verifyRequest({ headers: signed(secret, ts), body, secrets: secret, now: ts - 301 }),
    refused("timestamp_in_future"),
  );
});

test("a secret list accepts the old secret during a roll and says which matched", () => {
  const verified = verifyRequest({ headers: signed("whsec_old_0000", ts), body, secrets: [secret, "whsec_old_0000"], now: ts });
  assert.equal(verified.secretIndex, 1);
});

test("a missing signature header is refused", () => {
  assert.throws(
    () => verifyRequest({ headers: { "x-vizochok-timestamp": `${ts}` }, body, secrets: secret, now: ts }),
    refused("missing_header"),
  );
});

test("a repeated signature header (joined by Node) is refused", () => {
  const headers = signed(secret, ts);
  headers["x-vizochok-signature"] = [headers["x-vizochok-signature"], headers["x-vizochok-signature"]];
  assert.throws(() => verifyRequest({ headers, body, secrets: secret, now: ts }), refused("malformed_header"));
});

test("a WHATWG Headers object and a Uint8Array body verify too", () => {
  const headers = new Headers(signed(secret, ts));
  verifyRequest({ headers, body: new Uint8Array(body), secrets: secret, now: ts });
});

test("a string body is a programming error", () => {
  assert.throws(
    () => verifyRequest({ headers: signed(secret, ts), body: body.toString(), secrets: secret, now: ts }),
    TypeError,
  );
});
