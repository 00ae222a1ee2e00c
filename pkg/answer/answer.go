// Package answer writes answers to questions from retrieved passages, each
// claim followed by a numbered marker ([1], [2]…) naming the passage it
// comes from. Two kinds of Answerer: Extractive, offline, quotes the
// passages' best sentences for the question's terms; LLM has a chat model
// (through langchaingo) write the answer from the passages.
package answer

import (
	"context"
	"regexp"
	"strconv"
	"strings"

	"github.com/ragpipe/ragpipe/pkg/chunk"
)

// Passage is a retrieved chunk as an answerer sees it: N is its number in
// the answer's markers, from 1.
type Passage struct {
	N                  int
	Text               string
	Section            string
	PageStart, PageEnd int
}

// Question is what an Answerer answers.
type Question struct {
	Text        string
	Passages    []Passage
	MaxTokens   int     // most tokens the answer may have
	Temperature float64 // sampling temperature, for models that sample
}

// Result says who answered and what it cost.
type Result struct {
	Provider                       string // "extractive", "openai", "anthropic", "ollama"
	Model                          string // the model's name ("extractive" for the extractive answerer)
	PromptTokens, CompletionTokens int
}

// Answerer answers questions from passages.
type Answerer interface {
	// Answer writes the answer to q, handing each piece of text to onText
	// as it is produced, in order: the answer is their concatenation. An
	// error from onText ends the answer with that error. Cancelling ctx
	// ends the call to the provider at once.
	Answer(ctx context.Context, q Question, onText func(delta string) error) (Result, error)
}

var marker = regexp.MustCompile(`\[(\d{1,4})\]`)

// Cite renumbers the markers of answer in the order they first appear,
// from 1, drops markers naming no passage (n outside 1..passages), and
// returns the new text with the old numbers of the passages cited, in
// their new order: cited[k] is the old number of new marker k+1.
func Cite(answer string, passages int) (text string, cited []int) {
	renumber := map[int]int{}
	text = marker.ReplaceAllStringFunc(answer, func(m string) string {
		n, _ := strconv.Atoi(m[1 : len(m)-1])
		if n < 1 || n > passages {
			return ""
		}
		k, ok := renumber[n]
		if !ok {
			cited = append(cited, n)
			k = len(cited)
			renumber[n] = k
		}
		return "[" + strconv.Itoa(k) + "]"
	})
	return strings.TrimSpace(text), cited
}

// CountTokens returns how many tokens s has, by the tokenizer chunk sizes
// are counted with (cl100k_base): the measure of a question's length.
func CountTokens(s string) (int, error) { return chunk.CountTokens(s) }
