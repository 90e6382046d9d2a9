// A tenant's backend in plain node:http: products, cart, cart GET and events, each verified.
// Run: VIZOCHOK_WEBHOOK_SECRET=whsec_... node examples/server.js
import http from "node:http";
import { createEventHandler, createWebhookHandler } from "vizochok-receiver";

// "new,old" while you roll a secret: any one verifying is enough.
const secrets = process.env.VIZOCHOK_WEBHOOK_SECRET.split(",");
const PRICES = { "milk-001": 45.9, "bread-042": 32.0 };
const carts = new Map(); // "<store>/<session>" -> Map(sku -> line)
const cartOf = (store, session) => {
  const key = `${store}/${session}`;
  if (!carts.has(key)) carts.set(key, new Map());
  return carts.get(key);
};

const products = createWebhookHandler({
  secrets,
  onRequest: ({ json }) => ({
    products: json.skus
      .filter((sku) => sku in PRICES)
      .map((sku) => ({ sku, price: PRICES[sku], in_stock: true })),
  }),
});

// Each X-VIZOCHOK-Delivery is applied once: a retry gets the first answer again.
const cart = createWebhookHandler({
  secrets,
  onRequest: ({ json: op }) => {
    const lines = cartOf(op.store_id, op.session_id);
    if (op.action === "add") {
      if (!(op.sku in PRICES)) return { ok: false, reason: "out_of_stock" };
      const held = lines.get(op.sku)?.quantity ?? 0;
      lines.set(op.sku, { sku: op.sku, name: op.name, price: op.price, quantity: held + op.quantity });
    } else if (op.action === "update" && lines.has(op.sku)) {
      lines.get(op.sku).quantity = op.quantity;
    } else if (op.action === "remove") {
      lines.delete(op.sku);
    } else if (op.action === "clear") {
      lines.clear();
    }
    return { ok: true };
  },
});

const events = createEventHandler({
  secrets: (process.env.VIZOCHOK_EVENT_SECRET ?? process.env.VIZOCHOK_WEBHOOK_SECRET).split(","),
  scheme: process.env.VIZOCHOK_EVENT_SCHEME ?? "vizochok",
  onEvent: (event) => console.log(`event ${event.event} ${event.id}`), // each id once
});

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", async () => {
    const url = new URL(req.url, "http://localhost");
    const body = Buffer.concat(chunks); // the raw bytes: the signature covers exactly these
    let handle;
    if (req.method === "POST" && url.pathname === "/api/vizochok/check-products") handle = products;
    if (req.method === "POST" && url.pathname === "/api/vizochok/cart") handle = cart;
    if (req.method === "POST" && url.pathname === "/api/vizochok/events") handle = events;
    if (req.method === "GET" && url.pathname === "/api/vizochok/cart/items") {
      const q = url.searchParams;
      handle = createWebhookHandler({
        secrets,
        onRequest: () => ({ items: [...cartOf(q.get("store_id"), q.get("session_id")).values()] }),
      });
    }
    if (handle === undefined) return res.writeHead(404).end();
    const answer = await handle(req.headers, body);
    res.writeHead(answer.status, answer.headers).end(answer.body);
  });
});

server.listen(Number(process.env.PORT ?? 8081), "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
