package embed

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func cosine(a, b []float32) float64 {
	var dot float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
	}
	return dot // both unit length
}

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

func embedOne(t *testing.T, e Embedder, text string) []float32 {
	t.Helper()
	vecs, err := e.Embed(context.Background(), []string{text})
	if err != nil {
		t.Fatal(err)
	}
	return vecs[0]
}

func TestHashingDeterministicUnitNorm(t *testing.T) {
	t.Parallel()
	texts := []string{
		"The quick brown fox jumps over the lazy dog.",
		"Straße, Müller und Größe — Unicode wörter 123",
		"Ответы на вопросы: 中文文本 без пробелов",
		"a",
	}
	for _, dim := range []int{1, 16, 384, 1000} {
		h := NewHashing(dim)
		if h.Dimensions() != dim {
			t.Fatalf("Dimensions() = %d, want %d", h.Dimensions(), dim)
		}
		first, err := h.Embed(context.Background(), texts)
		if err != nil {
			t.Fatal(err)
		}
		// A fresh embedder, and texts in another batch order, give the same bits.
		again, err := NewHashing(dim).Embed(context.Background(), []string{texts[3], texts[2], texts[1], texts[0]})
		if err != nil {
			t.Fatal(err)
		}
		slices.Reverse(again)
		for i := range texts {
			if len(first[i]) != dim {
				t.Errorf("dim %d, text %d: len = %d", dim, i, len(first[i]))
			}
			if !slices.Equal(first[i], again[i]) {
				t.Errorf("dim %d, text %d: vectors differ between runs", dim, i)
			}
			if n := norm(first[i]); math.Abs(n-1) > 1e-6 {
				t.Errorf("dim %d, text %d: norm = %v, want 1", dim, i, n)
			}
		}
	}
}

func TestHashingCaseAndPunctuationInsensitive(t *testing.T) {
	t.Parallel()
	h := NewHashing(384)
	a := embedOne(t, h, "Hello, World!")
	b := embedOne(t, h, "hello world")
	if !slices.Equal(a, b) {
		t.Error("case and punctuation changed the vector")
	}
}

func TestHashingEmptyIsZero(t *testing.T) {
	t.Parallel()
	h := NewHashing(64)
	vecs, err := h.Embed(context.Background(), []string{"", "   \n\t", "!?.,;-—"})
	if err != nil {
		t.Fatal(err)
	}
	zero := make([]float32, 64)
	for i, v := range vecs {
		if !slices.Equal(v, zero) {
			t.Errorf("text %d: got a non-zero vector", i)
		}
	}
	if vecs, err := h.Embed(context.Background(), nil); err != nil || len(vecs) != 0 {
		t.Errorf("Embed(nil) = %d vectors, %v; want 0, nil", len(vecs), err)
	}
}

// Lexically closer texts must score strictly higher, in this exact order,
// and texts sharing no word with the query below all of them.
func TestHashingSimilarityOrder(t *testing.T) {
	t.Parallel()
	h := NewHashing(384)
	query := "How do I reset my account password?"
	ranked := []string{
		"To reset your account password, open settings and choose reset password.",
		"Passwords for accounts can be changed on the settings page.",
	}
	unrelated := []string{
		"Our office is closed on public holidays.",
		"Photosynthesis converts light energy into chemical energy in plants.",
	}
	q := embedOne(t, h, query)
	prev := math.Inf(1)
	for i, text := range ranked {
		s := cosine(q, embedOne(t, h, text))
		if s >= prev {
			t.Errorf("related text %d scores %.4f, not below the previous %.4f", i, s, prev)
		}
		prev = s
	}
	for i, text := range unrelated {
		if s := cosine(q, embedOne(t, h, text)); s >= prev || s > 0.15 {
			t.Errorf("unrelated text %d scores %.4f; want below %.4f and 0.15", i, s, prev)
		}
	}

	// Inflections share 3-grams even with no word in common.
	stem := cosine(embedOne(t, h, "embeddings"), embedOne(t, h, "embedding"))
	other := cosine(embedOne(t, h, "embeddings"), embedOne(t, h, "tomatoes"))
	if stem <= 0.5 || stem <= other {
		t.Errorf("cos(embeddings, embedding) = %.4f, cos(embeddings, tomatoes) = %.4f; want the first > 0.5 and larger", stem, other)
	}
}

func TestHashingCanceled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewHashing(8).Embed(ctx, []string{"x"}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestNewHashingPanicsOnBadDimension(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("NewHashing(0) did not panic")
		}
	}()
	NewHashing(0)
}

// benchText returns n deterministic pseudo-prose texts of about size chars.
func benchTexts(n, size int) []string {
	words := strings.Fields("the retrieval system splits every document into chunks and embeds " +
		"them so that search can rank passages by similarity; invoices, contracts, manuals " +
		"and reports from 2019 to 2024 were ingested with their page numbers and metadata")
	out := make([]string, n)
	var b strings.Builder
	for i := range out {
		b.Reset()
		for j := i; b.Len() < size; j += 7 {
			b.WriteString(words[(j*j+i)%len(words)])
			b.WriteByte(' ')
		}
		out[i] = b.String()
	}
	return out
}

// BenchmarkHashing embeds 100 chunks of about 1000 characters per op.
func BenchmarkHashing(b *testing.B) {
	h := NewHashing(384)
	texts := benchTexts(100, 1000)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Embed(ctx, texts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/chunk")
}
