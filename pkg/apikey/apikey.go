// Package apikey makes and checks ragpipe API keys. A key is "rp_" followed by
// 32 random bytes in base64url; only its SHA-256 is ever stored.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// Prefix starts every key, so leaked keys are easy to recognise and scan for.
const Prefix = "rp_"

// New returns a fresh key and the hash to store for it.
func New() (key string, hash []byte) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	key = Prefix + base64.RawURLEncoding.EncodeToString(b)
	return key, Hash(key)
}

// Hash returns the stored form of key.
func Hash(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// Display returns a short, non-secret label for key (its first characters).
func Display(key string) string {
	if len(key) > 10 {
		return key[:10]
	}
	return key
}

// WellFormed reports whether s has the shape of a key; anything else can be
// refused without a database lookup.
func WellFormed(s string) bool {
	return strings.HasPrefix(s, Prefix) && len(s) == len(Prefix)+43
}
