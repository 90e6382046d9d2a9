package vizochok

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The event vector: $VIZOCHOK_EVENT_VECTOR, else testdata/event_vector.json.
type eventVector struct {
	Secret          string            `json:"secret"`
	Now             int64             `json:"now"`
	Headers         map[string]string `json:"headers"`
	StandardHeaders map[string]string `json:"standard_webhooks_headers"`
	Body            string            `json:"body_utf8"`
}

func loadEventVector(t *testing.T) eventVector {
	t.Helper()
	path := os.Getenv("VIZOCHOK_EVENT_VECTOR")
	if path == "" {
		path = filepath.Join("testdata", "event_vector.json")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("cannot read the event vector at %s: %v", path, err)
	}
	var v eventVector
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("cannot parse %s: %v", path, err)
	}
	return v
}

func headerOf(values map[string]string) http.Header {
	header := http.Header{}
	for name, value := range values {
		header.Set(name, value)
	}
	return header
}

func TestEventVectorVizochok(t *testing.T) {
	v := loadEventVector(t)
	now := time.Unix(v.Now, 0)
	event, err := VerifyEvent(headerOf(v.Headers), []byte(v.Body), []string{v.Secret}, DefaultTolerance, now)
	if err != nil {
		t.Fatalf("the event vector is refused: %v", err)
	}
	if event.ID != v.Headers["X-VIZOCHOK-Delivery"] || event.Type != v.Headers["X-VIZOCHOK-Event"] {
		t.Fatalf("envelope %+v does not match the headers", event)
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(event.Data, &data); err != nil || len(data) == 0 {
		t.Fatalf("data is not an object: %v", err)
	}
	tampered := []byte(v.Body)
	tampered[len(tampered)-3] ^= 1
	if _, err := VerifyEvent(headerOf(v.Headers), tampered, []string{v.Secret}, DefaultTolerance, now); code(err) != CodeSignatureMismatch {
		t.Fatalf("one changed byte: got %v", err)
	}
	other := headerOf(v.Headers)
	other.Set(DeliveryHeader, "evt_other")
	if _, err := VerifyEvent(other, []byte(v.Body), []string{v.Secret}, DefaultTolerance, now); code(err) != CodeInvalidEvent {
		t.Fatalf("another delivery id: got %v", err)
	}
}

func TestEventVectorStandardWebhooks(t *testing.T) {
	v := loadEventVector(t)
	now := time.Unix(v.Now, 0)
	event, err := VerifyStandardWebhook(headerOf(v.StandardHeaders), []byte(v.Body), []string{v.Secret}, DefaultTolerance, now)
	if err != nil {
		t.Fatalf("the event vector is refused: %v", err)
	}
	if event.ID != v.StandardHeaders["webhook-id"] {
		t.Fatalf("id %s", event.ID)
	}
	rotated := headerOf(v.StandardHeaders)
	rotated.Set(WebhookSignatureHeader, "v1,AAAA "+v.StandardHeaders["webhook-signature"])
	if _, err := VerifyStandardWebhook(rotated, []byte(v.Body), []string{v.Secret}, DefaultTolerance, now); err != nil {
		t.Fatalf("two signatures (rotation): %v", err)
	}
	if _, err := VerifyStandardWebhook(headerOf(v.StandardHeaders), []byte(v.Body), []string{v.Secret}, DefaultTolerance, now.Add(301*time.Second)); code(err) != CodeTimestampExpired {
		t.Fatalf("301 s later: got %v", err)
	}
	otherID := headerOf(v.StandardHeaders)
	otherID.Set(WebhookIDHeader, "evt_other")
	if _, err := VerifyStandardWebhook(otherID, []byte(v.Body), []string{v.Secret}, DefaultTolerance, now); code(err) != CodeSignatureMismatch {
		t.Fatalf("another id: got %v", err)
	}
}

// A rolled secret (docs/webhooks.md §7): during the overlap the request carries
// "v1,<old> v1,<new>", so a receiver holding only one of them verifies; after it, the new
// signature alone refuses the old secret.
func TestStandardWebhooksDuringARoll(t *testing.T) {
	v := loadEventVector(t)
	now := time.Unix(v.Now, 0)
	next := "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	signedWith := func(secret string) string {
		key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(v.StandardHeaders["webhook-id"] + "." + v.StandardHeaders["webhook-timestamp"] + "."))
		mac.Write([]byte(v.Body))
		return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	}
	both := headerOf(v.StandardHeaders)
	both.Set(WebhookSignatureHeader, signedWith(v.Secret)+" "+signedWith(next))
	for _, held := range [][]string{{v.Secret}, {next}, {next, v.Secret}} {
		if _, err := VerifyStandardWebhook(both, []byte(v.Body), held, DefaultTolerance, now); err != nil {
			t.Fatalf("during the roll, %d secret(s): %v", len(held), err)
		}
	}
	after := headerOf(v.StandardHeaders)
	after.Set(WebhookSignatureHeader, signedWith(next))
	if _, err := VerifyStandardWebhook(after, []byte(v.Body), []string{v.Secret}, DefaultTolerance, now); code(err) != CodeSignatureMismatch {
		t.Fatalf("after the roll, the old secret alone: got %v", err)
	}
	if _, err := VerifyStandardWebhook(after, []byte(v.Body), []string{v.Secret, next}, DefaultTolerance, now); err != nil {
		t.Fatalf("after the roll, both secrets: %v", err)
	}
}
