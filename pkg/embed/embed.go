// Package embed turns texts into vectors for similarity search.
//
// Two embedders are provided: Hashing, an offline, deterministic lexical
// embedder that is the default on a machine without a model, and OpenAI, a
// client for any OpenAI-compatible embeddings endpoint (OpenAI, Ollama,
// vLLM, LocalAI, …) built on langchaingo.
package embed

import "context"

// Embedder turns texts into vectors of a fixed dimension.
//
// Embed returns one vector per text, in the order of texts, each of length
// Dimensions(). Implementations are safe for concurrent use.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	Dimensions() int
}
