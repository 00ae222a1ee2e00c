package cli

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
	if err := Run(context.Background(), []string{"admin", "create-key", "--tenant", "acme"}, env, nil, &stdout, &stderr); err != nil {
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
	if err := Run(context.Background(), []string{"tasks", "stats"}, env, nil, &stdout, &stderr); err != nil {
		t.Fatalf("tasks stats: %v", err)
	}
	if !strings.HasPrefix(stdout.String(), "QUEUE") {
		t.Errorf("tasks stats printed %q", stdout.String())
	}
	if err := Run(context.Background(), []string{"admin", "create-key"}, env, nil, &stdout, &stderr); err == nil {
		t.Error("create-key without --tenant succeeded")
	}
	if err := Run(context.Background(), nil, env, nil, &stdout, &stderr); err == nil || !strings.Contains(stderr.String(), "usage") {
		t.Errorf("no arguments: err %v, stderr %q", err, stderr.String())
	}
}

// ragctl mcp needs a key and an http(s) URL, and names what is wrong.
func TestMCPSettings(t *testing.T) {
	if _, err := apiClient([]string{"RAGPIPE_URL=http://127.0.0.1:8080"}); err == nil || !strings.Contains(err.Error(), "RAGPIPE_API_KEY") {
		t.Errorf("no key: %v", err)
	}
	if _, err := apiClient([]string{"RAGPIPE_URL=localhost:8080", "RAGPIPE_API_KEY=rp_x"}); err == nil || !strings.Contains(err.Error(), "RAGPIPE_URL") {
		t.Errorf("bad URL: %v", err)
	}
	c, err := apiClient([]string{"RAGPIPE_API_KEY=rp_x"})
	if err != nil || c.BaseURL != "http://127.0.0.1:8080" || c.Key != "rp_x" {
		t.Errorf("defaults: %+v, %v", c, err)
	}
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"mcp"}, []string{"RAGPIPE_URL=http://127.0.0.1:8080"}, nil, &out, &out); err == nil {
		t.Error("ragctl mcp started without a key")
	}
}
