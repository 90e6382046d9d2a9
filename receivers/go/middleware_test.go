package vizochok

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func signedRequest(t *testing.T, path, body, secret, delivery string, at int64) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	for name, values := range signed(secret, at) {
		r.Header[name] = values
	}
	if delivery != "" {
		r.Header.Set(DeliveryHeader, delivery)
	}
	return r
}

func serve(handler http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	handler.ServeHTTP(w, r)
	return w
}

// signed() (verify_test.go) signs its own fixed body; the middleware tests use that body.
const fixedBody = `{"skus":["milk-001"],"store_id":"store-1"}`

func TestMiddlewareRefusesAForgedRequestBeforeTheHandler(t *testing.T) {
	calls := 0
	m := &Middleware{Secrets: func() []string { return []string{secret} }, Now: func() time.Time { return time.Unix(stamp, 0) }}
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls++ }))
	w := serve(h, signedRequest(t, "/p", fixedBody, "whsec_someone_else_0000", "", stamp))
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), CodeSignatureMismatch) || calls != 0 {
		t.Fatalf("status %d body %s calls %d", w.Code, w.Body.String(), calls)
	}
}

func TestMiddlewareHandsOnTheBodyAndWhatWasProved(t *testing.T) {
	m := &Middleware{Secrets: func() []string { return []string{"whsec_new_0000000000", secret} }, Now: func() time.Time { return time.Unix(stamp, 0) }}
	var got string
	var verified *Verified
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := new(bytes.Buffer)
		_, _ = buf.ReadFrom(r.Body)
		got, verified = buf.String(), VerifiedFrom(r.Context())
	}))
	serve(h, signedRequest(t, "/p", fixedBody, secret, "d-1", stamp))
	if got != fixedBody || verified == nil || verified.SecretIndex != 1 || verified.DeliveryID != "d-1" {
		t.Fatalf("body %q verified %+v", got, verified)
	}
}

func TestMiddlewareOnceReplaysAndAFailureKeepsNothing(t *testing.T) {
	calls := 0
	m := &Middleware{Secrets: func() []string { return []string{secret} }, Now: func() time.Time { return time.Unix(stamp, 0) }, Once: true}
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if calls == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	first := serve(h, signedRequest(t, "/c", fixedBody, secret, "d-1", stamp))
	second := serve(h, signedRequest(t, "/c", fixedBody, secret, "d-1", stamp))
	third := serve(h, signedRequest(t, "/c", fixedBody, secret, "d-1", stamp))
	if first.Code != 503 || second.Code != 200 || third.Code != 200 || calls != 2 {
		t.Fatalf("codes %d %d %d, calls %d", first.Code, second.Code, third.Code, calls)
	}
	if third.Body.String() != `{"ok":true}` || third.Header().Get("Idempotent-Replay") != "true" {
		t.Fatalf("replay %q %v", third.Body.String(), third.Header())
	}
}

func TestMiddlewareRefusesABodyOverTheLimit(t *testing.T) {
	m := &Middleware{Secrets: func() []string { return []string{secret} }, MaxBodyBytes: 10}
	w := serve(m.Handler(http.NotFoundHandler()), signedRequest(t, "/p", fixedBody, secret, "", stamp))
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d", w.Code)
	}
}

func TestMiddlewareEventsOnBothSchemes(t *testing.T) {
	v := loadEventVector(t)
	for scheme, headers := range map[string]map[string]string{SchemeVizochok: v.Headers, SchemeStandardWebhooks: v.StandardHeaders} {
		var seen []string
		m := &Middleware{Secrets: func() []string { return []string{v.Secret} }, Scheme: scheme, Once: true, Now: func() time.Time { return time.Unix(v.Now, 0) }}
		h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = append(seen, EventFrom(r.Context()).ID) }))
		for i := 0; i < 2; i++ {
			r := httptest.NewRequest(http.MethodPost, "/e", strings.NewReader(v.Body))
			r.Header = headerOf(headers)
			if w := serve(h, r); w.Code != 200 {
				t.Fatalf("%s: status %d %s", scheme, w.Code, w.Body.String())
			}
		}
		if len(seen) != 1 {
			t.Fatalf("%s: handled %d times", scheme, len(seen))
		}
	}
}
