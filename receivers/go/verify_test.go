package vizochok

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// go test ./... -args -vectors=/path/to/signature-vectors.json
// Otherwise $VIZOCHOK_SIGNATURE_VECTORS, else the repository's docs/signature-vectors.json.
var vectorsFlag = flag.String("vectors", "", "path to signature-vectors.json")

type vector struct {
	Name      string `json:"name"`
	Secret    string `json:"secret"`
	Timestamp int64  `json:"timestamp"`
	Body      string `json:"body_utf8"`
	Signature string `json:"x_vizochok_signature"`
	Header    string `json:"x_vizochok_timestamp"`
	Valid     bool   `json:"valid"`
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	path := *vectorsFlag
	if path == "" {
		path = os.Getenv("VIZOCHOK_SIGNATURE_VECTORS")
	}
	if path == "" {
		// The module directory is receivers/go; the repository root is two levels up.
		path = filepath.Join("..", "..", "docs", "signature-vectors.json")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("cannot read signature vectors at %s: %v", path, err)
	}
	var file struct {
		Vectors []vector `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatalf("cannot parse %s: %v", path, err)
	}
	if len(file.Vectors) == 0 {
		t.Fatalf("%s holds no vectors", path)
	}
	return file.Vectors
}

func TestEveryVector(t *testing.T) {
	for _, v := range loadVectors(t) {
		v := v
		t.Run(v.Name, func(t *testing.T) {
			header := http.Header{}
			header.Set(SignatureHeader, v.Signature)
			header.Set(TimestampHeader, v.Header)
			got, err := Verify(header, []byte(v.Body), []string{v.Secret}, DefaultTolerance, time.Unix(v.Timestamp, 0))
			if v.Valid {
				if err != nil {
					t.Fatalf("valid vector refused: %v", err)
				}
				if got.Timestamp != v.Timestamp {
					t.Fatalf("timestamp %d, want %d", got.Timestamp, v.Timestamp)
				}
				return
			}
			var refusal *Error
			if !errors.As(err, &refusal) {
				t.Fatalf("invalid vector not refused with *Error (got %v)", err)
			}
		})
	}
}

const (
	secret = "whsec_go_example_secret_0001"
	stamp  = int64(1763856000)
)

var body = []byte(`{"skus":["milk-001"],"store_id":"store-1"}`)

func signed(key string, at int64) http.Header {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(strconv.FormatInt(at, 10) + "."))
	mac.Write(body)
	header := http.Header{}
	header.Set(SignatureHeader, "sha256="+hex.EncodeToString(mac.Sum(nil)))
	header.Set(TimestampHeader, strconv.FormatInt(at, 10))
	return header
}

func code(err error) string {
	var refusal *Error
	if errors.As(err, &refusal) {
		return refusal.Code
	}
	return ""
}

func TestToleranceWindow(t *testing.T) {
	if _, err := Verify(signed(secret, stamp), body, []string{secret}, DefaultTolerance, time.Unix(stamp+300, 0)); err != nil {
		t.Fatalf("300 s old refused: %v", err)
	}
	_, err := Verify(signed(secret, stamp), body, []string{secret}, DefaultTolerance, time.Unix(stamp+301, 0))
	if code(err) != CodeTimestampExpired {
		t.Fatalf("301 s old: got %v", err)
	}
	_, err = Verify(signed(secret, stamp), body, []string{secret}, DefaultTolerance, time.Unix(stamp-301, 0))
	if code(err) != CodeTimestampInFuture {
		t.Fatalf("301 s ahead: got %v", err)
	}
}

func TestSecretRoll(t *testing.T) {
	got, err := Verify(signed("whsec_old_0000", stamp), body, []string{secret, "whsec_old_0000"}, DefaultTolerance, time.Unix(stamp, 0))
	if err != nil || got.SecretIndex != 1 {
		t.Fatalf("old secret during a roll: %+v %v", got, err)
	}
}

func TestRefusals(t *testing.T) {
	header := signed(secret, stamp)
	header.Del(SignatureHeader)
	if _, err := Verify(header, body, []string{secret}, DefaultTolerance, time.Unix(stamp, 0)); code(err) != CodeMissingHeader {
		t.Fatalf("missing signature: got %v", err)
	}
	header = signed(secret, stamp)
	header.Add(SignatureHeader, "sha256="+hex.EncodeToString(make([]byte, 32)))
	if _, err := Verify(header, body, []string{secret}, DefaultTolerance, time.Unix(stamp, 0)); code(err) != CodeMalformedHeader {
		t.Fatalf("doubled signature: got %v", err)
	}
	tampered := append([]byte{}, body...)
	tampered[5] ^= 1
	if _, err := Verify(signed(secret, stamp), tampered, []string{secret}, DefaultTolerance, time.Unix(stamp, 0)); code(err) != CodeSignatureMismatch {
		t.Fatalf("one byte changed: got %v", err)
	}
}
