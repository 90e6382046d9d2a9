// A tenant's backend on net/http: products, cart, cart GET and events, each verified.
// Run: VIZOCHOK_WEBHOOK_SECRET=whsec_... go run ./examples/quickstart
package main

import (
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"

	vizochok "github.com/vizochok/vizochok-dispatch/receivers/go"
)

type line struct {
	SKU      string      `json:"sku"`
	Name     string      `json:"name"`
	Price    json.Number `json:"price"`
	Quantity json.Number `json:"quantity"`
}

var (
	prices = map[string]json.Number{"milk-001": "45.90", "bread-042": "32.00"}
	mu     sync.Mutex
	carts  = map[string]map[string]line{} // "<store>/<session>" -> sku -> line
)

func cartOf(store, session string) map[string]line {
	key := store + "/" + session
	if carts[key] == nil {
		carts[key] = map[string]line{}
	}
	return carts[key]
}

func reply(w http.ResponseWriter, value any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(value)
}

func main() {
	// "new,old" while you roll a secret: any one verifying is enough.
	secrets := func() []string { return strings.Split(os.Getenv("VIZOCHOK_WEBHOOK_SECRET"), ",") }
	signed := &vizochok.Middleware{Secrets: secrets, Once: true} // each delivery id applied once

	mux := http.NewServeMux()
	mux.Handle("/api/vizochok/check-products", signed.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var query struct {
			SKUs []string `json:"skus"`
		}
		_ = json.NewDecoder(r.Body).Decode(&query)
		products := []map[string]any{}
		for _, sku := range query.SKUs {
			if price, ok := prices[sku]; ok {
				products = append(products, map[string]any{"sku": sku, "price": price, "in_stock": true})
			}
		}
		reply(w, map[string]any{"products": products})
	})))
	mux.Handle("/api/vizochok/cart", signed.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var op struct {
			line
			Action  string `json:"action"`
			Store   string `json:"store_id"`
			Session string `json:"session_id"`
		}
		decoder := json.NewDecoder(r.Body)
		decoder.UseNumber() // money and quantities stay exact
		if err := decoder.Decode(&op); err != nil {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusUnprocessableEntity)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		lines := cartOf(op.Store, op.Session)
		switch op.Action {
		case "add":
			if _, ok := prices[op.SKU]; !ok {
				reply(w, map[string]any{"ok": false, "reason": "out_of_stock"})
				return
			}
			lines[op.SKU] = op.line // (a real shop adds to a held quantity)
		case "update":
			if held, ok := lines[op.SKU]; ok {
				held.Quantity = op.Quantity
				lines[op.SKU] = held
			}
		case "remove":
			delete(lines, op.SKU)
		case "clear":
			for sku := range lines {
				delete(lines, sku)
			}
		}
		reply(w, map[string]any{"ok": true})
	})))
	mux.Handle("/api/vizochok/cart/items", signed.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		items := []line{}
		for _, held := range cartOf(r.URL.Query().Get("store_id"), r.URL.Query().Get("session_id")) {
			items = append(items, held)
		}
		reply(w, map[string]any{"items": items})
	})))

	eventSecrets := secrets
	if os.Getenv("VIZOCHOK_EVENT_SECRET") != "" {
		eventSecrets = func() []string { return strings.Split(os.Getenv("VIZOCHOK_EVENT_SECRET"), ",") }
	}
	scheme := os.Getenv("VIZOCHOK_EVENT_SCHEME")
	if scheme == "" {
		scheme = vizochok.SchemeVizochok
	}
	events := &vizochok.Middleware{Secrets: eventSecrets, Scheme: scheme, Once: true} // each event id once
	mux.Handle("/api/vizochok/events", events.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		event := vizochok.EventFrom(r.Context())
		fmt.Printf("event %s %s\n", event.Type, event.ID)
		w.WriteHeader(http.StatusOK)
	})))

	port := os.Getenv("PORT")
	if port == "" {
		port = "8081"
	}
	listener, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on http://%s\n", listener.Addr())
	log.Fatal(http.Serve(listener, mux))
}
