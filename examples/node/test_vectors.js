// Check verify.js against every case of signature-vectors.json, plus the clock rules.
//
//   node examples/node/test_vectors.js [path/to/signature-vectors.json]
//
// Without an argument: $VIZOCHOK_SIGNATURE_VECTORS, else the repository's published
// docs/signature-vectors.json.  Prints one line per case and "N passed, N failed"; exits 1
// on any failure, 2 when the vectors cannot be read.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const crypto = require("node:crypto");
const { verifyRequest, VerificationError } = require("./verify");

const repoRoot = path.resolve(__dirname, "..", "..");
const vectorsPath =
  process.argv[2] ||
  process.env.VIZOCHOK_SIGNATURE_VECTORS ||
  path.join(repoRoot, "docs", "signature-vectors.json");

let vectors;
try {
  vectors = JSON.parse(fs.readFileSync(vectorsPath, "utf8")).vectors;
} catch (error) {
  console.error(`cannot read signature vectors at ${vectorsPath}: ${error.message}`);
  process.exit(2);
}

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

function expectRefused(code, run) {
  try {
    run();
  } catch (error) {
    if (!(error instanceof VerificationError)) throw error;
    if (code && error.code !== code) throw new Error(`refused as ${error.code}, wanted ${code}`);
    return;
  }
  throw new Error("accepted, but must be refused");
}

for (const vector of vectors) {
  const request = {
    headers: {
      "X-VIZOCHOK-Signature": vector.x_vizochok_signature,
      "X-VIZOCHOK-Timestamp": vector.x_vizochok_timestamp,
    },
    body: Buffer.from(vector.body_utf8, "utf8"),
    secrets: vector.secret,
    now: vector.timestamp,
  };
  check(`vector: ${vector.name} (valid=${vector.valid})`, () => {
    if (vector.valid) {
      const verified = verifyRequest(request);
      if (verified.timestamp !== vector.timestamp) throw new Error("wrong timestamp returned");
    } else {
      expectRefused(null, () => verifyRequest(request));
    }
  });
}

// Rules beyond the fixed vectors: the 300-second window and secret rolling.
const secret = "whsec_node_example_secret_0001";
const body = Buffer.from('{"skus":["milk-001"],"store_id":"store-1"}', "utf8");
const ts = 1763856000;
function signed(key, at) {
  const mac = crypto.createHmac("sha256", key).update(Buffer.concat([Buffer.from(`${at}.`), body]));
  return { "x-vizochok-signature": `sha256=${mac.digest("hex")}`, "x-vizochok-timestamp": `${at}` };
}

check("300 s old is accepted", () => verifyRequest({ headers: signed(secret, ts), body, secrets: secret, now: ts + 300 }));
check("301 s old is refused", () =>
  expectRefused("timestamp_expired", () => verifyRequest({ headers: signed(secret, ts), body, secrets: secret, now: ts + 301 })),
);
check("301 s ahead is refused", () =>
  expectRefused("timestamp_in_future", () => verifyRequest({ headers: signed(secret, ts), body, secrets: secret, now: ts - 301 })),
);
check("a secret list accepts the old secret during a roll", () => {
  const verified = verifyRequest({ headers: signed("whsec_old_0000", ts), body, secrets: [secret, "whsec_old_0000"], now: ts });
  if (verified.secretIndex !== 1) throw new Error(`secretIndex ${verified.secretIndex}`);
});
check("a missing signature header is refused", () =>
  expectRefused("missing_header", () => verifyRequest({ headers: { "x-vizochok-timestamp": `${ts}` }, body, secrets: secret, now: ts })),
);
check("a string body is a programming error", () => {
  try {
    verifyRequest({ headers: signed(secret, ts), body: body.toString(), secrets: secret, now: ts });
  } catch (error) {
    if (error instanceof TypeError) return;
    throw error;
  }
  throw new Error("accepted a string body");
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
