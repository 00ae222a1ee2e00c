package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/ragpipe/ragpipe/internal/testenv"
	"github.com/ragpipe/ragpipe/pkg/apikey"
	"github.com/ragpipe/ragpipe/pkg/postgres"
	"github.com/ragpipe/ragpipe/pkg/webhook"
)

func TestCreateKey(t *testing.T) {
	dbURL := testenv.Database(t)
	env := append(os.Environ(), "RAGPIPE_DATABASE_URL="+dbURL)
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"admin", "create-key", "--tenant", "acme"}, env, &stdout, &stderr); err != nil {
		t.Fatalf("create-key: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	key := lines[len(lines)-1]
	if !apikey.WellFormed(key) {
		t.Fatalf("last line %q is not a key", key)
	}
	db, err := postgres.Open(context.Background(), dbURL, webhook.EncodeEvent)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.TenantByKeyHash(context.Background(), apikey.Hash(key)); err != nil {
		t.Errorf("printed key does not authenticate: %v", err)
	}
	stdout.Reset()
	if err := run(context.Background(), []string{"tasks", "stats"}, env, &stdout, &stderr); err != nil {
		t.Fatalf("tasks stats: %v", err)
	}
	if !strings.HasPrefix(stdout.String(), "QUEUE") {
		t.Errorf("tasks stats printed %q", stdout.String())
	}
	if err := run(context.Background(), []string{"admin", "create-key"}, env, &stdout, &stderr); err == nil {
		t.Error("create-key without --tenant succeeded")
	}
	if err := run(context.Background(), nil, env, &stdout, &stderr); err == nil || !strings.Contains(stderr.String(), "usage") {
		t.Errorf("no arguments: err %v, stderr %q", err, stderr.String())
	}
}
