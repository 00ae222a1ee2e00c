package embed

import (
	"context"
	"fmt"
	"math"
	"unicode"
	"unicode/utf8"
)

// Hashing is an offline, deterministic, lexical embedder built on feature
// hashing (the "hashing trick").
//
// It captures lexical similarity only: texts score close when they share
// words or word fragments ("embedding" is near "embeddings"), not when they
// mean the same thing in other words ("car" is no nearer to "automobile" than
// to "banana"). In exchange it needs no model, no network and no training, and
// a text always gets the same vector on every machine. Vectors from different
// dimensions, or from a changed feature scheme, are not comparable: changing
// either means re-embedding every stored chunk.
//
// A text is lowercased and cut into words: runs of Unicode letters, digits and
// combining marks; everything else separates words. Its features are the words
// plus, at a lower weight, the character 3-grams of each word wrapped in '#'
// ("cat" gives "#ca", "cat", "at#"), so inflections and small typos still
// overlap. A feature seen tf times in the text counts 1+ln(tf), so repetition
// does not dominate. Each feature is hashed (64-bit FNV-1a) into one of the
// Dimensions() buckets with a hash-derived sign, which keeps collisions
// unbiased, and the vector is L2-normalised, so the dot product of two vectors
// is their cosine similarity.
//
// A text with no word in it (empty, whitespace or punctuation only) gets the
// zero vector, whose similarity to anything is 0. Scripts written without
// spaces (Chinese, Japanese, Thai) form one long word per run and so match
// through their 3-grams only.
type Hashing struct {
	dim int
}

// Feature weights and the n-gram length. Part of the vector format: changing
// any of them changes every vector.
const (
	wordWeight = 1.0
	gramWeight = 0.4
	gramRunes  = 3

	// Salts keep a word and an identical 3-gram ("cat" in "#cat#") apart.
	wordSalt = 'w'
	gramSalt = 'g'
)

// NewHashing returns a Hashing embedder producing vectors of dim dimensions.
// It panics if dim is not positive. 256 to 1024 dimensions keep collisions
// rare for chunks of a few hundred words; 384 is a common choice.
func NewHashing(dim int) *Hashing {
	if dim <= 0 {
		panic(fmt.Sprintf("embed: NewHashing: dimension %d is not positive", dim))
	}
	return &Hashing{dim: dim}
}

// Dimensions returns the length of every vector Embed returns.
func (h *Hashing) Dimensions() int { return h.dim }

// Embed returns one unit-length vector per text (the zero vector for a text
// with no words). It fails only if ctx is done.
func (h *Hashing) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	c := newCounter(h.dim)
	for i, text := range texts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out[i] = c.vector(text)
	}
	return out, nil
}

// feature is one distinct hashed feature of a text.
type feature struct {
	hash   uint64
	weight float64
	count  int
}

// counter holds the scratch space for embedding texts one after another.
type counter struct {
	dim   int
	index map[uint64]int // feature hash -> position in features
	// features in order of first appearance, so that the floating-point sums
	// run in the same order every time and vectors are bit-for-bit identical.
	features []feature
	word     []byte // '#' + the current lowercased word (+ '#' while taking 3-grams)
	starts   []int  // byte offsets of the runes in word
	acc      []float64
}

func newCounter(dim int) *counter {
	return &counter{
		dim:   dim,
		index: make(map[uint64]int),
		word:  make([]byte, 0, 64),
		acc:   make([]float64, dim),
	}
}

func (c *counter) vector(text string) []float32 {
	clear(c.index)
	c.features = c.features[:0]
	c.word = append(c.word[:0], '#')
	for _, r := range text {
		if isWordRune(r) {
			c.word = utf8.AppendRune(c.word, unicode.ToLower(r))
			continue
		}
		if len(c.word) > 1 {
			c.addWord()
		}
	}
	if len(c.word) > 1 {
		c.addWord()
	}

	vec := make([]float32, c.dim)
	if len(c.features) == 0 {
		return vec
	}
	clear(c.acc)
	for _, f := range c.features {
		w := f.weight * (1 + math.Log(float64(f.count)))
		if f.hash&1 == 1 {
			w = -w
		}
		c.acc[(f.hash>>1)%uint64(c.dim)] += w
	}
	var norm float64
	for _, v := range c.acc {
		norm += v * v
	}
	if norm == 0 {
		return vec // every feature cancelled out in its bucket; vanishingly rare
	}
	norm = math.Sqrt(norm)
	for i, v := range c.acc {
		vec[i] = float32(v / norm)
	}
	return vec
}

// addWord records the word held in c.word (after its leading '#') and its
// 3-grams, then empties c.word for the next one.
func (c *counter) addWord() {
	c.add(hash(wordSalt, c.word[1:]), wordWeight)
	c.word = append(c.word, '#')
	c.starts = c.starts[:0]
	for i := 0; i < len(c.word); {
		c.starts = append(c.starts, i)
		_, n := utf8.DecodeRune(c.word[i:])
		i += n
	}
	c.starts = append(c.starts, len(c.word))
	for i := 0; i+gramRunes < len(c.starts); i++ {
		c.add(hash(gramSalt, c.word[c.starts[i]:c.starts[i+gramRunes]]), gramWeight)
	}
	c.word = c.word[:1]
}

func (c *counter) add(h uint64, weight float64) {
	if i, ok := c.index[h]; ok {
		c.features[i].count++
		return
	}
	c.index[h] = len(c.features)
	c.features = append(c.features, feature{hash: h, weight: weight, count: 1})
}

func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
	}
	return unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r)
}

// hash is 64-bit FNV-1a over salt and b, followed by MurmurHash3's fmix64
// finaliser: FNV-1a alone mixes short inputs poorly, and the bucket and the
// sign must not depend on each other (the sign is bit 0, the bucket the rest).
func hash(salt byte, b []byte) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	h ^= uint64(salt)
	h *= prime
	for _, x := range b {
		h ^= uint64(x)
		h *= prime
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
