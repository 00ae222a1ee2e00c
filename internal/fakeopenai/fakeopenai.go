// Package fakeopenai writes answers in OpenAI's wire format, for the local
// HTTP servers that stand in for an embedding provider in tests.
package fakeopenai

import (
	"encoding/json"
	"net/http"
)

// WriteEmbeddings answers POST /v1/embeddings with vectors, one per input in
// the request's order, and usage reporting tokens.
func WriteEmbeddings(w http.ResponseWriter, model string, vectors [][]float32, tokens int) error {
	type item struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	}
	resp := struct {
		Object string         `json:"object"`
		Data   []item         `json:"data"`
		Model  string         `json:"model"`
		Usage  map[string]int `json:"usage"`
	}{Object: "list", Data: make([]item, len(vectors)), Model: model,
		Usage: map[string]int{"prompt_tokens": tokens, "total_tokens": tokens}}
	for i, v := range vectors {
		resp.Data[i] = item{Object: "embedding", Index: i, Embedding: v}
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(resp)
}
