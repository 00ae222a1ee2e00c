package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ragpipe/ragpipe/pkg/config"
)

func TestDefaultsAreValid(t *testing.T) {
	t.Parallel()
	c, err := config.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:8080" || c.MaxUploadBytes != 100<<20 || c.EmbedDimensions != 384 || c.ExtractTimeout != 5*time.Minute {
		t.Errorf("unexpected defaults: %+v", c)
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     []string
		wantErr []string // every fragment must appear in the one error
	}{
		{"overrides", []string{"RAGPIPE_HTTP_ADDR=0.0.0.0:9000", "RAGPIPE_EMBED_PROVIDER=openai", "RAGPIPE_OPENAI_BASE_URL=http://127.0.0.1:11434/v1"}, nil},
		{"every problem at once", []string{
			"RAGPIPE_HTTP_ADDR=nonsense", "RAGPIPE_LOG_FORMAT=xml", "RAGPIPE_CHUNK_OVERLAP=5000",
			"RAGPIPE_EMBED_PROVIDER=magic", "RAGPIPE_S3_ENDPOINT=ftp://x",
		}, []string{"RAGPIPE_HTTP_ADDR", "RAGPIPE_LOG_FORMAT", "RAGPIPE_CHUNK_OVERLAP", "RAGPIPE_EMBED_PROVIDER", "RAGPIPE_S3_ENDPOINT"}},
		{"unparsable number beside a bad value", []string{"RAGPIPE_MAX_UPLOAD_BYTES=lots", "RAGPIPE_LOG_LEVEL=loud"},
			[]string{"RAGPIPE_MAX_UPLOAD_BYTES: not a valid int64", "RAGPIPE_LOG_LEVEL"}},
		{"openai needs an http url", []string{"RAGPIPE_EMBED_PROVIDER=openai", "RAGPIPE_OPENAI_BASE_URL=localhost"}, []string{"RAGPIPE_OPENAI_BASE_URL"}},
		{"extract timeout within the task's", []string{"RAGPIPE_EXTRACT_TIMEOUT=1h"}, []string{"RAGPIPE_EXTRACT_TIMEOUT"}},
		{"chat providers need their model and key", []string{"RAGPIPE_CHAT_PROVIDER=anthropic", "RAGPIPE_CHAT_FALLBACK=ollama,extractive"},
			[]string{"RAGPIPE_CHAT_MODEL", "RAGPIPE_CHAT_API_KEY", "RAGPIPE_CHAT_OLLAMA_MODEL"}},
		{"openai at api.openai.com needs a key", []string{"RAGPIPE_CHAT_PROVIDER=openai", "RAGPIPE_CHAT_MODEL=gpt-4o-mini"}, []string{"RAGPIPE_CHAT_API_KEY"}},
		{"a local openai-compatible server needs none", []string{"RAGPIPE_CHAT_PROVIDER=openai", "RAGPIPE_CHAT_MODEL=qwen2.5",
			"RAGPIPE_CHAT_BASE_URL=http://127.0.0.1:8000/v1", "RAGPIPE_CHAT_FALLBACK=extractive"}, nil},
		{"unknown and repeated chat providers", []string{"RAGPIPE_CHAT_PROVIDER=gemini", "RAGPIPE_CHAT_FALLBACK=extractive,extractive"},
			[]string{"RAGPIPE_CHAT_PROVIDER", "RAGPIPE_CHAT_FALLBACK: names extractive twice"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Load(tc.env)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, frag := range tc.wantErr {
				if !strings.Contains(err.Error(), frag) {
					t.Errorf("error does not mention %s:\n%v", frag, err)
				}
			}
		})
	}
}

func TestVectorWeight(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  []string
		want float64
	}{
		{nil, 0.1},
		{[]string{"RAGPIPE_EMBED_PROVIDER=openai"}, 1},
		{[]string{"RAGPIPE_SEARCH_VECTOR_WEIGHT=0.5"}, 0.5},
	} {
		c, err := config.Load(tc.env)
		if err != nil {
			t.Fatal(err)
		}
		if w, err := c.VectorWeight(); err != nil || w != tc.want {
			t.Errorf("%v: weight %v, %v; want %v", tc.env, w, err, tc.want)
		}
	}
	if _, err := config.Load([]string{"RAGPIPE_SEARCH_VECTOR_WEIGHT=heavy"}); err == nil || !strings.Contains(err.Error(), "RAGPIPE_SEARCH_VECTOR_WEIGHT") {
		t.Errorf("a bad weight: %v", err)
	}
}
