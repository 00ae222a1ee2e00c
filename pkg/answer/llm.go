package answer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tmc/langchaingo/llms"
	"github.com/tmc/langchaingo/llms/anthropic"
	"github.com/tmc/langchaingo/llms/ollama"
	"github.com/tmc/langchaingo/llms/openai"

	"github.com/ragpipe/ragpipe/pkg/embed"
)

// SystemPrompt tells a chat model how to answer from the passages.
const SystemPrompt = `You answer questions using only the numbered passages you are given.
After every sentence that uses a passage, cite it by its number in square brackets, like [1] or [2][3].
Cite only passage numbers you were given. If the passages do not answer the question, say that the documents searched do not say, and cite nothing.
Answer in the language of the question, briefly.`

// LLM answers through a chat model: the passages and the question go in
// one user message after SystemPrompt, and the answer streams back.
type LLM struct {
	model    llms.Model
	provider string
	name     string
	// usage reads the token counts from a response's generation info,
	// whose keys differ by provider.
	usage func(info map[string]any) (prompt, completion int)
}

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

// Answer streams the model's answer to onText. Its errors are
// *embed.ProviderError: permanent when the provider refused the request
// (a 4xx other than 408 and 429), else transient, with the provider's
// Retry-After.
func (l *LLM) Answer(ctx context.Context, q Question, onText func(string) error) (Result, error) {
	msgs := []llms.MessageContent{
		llms.TextParts(llms.ChatMessageTypeSystem, SystemPrompt),
		llms.TextParts(llms.ChatMessageTypeHuman, Prompt(q)),
	}
	_, info, err := l.generate(ctx, msgs, q.MaxTokens, q.Temperature, onText, true)
	if err != nil {
		return Result{}, err
	}
	r := Result{Provider: l.provider, Model: l.name}
	r.PromptTokens, r.CompletionTokens = l.usage(info)
	return r, nil
}

// Condense asks the model to turn question, asked after the history of a
// conversation (question and answer pairs, oldest first), into a question
// that stands on its own, for retrieval.
func (l *LLM) Condense(ctx context.Context, history [][2]string, question string) (string, error) {
	var b strings.Builder
	b.WriteString("Conversation so far:\n")
	for _, turn := range history {
		fmt.Fprintf(&b, "\nUser: %s\nAssistant: %s\n", turn[0], turn[1])
	}
	fmt.Fprintf(&b, "\nFollow-up question: %s\n\nRewrite the follow-up question so that it can be understood without the conversation. Answer with the rewritten question only.", question)
	msgs := []llms.MessageContent{llms.TextParts(llms.ChatMessageTypeHuman, b.String())}
	text, _, err := l.generate(ctx, msgs, 200, 0, func(string) error { return nil }, false)
	if err != nil {
		return "", err
	}
	if text = strings.TrimSpace(text); text == "" {
		return question, nil
	}
	return text, nil
}

// generate runs one call, streamed or answered whole, recording its HTTP
// outcome for errors.
func (l *LLM) generate(ctx context.Context, msgs []llms.MessageContent, maxTokens int, temperature float64,
	onText func(string) error, stream bool) (string, map[string]any, error) {
	ctx, ex := embed.WithExchange(ctx)
	var text strings.Builder
	var sent atomic.Bool
	opts := []llms.CallOption{llms.WithMaxTokens(maxTokens), llms.WithTemperature(temperature)}
	if stream {
		opts = append(opts, llms.WithStreamingFunc(func(_ context.Context, chunk []byte) error {
			if len(chunk) == 0 {
				return nil
			}
			sent.Store(true)
			text.Write(chunk)
			return onText(string(chunk))
		}))
	}
	resp, err := l.model.GenerateContent(ctx, msgs, opts...)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w: %v", ctx.Err(), err)
		}
		pe := ex.Classify(err)
		pe.Provider = "chat provider " + l.provider
		pe.Permanent = pe.Permanent && !sent.Load() // a refusal mid-stream is the stream's trouble
		return "", nil, pe
	}
	var info map[string]any
	if len(resp.Choices) > 0 {
		info = resp.Choices[0].GenerationInfo
		if text.Len() == 0 && resp.Choices[0].Content != "" {
			// Answered whole: not streamed, or a server that ignored stream.
			text.WriteString(resp.Choices[0].Content)
			if err := onText(resp.Choices[0].Content); err != nil {
				return "", nil, err
			}
		}
	}
	return text.String(), info, nil
}

// intOf reads a token count from generation info, whatever its integer type.
func intOf(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case int32:
		return int(n)
	case int64:
		return int(n)
	case float64:
		return int(n)
	}
	return 0
}

// ChatConfig configures a chat model behind a provider's API.
type ChatConfig struct {
	BaseURL    string        // the API root; "" for the provider's default
	APIKey     string        // sent as the provider wants it; empty sends none
	Model      string        // required
	Timeout    time.Duration // of the whole call; 0 for none (the caller's context bounds it)
	HTTPClient *http.Client  // its transport carries the calls; nil: http.DefaultTransport
}

// NewOpenAI returns an LLM on an OpenAI-compatible chat completions
// endpoint (OpenAI, vLLM, llama.cpp's server, LM Studio, Ollama's /v1).
func NewOpenAI(c ChatConfig) (*LLM, error) {
	token := c.APIKey
	if token == "" {
		token = "none" // langchaingo insists on a token; the recording client drops the header
	}
	opts := []openai.Option{openai.WithToken(token), openai.WithModel(c.Model), openai.WithHTTPClient(embed.RecordingClient(c.HTTPClient, c.Timeout, c.APIKey == ""))}
	if c.BaseURL != "" {
		opts = append(opts, openai.WithBaseURL(c.BaseURL))
	}
	model, err := openai.New(opts...)
	if err != nil {
		return nil, err
	}
	return &LLM{model: model, provider: "openai", name: c.Model, usage: func(info map[string]any) (int, int) {
		return intOf(info["PromptTokens"]), intOf(info["CompletionTokens"])
	}}, nil
}

// NewAnthropic returns an LLM on Anthropic's Messages API.
func NewAnthropic(c ChatConfig) (*LLM, error) {
	opts := []anthropic.Option{anthropic.WithToken(c.APIKey), anthropic.WithModel(c.Model), anthropic.WithHTTPClient(embed.RecordingClient(c.HTTPClient, c.Timeout, false))}
	if c.BaseURL != "" {
		opts = append(opts, anthropic.WithBaseURL(c.BaseURL))
	}
	model, err := anthropic.New(opts...)
	if err != nil {
		return nil, err
	}
	return &LLM{model: model, provider: "anthropic", name: c.Model, usage: func(info map[string]any) (int, int) {
		return intOf(info["InputTokens"]), intOf(info["OutputTokens"])
	}}, nil
}

// NewOllama returns an LLM on Ollama's native chat API (/api/chat).
func NewOllama(c ChatConfig) (*LLM, error) {
	opts := []ollama.Option{ollama.WithModel(c.Model), ollama.WithHTTPClient(embed.RecordingClient(c.HTTPClient, c.Timeout, false))}
	if c.BaseURL != "" {
		opts = append(opts, ollama.WithServerURL(c.BaseURL))
	}
	model, err := ollama.New(opts...)
	if err != nil {
		return nil, err
	}
	return &LLM{model: model, provider: "ollama", name: c.Model, usage: func(info map[string]any) (int, int) {
		return intOf(info["PromptTokens"]), intOf(info["CompletionTokens"])
	}}, nil
}
