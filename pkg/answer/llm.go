package answer

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/tmc/langchaingo/llms"
	"github.com/tmc/langchaingo/llms/openai"
)

// SystemPrompt tells a chat model how to answer from the passages.
const SystemPrompt = `You answer questions using only the numbered passages you are given.
After every sentence that uses a passage, cite it by its number in square brackets, like [1] or [2][3].
Cite only passage numbers you were given. If the passages do not answer the question, say that the documents searched do not say, and cite nothing.
Answer in the language of the question, briefly.`

// LLM answers through a chat model: the passages and the question go in
// one user message after SystemPrompt, and the answer streams back.
type LLM struct {
	model llms.Model
	name  string
}

// NewLLM returns an LLM answering through model, reported as name.
func NewLLM(model llms.Model, name string) *LLM { return &LLM{model: model, name: name} }

// Model is the chat model's name.
func (l *LLM) Model() string { return l.name }

// Prompt is the user message for q: its passages, numbered, then the question.
func Prompt(q Question) string {
	var b strings.Builder
	b.WriteString("Passages:\n")
	for _, p := range q.Passages {
		fmt.Fprintf(&b, "\n[%d]", p.N)
		if p.PageStart > 0 {
			if p.PageEnd > p.PageStart {
				fmt.Fprintf(&b, " (pages %d-%d", p.PageStart, p.PageEnd)
			} else {
				fmt.Fprintf(&b, " (page %d", p.PageStart)
			}
			if p.Section != "" {
				fmt.Fprintf(&b, ", %s", p.Section)
			}
			b.WriteString(")")
		}
		b.WriteString(" ")
		b.WriteString(strings.TrimSpace(p.Text))
		b.WriteString("\n")
	}
	b.WriteString("\nQuestion: ")
	b.WriteString(q.Text)
	return b.String()
}

// Answer streams the model's answer to onText.
func (l *LLM) Answer(ctx context.Context, q Question, onText func(string) error) (Usage, error) {
	msgs := []llms.MessageContent{
		llms.TextParts(llms.ChatMessageTypeSystem, SystemPrompt),
		llms.TextParts(llms.ChatMessageTypeHuman, Prompt(q)),
	}
	resp, err := l.model.GenerateContent(ctx, msgs,
		llms.WithMaxTokens(q.MaxTokens), llms.WithTemperature(q.Temperature),
		llms.WithStreamingFunc(func(_ context.Context, chunk []byte) error {
			if len(chunk) == 0 {
				return nil
			}
			return onText(string(chunk))
		}))
	if err != nil {
		return Usage{}, err
	}
	var u Usage
	if len(resp.Choices) > 0 {
		info := resp.Choices[0].GenerationInfo
		u.PromptTokens, _ = info["PromptTokens"].(int)
		u.CompletionTokens, _ = info["CompletionTokens"].(int)
	}
	return u, nil
}

// OpenAIConfig configures a chat model behind an OpenAI-compatible API
// (OpenAI, vLLM, llama.cpp's server, LM Studio, Ollama's /v1).
type OpenAIConfig struct {
	BaseURL    string // the API root with its version, e.g. https://api.openai.com/v1
	APIKey     string // sent as a bearer token; empty sends none
	Model      string
	HTTPClient *http.Client // nil: http.DefaultClient's transport
}

// NewOpenAI returns an LLM on the chat completions endpoint of c.BaseURL.
func NewOpenAI(c OpenAIConfig) (*LLM, error) {
	rt := http.DefaultTransport
	if c.HTTPClient != nil && c.HTTPClient.Transport != nil {
		rt = c.HTTPClient.Transport
	}
	token := c.APIKey
	if token == "" {
		token = "none" // langchaingo insists on a token; noAuth drops the header
		rt = noAuth{rt}
	}
	model, err := openai.New(openai.WithBaseURL(c.BaseURL), openai.WithToken(token), openai.WithModel(c.Model),
		openai.WithHTTPClient(&http.Client{Transport: rt}))
	if err != nil {
		return nil, err
	}
	return NewLLM(model, c.Model), nil
}

// noAuth sends requests without an Authorization header.
type noAuth struct{ next http.RoundTripper }

func (n noAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Del("Authorization")
	return n.next.RoundTrip(r)
}
