package answer

import (
	"cmp"
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/ragpipe/ragpipe/pkg/chunk"
)

// NothingFound is the extractive answer when no passage speaks to the
// question.
const NothingFound = "I found nothing about this in the documents searched."

// Extractive answers offline, with the passages' own words: the sentences
// that hold most of the question's terms (weighted by how rare each is
// among the passages' sentences), best first, at most maxSentences and
// within the question's MaxTokens, each followed by its passage's marker.
// A sentence must hold at least minCoverage of the question's terms (and
// one at least), or the answer is NothingFound without markers.
type Extractive struct{}

const (
	maxSentences = 3
	minCoverage  = 0.3
)

type sentence struct {
	text    string
	passage int // its passage's N
	order   int // its place among all the passages' sentences
	terms   map[string]bool
	score   float64
	covered int
}

// Answer picks the sentences and hands each to onText with its marker.
func (Extractive) Answer(ctx context.Context, q Question, onText func(string) error) (Result, error) {
	asked := Terms(q.Text)
	var all []*sentence
	df := map[string]int{}
	for _, p := range q.Passages {
		for _, s := range chunk.Sentences(strings.Join(strings.Fields(p.Text), " ")) {
			st := &sentence{text: s, passage: p.N, order: len(all), terms: map[string]bool{}}
			for _, t := range Terms(s) {
				if !st.terms[t] {
					st.terms[t] = true
					df[t]++
				}
			}
			all = append(all, st)
		}
	}
	need := max(1, int(math.Ceil(minCoverage*float64(len(asked)))))
	var picked []*sentence
	for _, s := range all {
		for _, t := range asked {
			if s.terms[t] {
				s.covered++
				s.score += math.Log(1 + float64(len(all))/float64(df[t]))
			}
		}
		if s.covered >= need {
			picked = append(picked, s)
		}
	}
	// Best first; among equals, the better-ranked passage and the earlier sentence.
	slices.SortStableFunc(picked, func(a, b *sentence) int {
		return cmp.Or(cmp.Compare(b.score, a.score), cmp.Compare(a.order, b.order))
	})
	var out []string
	seen := map[string]bool{}
	tokens := 0
	for _, s := range picked {
		if len(out) == maxSentences {
			break
		}
		key := strings.ToLower(s.text)
		if seen[key] {
			continue
		}
		part := s.text + " [" + strconv.Itoa(s.passage) + "]"
		n, err := chunk.CountTokens(part)
		if err != nil {
			return Result{}, err
		}
		if q.MaxTokens > 0 && tokens+n > q.MaxTokens {
			break
		}
		seen[key] = true
		tokens += n
		out = append(out, part)
	}
	if len(out) == 0 {
		out = []string{NothingFound}
		tokens, _ = chunk.CountTokens(NothingFound)
	}
	read := 0
	for _, p := range q.Passages {
		n, err := chunk.CountTokens(p.Text)
		if err != nil {
			return Result{}, err
		}
		read += n
	}
	qTokens, _ := chunk.CountTokens(q.Text)
	for i, part := range out {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		if i > 0 {
			part = " " + part
		}
		if err := onText(part); err != nil {
			return Result{}, err
		}
	}
	return Result{Provider: "extractive", Model: "extractive", PromptTokens: qTokens + read, CompletionTokens: tokens}, nil
}

// stopwords are English words too common to tell passages apart, and the
// words questions are asked with.
var stopwords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a about above after again against all am an and any are as at be because been
		before being below between both but by can could did do does doing down during each few for from further
		had has have having he her here hers herself him himself his how i if in into is it its itself just me
		more most my myself no nor not now of off on once only or other our ours ourselves out over own same she
		should so some such than that the their theirs them themselves then there these they this those through
		to too under until up very was we were what when where which while who whom why will with would you your
		yours yourself yourselves tell explain describe give list show please much many`) {
		m[w] = true
	}
	return m
}()

// Terms returns the words of s that carry meaning, lower-cased and with
// common English suffixes removed, in order, repeats included.
func Terms(s string) []string {
	var out []string
	for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		if len(w) < 2 || stopwords[w] {
			continue
		}
		out = append(out, stem(w))
	}
	return out
}

// stem removes one common English suffix from words long enough to keep a
// stem of four letters: enough to match "licences" with "licence" and
// "distributing" with "distribute".
func stem(w string) string {
	for _, suffix := range []string{"ations", "ation", "ings", "ing", "ies", "es", "ed", "s", "e"} {
		if strings.HasSuffix(w, suffix) && len(w)-len(suffix) >= 4 {
			return strings.TrimSuffix(w, suffix)
		}
	}
	return w
}
